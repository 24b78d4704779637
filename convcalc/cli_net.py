"""The ``net`` and ``check`` commands (registered on the app by :func:`register`).

Thin typer wrappers: evaluation lives in :mod:`convcalc.network`, output in
:mod:`convcalc.render_net`, error messages and exit codes in :func:`convcalc.cli.guarded`.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from convcalc import cli

if TYPE_CHECKING:
    from convcalc.network import NetResult


class NetFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"


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
NetFmtOpt = Annotated[NetFormat, typer.Option("--format", "-f", help="Output format (html: a self-contained report).")]
OutputOpt = Annotated[
    Optional[str], typer.Option("--output", "-o", help="Write the output to this file instead of stdout.", show_default=False)
]


def register(app: typer.Typer) -> None:
    """Add ``net`` and ``check`` to ``app``."""

    @app.command("net")
    def net_command(
        spec: SpecArg,
        fmt: NetFmtOpt = NetFormat.table,
        depth: DepthOpt = None,
        batch: BatchOpt = None,
        output: OutputOpt = None,
        debug: DebugOpt = False,
    ) -> None:
        """Evaluate a network spec: per-layer shapes, params, MACs, receptive fields; totals and breakdowns.

        On an error the table is printed up to the failing layer, then the error (exit 2).
        """
        cli.STATE["debug"] = cli.STATE["debug"] or debug

        def body() -> None:
            from convcalc.network import NetworkError, evaluate_file

            try:
                result = evaluate_file(spec, batch=batch)
            except NetworkError as err:
                if err.partial.rows:
                    _emit(_render(err.partial, fmt.value, depth), output)
                raise err.cause from None
            _emit(_render(result, fmt.value, depth), output)

        cli.guarded(body)

    def _render(result: NetResult, fmt: str, depth: int | None) -> str:
        if fmt == "html":
            from convcalc.draw.html import render_html

            return render_html(result)  # folds by top-level block, unfolds on click
        from convcalc.render_net import render_network

        return render_network(result, fmt, depth)

    def _emit(text: str, output: str | None) -> None:
        if output is None:
            typer.echo(text)
            return
        from convcalc.cli_draw import write_file

        write_file(text + "\n", output)

    @app.command("check")
    def check_command(specs: SpecsArg, fmt: CheckFmtOpt = CheckFormat.text, debug: DebugOpt = False) -> None:
        """Check the expectations written in network specs (CI): exit 0 all hold, 1 any fails, 2 bad input."""
        cli.STATE["debug"] = cli.STATE["debug"] or debug

        def body() -> None:
            from convcalc.network import check, check_exit_code
            from convcalc.render_net import render_check

            results = check(specs)
            typer.echo(render_check(results, fmt.value))
            code = check_exit_code(results)
            if code:
                raise typer.Exit(code)

        cli.guarded(body)
