"""The ``net`` and ``check`` commands (registered on the app by :func:`register`).

Thin typer wrappers: evaluation lives in :mod:`convcalc.network`, output in
:mod:`convcalc.render_net`, error messages and exit codes in :func:`convcalc.cli.guarded`.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from convcalc.cli import app as cli


class CheckFormat(str, Enum):
    text = "text"
    github = "github"
    junit = "junit"


SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help="Network spec (YAML); '-' reads standard input.")]
SpecsArg = Annotated[list[str], typer.Argument(metavar="SPEC...", help="Spec files or globs such as 'specs/*.yaml'.")]
CheckFmtOpt = Annotated[CheckFormat, typer.Option("--format", "-f", help="text, github (Actions annotations) or junit (XML).")]
DepthOpt = Annotated[
    Optional[int],
    typer.Option("--depth", min=1, help="Fold blocks nested deeper than N levels into one row.", show_default=False),
]
BatchOpt = Annotated[
    Optional[int],
    typer.Option(
        "--batch", "-b", min=1, help="Batch size (default: the spec's): scales MACs and activations.", show_default=False
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")]


def register(app: typer.Typer) -> None:
    """Add ``net`` and ``check`` to ``app``."""

    @app.command("net")
    def net_command(
        spec: SpecArg,
        fmt: cli.FmtOpt = cli.Fmt.table,
        depth: DepthOpt = None,
        batch: BatchOpt = None,
        debug: DebugOpt = False,
    ) -> None:
        """Evaluate a network spec: per-layer shapes, params, MACs, receptive fields; totals and breakdowns.

        On an error the table is printed up to the failing layer, then the error (exit 2).
        """
        cli.STATE["debug"] = cli.STATE["debug"] or debug

        def body() -> None:
            from convcalc.network.evaluate import evaluate_file
            from convcalc.network.result import NetworkError
            from convcalc.render.network import render_network

            try:
                result = evaluate_file(spec, batch=batch)
            except NetworkError as err:
                if err.partial.rows:
                    typer.echo(render_network(err.partial, fmt.value, depth))
                raise err.cause from None
            typer.echo(render_network(result, fmt.value, depth))

        cli.guarded(body)

    @app.command("check")
    def check_command(specs: SpecsArg, fmt: CheckFmtOpt = CheckFormat.text, debug: DebugOpt = False) -> None:
        """Check the expectations written in network specs (CI): exit 0 all hold, 1 any fails, 2 bad input."""
        cli.STATE["debug"] = cli.STATE["debug"] or debug

        def body() -> None:
            from convcalc.network.check import check, check_exit_code
            from convcalc.render.network import render_check

            results = check(specs)
            typer.echo(render_check(results, fmt.value))
            code = check_exit_code(results)
            if code:
                raise typer.Exit(code)

        cli.guarded(body)
