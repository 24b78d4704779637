"""The ``net`` and ``check`` commands (registered on the app by :func:`register`).

Thin typer wrappers: evaluation lives in :mod:`convcalc.network`, output in
:mod:`convcalc.render_net`, error messages and exit codes in :func:`convcalc.cli.guarded`.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from convcalc import cli
from convcalc.errors import SpecError


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
AgainstOpt = Annotated[
    Optional[str], typer.Option("--against", metavar="MODEL.onnx", help="Compare the spec with an ONNX model.", show_default=False)
]
ByOrderOpt = Annotated[bool, typer.Option("--by-order", help="With --against: match layers by position, not by name.")]


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
            from convcalc.network import NetworkError, evaluate_file
            from convcalc.render_net import render_network

            try:
                result = evaluate_file(spec, batch=batch)
            except NetworkError as err:
                if err.partial.rows:
                    typer.echo(render_network(err.partial, fmt.value, depth))
                raise err.cause from None
            typer.echo(render_network(result, fmt.value, depth))

        cli.guarded(body)

    @app.command("check")
    def check_command(
        specs: SpecsArg,
        fmt: CheckFmtOpt = CheckFormat.text,
        against: AgainstOpt = None,
        by_order: ByOrderOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Check the expectations written in network specs (CI): exit 0 all hold, 1 any fails, 2 bad input.

        With --against MODEL.onnx, also compare the spec with the model layer by layer (by name, or
        --by-order): type, output shape, params, MACs, receptive field; totals and output shape.
        """
        cli.STATE["debug"] = cli.STATE["debug"] or debug

        def body() -> None:
            from convcalc.network import check, check_exit_code
            from convcalc.render_net import render_check

            if against is not None:
                from convcalc.interop.compare import against as compare_against

                if len(specs) != 1:
                    raise SpecError(f"--against compares one spec with the model, got {len(specs)} specs.")
                results = [compare_against(specs[0], against, by_order=by_order)]
            else:
                results = check(specs)
            typer.echo(render_check(results, fmt.value))
            code = check_exit_code(results)
            if code:
                raise typer.Exit(code)

        cli.guarded(body)

    app.command("import")(import_command)


def import_command(
    model: Annotated[str, typer.Argument(metavar="MODEL.onnx", help="The ONNX model to import.")],
    output: Annotated[
        Optional[str], typer.Option("--output", "-o", help="Write the spec here (default: standard output).", show_default=False)
    ] = None,
    in_shape: Annotated[
        Optional[str],
        typer.Option("--in", "-i", help="Input shape without the batch (fixes dynamic dimensions), e.g. 3x224x224.", show_default=False),
    ] = None,
    allow_unknown: Annotated[
        bool, typer.Option("--allow-unknown", help="Keep unmappable ops as shape-only 'unknown' rows (costs unknown).")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Import an ONNX model as a convcalc network spec (YAML) that 'convcalc net' evaluates.

    Needs the ONNX extra: pip install 'convcalc[onnx]'.
    """
    cli.STATE["debug"] = cli.STATE["debug"] or debug

    def body() -> None:
        import sys
        from pathlib import Path

        from convcalc.interop.onnx import import_model
        from convcalc.values import parse_axes

        shape = None if in_shape is None else parse_axes(in_shape, "--in")
        imported = import_model(model, in_shape=shape, allow_unknown=allow_unknown)
        for note in imported.notes:
            sys.stderr.write(f"note: {note}\n")
        if output is None:
            typer.echo(imported.text, nl=False)
            return
        try:
            Path(output).write_text(imported.text, encoding="utf-8")
        except OSError as err:
            raise SpecError(f"cannot write {output!r}: {err.strerror or err}.") from None
        totals = imported.result.totals()
        typer.echo(f"wrote {output}: {totals.layers} layers, params {totals.params:,}, MACs {totals.macs:,}")

    cli.guarded(body)
