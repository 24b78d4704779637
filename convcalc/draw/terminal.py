"""A quick look in the terminal: one frame of a layer picture in Unicode blocks.

Two characters per cell. Without colour (``NO_COLOR``, a pipe, a dumb terminal) the glyphs alone
tell the roles apart; with colour they are also tinted like the SVG (blue input, cyan output).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from typing import TextIO

from convcalc.draw.geometry import CROPPED, INPUT, PADDING, ZERO, GridPlan, step_index
from convcalc.draw.layer import Options, extent, formula_lines, panels, shuffle_target, split
from convcalc.engine import LayerResult
from convcalc.parse.values import format_shape
from convcalc.primitives.conv import ChannelShuffle

GLYPHS = {
    INPUT: "░░",
    PADDING: "┄┄",
    ZERO: "··",
    CROPPED: "  ",
    "kernel-input": "██",
    "kernel-other": "▓▓",
    "output": "▒▒",
    "active": "██",
}
COLOURS = {INPUT: 75, PADDING: 245, ZERO: 250, CROPPED: 238, "kernel-input": 25, "kernel-other": 24, "output": 80, "active": 30}
"""xterm-256 colour numbers per glyph."""

KEY = "key: ░░ input  ┄┄ padding  ·· inserted zero  ██ kernel on input  ▓▓ kernel on padding/zero  ▒▒ output  ██ current output"


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` set (no-color.org) or ``TERM=dumb``."""
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def _paint(key: str, colour: bool) -> str:
    glyph = GLYPHS[key]
    return f"\x1b[38;5;{COLOURS[key]}m{glyph}\x1b[0m" if colour else glyph


def _rows(shape: Sequence[int], cell: Callable[[tuple[int, ...]], str]) -> list[str]:
    """Lines of a grid: 3D slices side by side, two spaces apart."""
    slices, rows, cols = extent(shape)
    index = {split(c): c for c in _coords(shape)}
    lines = []
    for r in range(rows):
        parts = ["".join(cell(index[(z, r, c)]) for c in range(cols)) for z in range(slices)]
        lines.append("  ".join(parts))
    return lines


def _coords(shape: Sequence[int]) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(n) for n in shape)))


def _numbers(shape: Sequence[int], value: Callable[[tuple[int, ...]], int]) -> list[str]:
    width = max(len(str(value(c))) for c in _coords(shape)) + 1
    return _rows(shape, lambda c: str(value(c)).rjust(width))


def frame_lines(plan: GridPlan, options: Options, colour: bool) -> list[str]:
    """The output grid above the drawn input grid, for one step (or the grid/overlap numbers)."""
    if options.mode == "grid":
        return [*_rows(plan.out_shape, lambda _: _paint("output", colour)), "", *_numbers(plan.drawn_shape, plan.uses)]
    if options.mode == "overlap":
        return [*_numbers(plan.out_shape, plan.contributions), "", *_rows(plan.drawn_shape, lambda c: _paint(plan.role(c), colour))]
    out = step_index(options.step, plan)
    under = set(plan.footprint(out))

    def input_cell(coord: tuple[int, ...]) -> str:
        role = plan.role(coord)
        if coord in under:
            return _paint("kernel-input" if role == INPUT else "kernel-other", colour)
        return _paint(role, colour)

    top = _rows(plan.out_shape, lambda c: _paint("active" if c == out else "output", colour))
    return [f"step {options.step} of {plan.frame_count}: output {','.join(map(str, out))}", *top, "", *_rows(plan.drawn_shape, input_cell)]


def render_terminal(result: LayerResult, options: Options, colour: bool) -> str:
    """Every window stage of the layer: its title, one frame, and the output-size formulas."""
    shown = Options("step" if options.mode == "animate" else options.mode, options.step)
    lines = [f"{result.spec.kind} '{result.spec.name}': {format_shape(result.input_shape)} -> {format_shape(result.output_shape)}"]
    for stage, panel in panels(result, shown):
        lines += ["", f"{stage.name}: {stage.label or stage.op.describe()}", *frame_lines(panel.plan, shown, colour)]
        lines += formula_lines(stage, panel.plan)
    for stage in result.stages:
        if isinstance(stage.op, ChannelShuffle) and stage.output[0] <= 64:
            channels, groups = stage.output[0], stage.op.groups
            moved = " ".join(str(shuffle_target(c, channels, groups)) for c in range(channels))
            lines += ["", f"{stage.name} (g={groups}): input channels 0..{channels - 1} go to positions {moved}"]
    if shown.mode == "step":
        lines += ["", KEY]
    elif shown.mode == "grid":
        lines += ["", "numbers: how many windows read each drawn input cell (padding included)"]
    else:
        lines += ["", "numbers: how many real input pixels feed each output pixel (uneven = checkerboard)"]
    lines.append("write the picture with -o FILE.svg (animated; --step N for one frame, --grid, --overlap)")
    return "\n".join(lines)
