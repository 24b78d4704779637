"""The network commands: ``net`` (evaluate a spec) and ``check`` (the expectations specs state, for CI).

Thin typer wrappers: evaluation lives in :mod:`convcalc.network`, output in :mod:`convcalc.render`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Optional

import typer

from convcalc.cli.complete import spec_paths
from convcalc.cli.options import DebugOpt, guarded, write_file
from convcalc.errors import ConvcalcError
from convcalc.render.check import CheckFormat
from convcalc.render.table import Format

SpecArg = Annotated[
    str, typer.Argument(metavar="SPEC", help="Network spec (YAML); '-' reads standard input.", autocompletion=spec_paths)
]
SpecsArg = Annotated[
    list[str], typer.Argument(metavar="SPEC...", help="Spec files or globs such as 'specs/*.yaml'.", autocompletion=spec_paths)
]
CheckFmtOpt = Annotated[CheckFormat, typer.Option("--format", "-f", help="text, github (Actions annotations) or junit (XML).")]
DepthOpt = Annotated[
    Optional[int],
    typer.Option("--depth", min=1, help="Fold blocks nested deeper than N levels into one row.", show_default=False),
]
NetFmtOpt = Annotated[
    Format, typer.Option("--format", "-f", help="Output format (html: a self-contained report, best with -o FILE).")
]
OutputOpt = Annotated[
    Optional[str], typer.Option("--output", "-o", help="Write the output to this file instead of stdout.", show_default=False)
]
NetBatchOpt = Annotated[
    Optional[int],
    typer.Option(
        "--batch", "-b", min=1, help="Batch size (default: the spec's): scales MACs and activations.", show_default=False
    ),
]


def _emit(text: str, output: str | None) -> None:
    if output is None:
        typer.echo(text)
    else:
        write_file(text + "\n", output)


@guarded
def net_command(
    spec: SpecArg,
    fmt: NetFmtOpt = Format.table,
    depth: DepthOpt = None,
    batch: NetBatchOpt = None,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Evaluate a network spec: per-layer shapes, params, MACs, receptive fields; totals and breakdowns.

    On an error the table (or report) is written up to the failing layer, then the error (exit 2).
    """
    from convcalc.network.evaluate import evaluate_file
    from convcalc.network.result import NetworkError
    from convcalc.render.network import render_network

    try:
        result = evaluate_file(spec, batch=batch)
    except NetworkError as err:
        if err.partial.rows:
            _emit(render_network(err.partial, fmt, depth), output)
        raise err.cause from None
    _emit(render_network(result, fmt, depth), output)


UpdateOpt = Annotated[
    bool,
    typer.Option(
        "--update", help="First write each spec's current totals and output shape as its 'expect' block (the rest of the file kept)."
    ),
]


@guarded
def check_command(specs: SpecsArg, fmt: CheckFmtOpt = CheckFormat.text, update: UpdateOpt = False, debug: DebugOpt = False) -> None:
    """Check the expectations written in network specs (CI): exit 0 all hold, 1 any fails, 2 bad input.

    A spec without expectations is reported (a warning). When $GITHUB_STEP_SUMMARY names a file
    (GitHub Actions), a Markdown summary table is appended to it.
    """
    from convcalc.network.check import check, check_exit_code
    from convcalc.render.check import render_check, render_check_summary

    if update:
        from convcalc.network.check import expand_paths
        from convcalc.network.update import update_file

        for path in expand_paths(specs):
            try:
                message = update_file(path)
            except ConvcalcError as err:  # this spec stays as it is; the check below reports it
                message = f"not updated {path}: {err}"
            typer.echo(message, err=fmt is not CheckFormat.text)
    results = check(specs)
    typer.echo(render_check(results, fmt))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(render_check_summary(results))
    code = check_exit_code(results)
    if code:
        raise typer.Exit(code)


COMMANDS: dict[str, Callable[..., None]] = {"net": net_command, "check": check_command}
