"""Models in: ``import`` (an ONNX model -> a network spec that ``convcalc net`` evaluates).

A thin typer wrapper over :func:`convcalc.interop.onnx.import_model`; the ``onnx`` package (the
``onnx`` extra) is imported only when the command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Optional

import typer

from convcalc.cli.options import DebugOpt, guarded, write_file

ModelArg = Annotated[str, typer.Argument(metavar="MODEL.onnx", help="The ONNX model to import.")]
OutputOpt = Annotated[
    Optional[str], typer.Option("--output", "-o", help="Write the spec here (default: standard output).", show_default=False)
]
ImportInOpt = Annotated[
    Optional[str],
    typer.Option(
        "--in", "-i", help="Input shape without the batch (fixes dynamic dimensions), e.g. 3x224x224.", show_default=False
    ),
]
AllowUnknownOpt = Annotated[
    bool, typer.Option("--allow-unknown", help="Keep unmappable ops as shape-only 'unknown' rows (costs unknown).")
]


@guarded
def import_command(
    model: ModelArg,
    output: OutputOpt = None,
    in_shape: ImportInOpt = None,
    allow_unknown: AllowUnknownOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Import an ONNX model as a convcalc network spec (YAML) that 'convcalc net' evaluates.

    Needs the ONNX extra: pip install 'convcalc[onnx]'.
    """
    from convcalc.interop.onnx import import_model
    from convcalc.parse.values import parse_axes

    shape = None if in_shape is None else parse_axes(in_shape, "--in")
    imported = import_model(model, in_shape=shape, allow_unknown=allow_unknown)
    for note in imported.notes:
        sys.stderr.write(f"note: {note}\n")
    if output is None:
        typer.echo(imported.text, nl=False)
        return
    write_file(imported.text, output)
    totals = imported.result.totals()
    typer.echo(f"{output}: {totals.layers} layers, params {totals.params:,}, MACs {totals.macs:,}")


COMMANDS: dict[str, Callable[..., None]] = {"import": import_command}
