"""The typer app: global options, the console-script entry point, and which module holds each command.

Exit codes: 0 success, 1 a failed check, 2 bad input (spec, flags, impossible layer),
3 an internal error (a bug: please report it with ``--debug``).

Each command group is a module of this package with a ``COMMANDS`` mapping (name -> typer
command); it is imported only when one of its commands is registered, and ``main`` registers only
the command named on the command line (typer converts every registered command to click on each
invocation, so a one-command app starts faster).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Optional

import typer

from convcalc import __version__
from convcalc.cli.options import DebugOpt, reset_debug

GROUPS = {
    "shape": "layer", "params": "layer", "flops": "layer", "rf": "layer", "layer": "layer",
    "types": "tools", "compare": "tools", "solve": "tools", "overlap": "tools",
    "net": "net", "check": "net", "export": "net",
    "run": "run", "peak": "run",
    "draw": "draw",
    "import": "interop",
}  # fmt: skip
"""Command name -> the module of :mod:`convcalc.cli` that defines it (in ``--help`` order)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"convcalc {__version__}")
        raise typer.Exit()


def main_options(
    debug: DebugOpt = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """Exact arithmetic of convolutions: shapes, parameters, MACs/FLOPs and receptive fields."""
    reset_debug(debug)


def command(name: str) -> Callable[..., None]:
    """The typer command called ``name`` (importing its group's module)."""
    commands: Mapping[str, Callable[..., None]] = importlib.import_module(f"convcalc.cli.{GROUPS[name]}").COMMANDS
    return commands[name]


def build_app(only: str | None = None) -> typer.Typer:
    """The convcalc app with every command, or only ``only`` when it names one.

    The full app has typer's ``--install-completion``/``--show-completion`` and answers the shell's
    completion requests (``_CONVCALC_COMPLETE``: the shell asks with no command name in argv, so
    it gets the full app); a one-command app leaves completion out, which keeps
    ``convcalc shape`` from importing typer's completion machinery."""
    target = typer.Typer(
        name="convcalc",
        help="Exact arithmetic of convolutions: shapes, parameters, MACs/FLOPs and receptive fields.",
        add_completion=only not in GROUPS,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    target.callback()(main_options)
    for name in [only] if only in GROUPS else GROUPS:
        target.command(name)(command(name))
    return target


def __getattr__(name: str) -> typer.Typer:
    """``convcalc.cli.app.app``: the full app, built on first access (tests drive it with CliRunner)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


def main() -> None:
    """Console-script entry point: build only the command named on the command line."""
    build_app(sys.argv[1] if len(sys.argv) > 1 else None)(prog_name="convcalc")
