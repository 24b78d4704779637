"""The command line: typer commands, the only place that prints and exits (entry point: :mod:`convcalc.cli.app`)."""

from __future__ import annotations

from collections.abc import Callable


def __getattr__(name: str) -> Callable[[], None]:
    """``convcalc.cli:main`` for console scripts installed before the entry point moved to ``convcalc.cli.app:main``."""
    if name == "main":
        from convcalc.cli.app import main

        return main
    raise AttributeError(name)
