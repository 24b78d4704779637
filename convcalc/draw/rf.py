"""The receptive field of one unit: the theoretical field (exact, from :mod:`convcalc.rf`) drawn
on the input image, and inside it the exact number of paths from every input pixel to the unit
(:mod:`convcalc.draw.paths`), with a profile through the centre, the share of paths held by the
busiest pixels, and marks for global context and misaligned branches.

Small views (up to :data:`RECT_PIXELS` pixels) are drawn as one ``<rect data-role="input">`` per
pixel carrying ``data-paths``; larger ones as an embedded PNG (one image pixel per input pixel,
written with :mod:`zlib`), so a 224x224 picture stays small.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction

from convcalc import rf as rf_math
from convcalc.draw.layer import mix
from convcalc.draw.paths import PathCounts, count_paths
from convcalc.draw.svg import Svg
from convcalc.network.evaluate import evaluate_file
from convcalc.network.result import NetResult, note_kind
from convcalc.parse.values import format_shape
from convcalc.report import EXACT

STYLE = (
    ".title{font-size:15px;font-weight:bold;fill:#1b2733}"
    ".label{font-size:12px;fill:#33414f}"
    ".small{font-size:11px;fill:#33414f}"
    ".formula{font-size:12px;fill:#1b2733;font-family:Menlo,Consolas,monospace}"
    ".outside{fill:#f1f3f5;stroke:#9aa5b1;stroke-width:1;stroke-dasharray:4 3}"
    ".field{fill:none;stroke:#c2410c;stroke-width:2;stroke-dasharray:6 4}"
    ".unit{fill:#c2410c;stroke:#fff;stroke-width:1}"
    ".bar{fill:#2b6aa3}"
    ".axis{stroke:#33414f;stroke-width:1}"
    ".mark{font-size:12px;fill:#9a3412}"
)
STOPS = ("#f4f8fc", "#8ec1ea", "#2b6aa3", "#0b2a55")
"""Colour scale of path counts: no paths (lightest) to the most paths (D&V's blues, darkest)."""


def colour(share: float) -> str:
    """The scale colour at ``share`` in [0, 1] (piecewise linear through :data:`STOPS`)."""
    if share <= 0:
        return "#ffffff"
    pos = min(share, 1.0) * (len(STOPS) - 1)
    index = min(int(pos), len(STOPS) - 2)
    return mix(STOPS[index], STOPS[index + 1], pos - index)


def png(width: int, height: int, rows: list[list[str]]) -> bytes:
    """A truecolour PNG of ``#rrggbb`` pixels (PNG spec: IHDR, one zlib IDAT of filter-0 rows, IEND)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"".join(bytes.fromhex(p[1:]) for p in row) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def big(value: int) -> str:
    """``1,234,567``; beyond 24 digits ``≈ 1.23e+40 (41 digits)``."""
    text = f"{value:,}"
    return text if len(str(value)) <= 24 else f"≈ {value:.3e} ({len(str(value))} digits)"


def field_box(paths: PathCounts) -> list[tuple[Fraction, Fraction]] | None:
    """Per axis, the first and last input pixel of the unit's theoretical field (centre ± (r-1)/2)."""
    field = paths.row.field
    if field is None or paths.row.rf_status != EXACT:
        return None
    box = []
    for axis, u in zip(field, paths.unit, strict=True):
        centre = axis.start + u * axis.jump
        box.append((centre - (axis.size - 1) / 2, centre + (axis.size - 1) / 2))
    return box


def plane(paths: PathCounts, sizes: tuple[int, ...]) -> tuple[list[list[int]], str]:
    """The 2D grid drawn: 1D as one row; 3D the depth slice holding the most paths."""
    if len(sizes) == 1:
        return [[paths.counts.get((x,), 0) for x in range(sizes[0])]], ""
    if len(sizes) == 2:
        return [[paths.counts.get((y, x), 0) for x in range(sizes[1])] for y in range(sizes[0])], ""
    totals: dict[int, int] = {}
    for (z, _, _), value in paths.counts.items():
        totals[z] = totals.get(z, 0) + value
    depth = max(totals, key=lambda z: (totals[z], -z), default=0)
    grid = [[paths.counts.get((depth, y, x), 0) for x in range(sizes[2])] for y in range(sizes[1])]
    return grid, f"depth slice d={depth} (the one with the most paths)"


def summary_lines(result: NetResult, paths: PathCounts) -> list[str]:
    """The numbers of the picture, also printed by ``draw rf`` without ``-o``."""
    row = paths.row
    unit = ",".join(map(str, paths.unit))
    lines = [f"{result.name}: unit ({unit}) of '{row.name}' ({row.type}, output {format_shape(row.output_shape)})"]
    if row.field is not None and row.rf_status == EXACT:
        sizes = "x".join(rf_math.fmt(a.size) for a in row.field)
        jumps = "x".join(rf_math.fmt(a.jump) for a in row.field)
        centre = "x".join(rf_math.fmt(a.start + u * a.jump) for a, u in zip(row.field, paths.unit, strict=True))
        lines.append(f"theoretical field: {sizes} pixels, effective stride {jumps}, centred on pixel {centre} (exact)")
    else:
        lines.append(f"theoretical field: {row.rf_status}")
    reached = len(paths.counts)
    lines += [
        f"paths from the input: {big(paths.total)} in all; the busiest pixel has {big(paths.peak)}",
        f"pixels reaching the unit: {reached:,}; half of all paths come from the {paths.smallest_share((1, 2)):,}"
        f" busiest, 95% from {paths.smallest_share((19, 20)):,}",
        "paths: every weight 1, one edge per kernel tap on a real pixel (Luo et al. 2016, effective receptive field)",
    ]
    return lines + [f"note: {mark}" for mark in collapse(paths.marks)]


def collapse(marks: list[str], names: int = 3) -> list[str]:
    """One line per kind of mark (:func:`convcalc.network.result.note_kind`): ``N layers (a, b, c and
    K more): what``; a mark of a single layer keeps its full text."""
    groups: dict[str, list[str]] = {}
    for mark in marks:
        layer, _, note = mark.partition(": ")
        groups.setdefault(note_kind(note), []).append(layer)
    out = []
    for kind, layers in groups.items():
        if len(layers) == 1:
            out.append(next(m for m in marks if m.startswith(layers[0] + ": ") and note_kind(m.partition(": ")[2]) == kind))
            continue
        more = f" and {len(layers) - names:,} more" if len(layers) > names else ""
        out.append(f"{len(layers):,} layers ({', '.join(layers[:names])}{more}): {kind}")
    return out


@dataclass(frozen=True)
class View:
    """The drawn window of the input plane, in pixels (inclusive; may extend beyond the image
    into the padding), and the scale in SVG units per pixel (``cell_h``: per row)."""

    y: tuple[int, int]
    x: tuple[int, int]
    scale: float
    cell_h: float

    @property
    def width(self) -> float:
        return (self.x[1] - self.x[0] + 1) * self.scale

    @property
    def height(self) -> float:
        return (self.y[1] - self.y[0] + 1) * self.cell_h


RECT_PIXELS = 1024
"""Up to this many pixels (32x32) each is a ``<rect>`` with its count; beyond, one PNG."""
PROFILE_BARS = 400
"""Up to this many pixels the profile is one bar per pixel (``data-paths``), beyond one outline."""
ZOOM = Fraction(2, 5)
"""Zoom onto the field when it covers less than this share of the image along both axes."""


def choose_view(rows: int, cols: int, box: list[tuple[Fraction, Fraction]] | None) -> View:
    """The whole image and field; zoomed onto the field (plus a quarter of its size around it)
    when the field is small next to the image."""
    y_range, x_range = (0, rows - 1), (0, cols - 1)
    if box:
        (y1, y2), (x1, x2) = box
        if (rows == 1 or (y2 - y1 + 1) < ZOOM * rows) and (x2 - x1 + 1) < ZOOM * cols:
            pad_y, pad_x = max(4, int((y2 - y1) / 4)), max(4, int((x2 - x1) / 4))
            y_range = (max(0, math.floor(y1) - pad_y), min(rows - 1, math.ceil(y2) + pad_y))
            x_range = (max(0, math.floor(x1) - pad_x), min(cols - 1, math.ceil(x2) + pad_x))
        else:
            y_range = (min(0, math.floor(y1)), max(rows - 1, math.ceil(y2)))
            x_range = (min(0, math.floor(x1)), max(cols - 1, math.ceil(x2)))
    span = max(x_range[1] - x_range[0] + 1, (y_range[1] - y_range[0] + 1) if rows > 1 else 1)
    scale = min(28.0, 600 / span)
    return View(y_range, x_range, scale, scale if rows > 1 else max(scale, 24.0))


def _pixels(svg: Svg, grid: list[list[int]], view: View, origin: tuple[float, float], peak: int) -> None:
    """The image inside the view: a rect per pixel (``data-paths``), or one embedded PNG."""
    rows, cols = len(grid), len(grid[0])
    ox, oy = origin
    ys = range(max(view.y[0], 0), min(view.y[1], rows - 1) + 1)
    xs = range(max(view.x[0], 0), min(view.x[1], cols - 1) + 1)
    if len(ys) * len(xs) <= RECT_PIXELS:
        for y in ys:
            for x in xs:
                value = grid[y][x]
                svg.rect(ox + x * view.scale, oy + y * view.cell_h, view.scale, view.cell_h, fill=colour(value / peak),
                         data_role="input", data_coord=f"{y},{x}" if rows > 1 else f"{x}", data_paths=value)  # fmt: skip
    else:
        pixels = [[colour(grid[y][x] / peak) for x in xs] for y in ys]
        data = base64.b64encode(png(len(xs), len(ys), pixels)).decode()
        svg.add("image", x=ox + xs[0] * view.scale, y=oy + ys[0] * view.cell_h, width=len(xs) * view.scale,
                height=len(ys) * view.cell_h, href=f"data:image/png;base64,{data}", preserveAspectRatio="none",
                style="image-rendering:pixelated", data_role="input-raster")  # fmt: skip
    svg.rect(ox + xs[0] * view.scale, oy + ys[0] * view.cell_h, len(xs) * view.scale, len(ys) * view.cell_h,
             fill="none", stroke="#33414f", stroke_width=1, data_role="image")  # fmt: skip


def _field(svg: Svg, paths: PathCounts, box: list[tuple[Fraction, Fraction]], view: View, origin: tuple[float, float]) -> None:
    """The theoretical field (dashed) and the unit's centre."""
    ox, oy = origin
    one_row = view.y == (0, 0)
    (y1, y2), (x1, x2) = box
    fy = oy if one_row else oy + float(y1) * view.cell_h
    fh = view.cell_h if one_row else float(y2 - y1 + 1) * view.cell_h
    svg.rect(ox + float(x1) * view.scale, fy, float(x2 - x1 + 1) * view.scale, fh, class_="field", data_role="field")
    svg.text(ox + float(x1) * view.scale + 4, fy - 4 if one_row else fy + 14, "theoretical field", class_="mark")
    if paths.row.field is None:
        return
    centre = [float(a.start + u * a.jump) for a, u in zip(paths.row.field, paths.unit, strict=True)]
    cy = oy + view.cell_h / 2 if one_row else oy + (centre[-2] + 0.5) * view.cell_h
    svg.add("circle", cx=ox + (centre[-1] + 0.5) * view.scale, cy=cy, r=max(3.0, view.scale * 0.3), class_="unit", data_role="unit")


def _colour_bar(svg: Svg, x: float, y: float, peak: int) -> None:
    for i in range(101):
        svg.rect(x + i * 2, y - 6, 2.2, 12, fill=colour(i / 100))
    svg.text(x - 6, y + 4, "0", class_="small", text_anchor="end")
    svg.text(x + 208, y + 4, f"{big(peak)} paths", class_="small")


def _profile(svg: Svg, grid: list[list[int]], view: View, ox: float, y0: float, peak: int) -> float:
    """Bars of the path counts along the image row through the busiest pixel."""
    row = max(range(len(grid)), key=lambda r: (max(grid[r]), -r))
    height = 90.0
    lo, hi = max(view.x[0], 0), min(view.x[1], len(grid[0]) - 1)
    svg.text(ox + lo * view.scale, y0 + 12, f"paths along row {row} (through the busiest pixel)", class_="small")
    base = y0 + 18 + height
    svg.line(ox + lo * view.scale, base, ox + (hi + 1) * view.scale, base, class_="axis")
    if hi - lo + 1 <= PROFILE_BARS:
        for x in range(lo, hi + 1):
            value = grid[row][x]
            if value:
                h = height * value / peak
                svg.rect(ox + x * view.scale, base - h, max(view.scale - 0.3, 0.6), h, class_="bar", data_role="profile", data_paths=value)
    else:  # one filled outline instead of thousands of bars
        points = [f"{ox + (x + 0.5) * view.scale:.1f},{base - height * grid[row][x] / peak:.1f}" for x in range(lo, hi + 1)]
        ends = f"{ox + (hi + 0.5) * view.scale:.1f},{base:.1f} {ox + (lo + 0.5) * view.scale:.1f},{base:.1f}"
        svg.add("polygon", points=" ".join(points) + " " + ends, class_="bar", data_role="profile")
    return height + 30


def draw_paths(result: NetResult, paths: PathCounts) -> str:
    """The SVG file (module docstring)."""
    sizes = result.input_shape[1:]
    grid, slice_note = plane(paths, sizes)
    rows, cols = len(grid), len(grid[0])
    box = field_box(paths)
    flat_box = None if box is None else (box[-2:] if len(box) >= 2 else [(Fraction(0), Fraction(0)), *box])
    view = choose_view(rows, cols, flat_box)
    margin = 16.0
    lines = summary_lines(result, paths)
    if view.y[1] - view.y[0] + 1 < rows or view.x[1] - view.x[0] + 1 < cols:
        rows_text = "" if rows == 1 else f"{view.y[0]}..{view.y[1]} x "
        lines.append(f"zoomed: pixels {rows_text}{view.x[0]}..{view.x[1]} of the {format_shape(sizes)} input")
    top = margin + 24 + 16 * (len(lines) - 1) + 20
    origin = (margin - view.x[0] * view.scale, top - view.y[0] * view.cell_h)  # where pixel (0, 0) is drawn
    svg = Svg()
    svg.rect(margin, top, view.width, view.height, class_="outside")
    _pixels(svg, grid, view, origin, paths.peak or 1)
    if flat_box:
        _field(svg, paths, flat_box, view, origin)
    y = top + view.height + 14
    if view.x[0] < 0 or view.y[0] < 0 or view.x[1] >= cols or view.y[1] >= rows:
        svg.text(margin, y + 4, "grey: outside the image (zero padding)", class_="small")
    _colour_bar(svg, margin + 300, y, paths.peak)
    y += 18
    if rows * cols > 1:
        y += _profile(svg, grid, view, origin[0], y, paths.peak or 1)
    width = max(margin * 2 + view.width, 620.0, 2 * margin + 7.2 * max(len(line) for line in lines))
    body = Svg()
    body.rect(0, 0, width, y + margin, fill="#ffffff")
    body.text(margin, margin + 14, lines[0], class_="title")
    for i, line in enumerate(lines[1:]):
        body.text(margin, margin + 34 + 16 * i, line, class_="mark" if line.startswith("note:") else "formula")
    if slice_note:
        body.text(margin + 200, top - 6, slice_note, class_="small")
    body.parts.extend(svg.parts)
    return body.document(width, y + margin, STYLE, f"receptive field of {paths.row.name} in {result.name}")


def draw_rf(spec_path: str, layer: str, unit: str | None) -> str:
    """``convcalc draw rf SPEC --layer NAME [--unit i,j] -o FILE.svg``."""
    result = evaluate_file(spec_path)
    return draw_paths(result, count_paths(result, layer, unit))


SHADES = " .:-=+*#%@"
"""Zero paths, then nine levels of path counts (share of the busiest pixel)."""


def rf_text(spec_path: str, layer: str, unit: str | None) -> str:
    """Without ``-o``: the numbers and a coarse map of the path counts (at most 64 columns)."""
    result = evaluate_file(spec_path)
    paths = count_paths(result, layer, unit)
    grid, _ = plane(paths, result.input_shape[1:])
    step = max(1, -(-len(grid[0]) // 64), -(-len(grid) // 32))
    peak = paths.peak or 1
    art = []
    for y in range(0, len(grid), step):
        line = ""
        for x in range(0, len(grid[0]), step):
            value = max(grid[yy][xx] for yy in range(y, min(y + step, len(grid))) for xx in range(x, min(x + step, len(grid[0]))))
            line += SHADES[0] if value == 0 else SHADES[1 + min(8, 9 * value // (peak + 1))]
        art.append(line)
    note = f"map: one character per {step}x{step} pixels, denser = more paths" if step > 1 else "map: denser = more paths"
    width = max(map(len, art), default=0)
    framed = ["┌" + "─" * width + "┐", *(f"│{line.ljust(width)}│" for line in art), "└" + "─" * width + "┘"]
    return "\n".join([*summary_lines(result, paths), "", note, *framed, "", "write the picture with -o FILE.svg"])
