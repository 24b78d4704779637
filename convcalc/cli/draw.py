"""The ``draw`` command: pictures of a layer or of a receptive field.

Thin typer wrapper: the pictures live in :mod:`convcalc.draw`.

* ``convcalc draw TYPE [layer flags] [-o FILE.svg] [--step N | --grid | --overlap]``
* ``convcalc draw rf SPEC --layer NAME [--unit i,j] [-o FILE.svg]`` (SPEC: a file or a library name)

``-o`` is the output file here (as in ``net``), so ``out_channels`` has only its long flag.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Optional

import typer

from convcalc.cli.complete import spec_paths, type_or_rf
from convcalc.cli.options import LAYER_FIELDS, DebugOpt, InOpt, SpecOpt, guarded, with_layer_flags, write_file
from convcalc.errors import SpecError
from convcalc.kinds.base import OUT_CHANNELS

DRAW_FIELDS = tuple(f for f in LAYER_FIELDS if f is not OUT_CHANNELS)
"""The layer flags of ``draw``: every shared one but ``out_channels`` (its own option, not ``-o``)."""

WhatArg = Annotated[
    str,
    typer.Argument(
        metavar="TYPE|rf", help="A layer type (conv2d, conv_transpose2d, separable2d, ...) or 'rf'.", autocompletion=type_or_rf
    ),
]
SpecArg = Annotated[
    Optional[str],
    typer.Argument(metavar="[SPEC]", help="With 'rf': the network spec (YAML), or a library name such as resnet50.", show_default=False, autocompletion=spec_paths),
]
OutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="Write the SVG here; without it, one frame is printed in the terminal.", show_default=False),
]
OutChannelsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--out-channels", help="Output channels (default: the input's; the picture does not depend on it).", show_default=False
    ),
]
StepOpt = Annotated[Optional[int], typer.Option("--step", min=1, help="Draw one static frame: output position N (1-based).", show_default=False)]
GridOpt = Annotated[bool, typer.Option("--grid", help="All windows at once: how many windows read each input cell.")]
OverlapOpt = Annotated[bool, typer.Option("--overlap", help="Transposed conv: inputs feeding each output (checkerboard).")]
LayerOpt = Annotated[Optional[str], typer.Option("--layer", "-l", help="With 'rf': the layer whose unit is drawn.", show_default=False)]
UnitOpt = Annotated[
    Optional[str], typer.Option("--unit", "-u", help="With 'rf': the unit, e.g. 3,4 (default: the centre).", show_default=False)
]


def _mode(step: int | None, grid: bool, overlap: bool) -> tuple[str, int]:
    chosen = [name for name, on in (("--step", step is not None), ("--grid", grid), ("--overlap", overlap)) if on]
    if len(chosen) > 1:
        raise SpecError(f"{' and '.join(chosen)} exclude each other.", hint="Pick one view (or none for the animation).")
    if grid:
        return "grid", 1
    if overlap:
        return "overlap", 1
    return ("step", step) if step is not None else ("animate", 1)


@guarded
@with_layer_flags(DRAW_FIELDS, after="out_channels")
def draw_command(
    what: WhatArg,
    spec_path: SpecArg = None,
    in_shape: InOpt = None,
    out_channels: OutChannelsOpt = None,
    flags: dict[str, object] | None = None,
    spec: SpecOpt = None,
    output: OutputOpt = None,
    step: StepOpt = None,
    grid: GridOpt = False,
    overlap: OverlapOpt = False,
    layer: LayerOpt = None,
    unit: UnitOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Draw a layer as Dumoulin & Visin do (animated SVG; --step, --grid, --overlap), or with
    'rf SPEC --layer NAME' the receptive field of one unit with exact path counts (SPEC: a file or a
    library name such as resnet50; a local file of that name wins, a note on standard error says which).

    Without -o, one frame is printed in the terminal (colour on a TTY, plain with NO_COLOR).
    """
    if what == "rf":
        _draw_rf(spec_path, layer, unit, output)
        return
    if spec_path is not None:
        raise SpecError(f"unexpected argument {spec_path!r} after the layer type.", hint="Only 'draw rf' takes a spec file.")
    mode, number = _mode(step, grid, overlap)
    given = dict(flags or {})
    if out_channels is not None:
        given[OUT_CHANNELS.name] = out_channels
    _draw_layer(what, given, in_shape, spec, mode, number, output)


def _draw_layer(
    type_name: str, flags: dict[str, object], in_shape: str | None, spec: str | None, mode: str, step: int, output: str | None
) -> None:
    from convcalc.draw.layer import Options, draw_layer
    from convcalc.engine import evaluate_layer
    from convcalc.kinds import lookup
    from convcalc.parse.layer import build_request
    from convcalc.parse.values import parse_shape

    if OUT_CHANNELS.name not in flags and lookup(type_name).field(OUT_CHANNELS.name) is not None and spec is None and in_shape:
        flags[OUT_CHANNELS.name] = parse_shape(in_shape)[0]  # the picture does not depend on it
    request = build_request(type_name, flags, spec_path=spec, shape_text=in_shape)
    result = evaluate_layer(request.spec, request.shape)
    options = Options(mode, step)
    if output is None:
        from convcalc.draw.terminal import render_terminal, use_colour

        typer.echo(render_terminal(result, options, use_colour(sys.stdout)))
        return
    write_file(draw_layer(result, options), output)


def _draw_rf(spec_path: str | None, layer: str | None, unit: str | None, output: str | None) -> None:
    from convcalc.draw.rf import draw_rf, rf_text
    from convcalc.network.library import resolve

    if spec_path is None or layer is None:
        raise SpecError("'draw rf' needs a network spec and a layer.", hint="Example: convcalc draw rf resnet50 --layer layer1 -o rf.svg")
    spec_path, note = resolve(spec_path)
    if note:
        typer.echo(f"convcalc: {note}", err=True)
    if output is None:
        typer.echo(rf_text(spec_path, layer, unit))
        return
    write_file(draw_rf(spec_path, layer, unit), output)


COMMANDS: dict[str, Callable[..., None]] = {"draw": draw_command}
