"""SVG pictures of one layer, the way Dumoulin & Visin (2016) draw convolution arithmetic.

The input grid is blue, padding cells are dashed and empty, the kernel's footprint is shaded
dark blue on the input, the output grid is cyan with the current position darker. Transposed
convolutions are drawn as the equivalent direct convolution over the zero-inserted, padded
input (:mod:`convcalc.draw.geometry`). 1D layers are one row, 2D a grid, 3D a row of depth slices.

Modes: ``animate`` (one SMIL step per output position, looping), ``step`` (one static frame),
``grid`` (every window at once: how many windows use each drawn cell), ``overlap`` (transposed:
how many real input pixels feed each output pixel, the checkerboard of Odena et al. 2016).

Composite types (separable, spatially separable, flattened, P3D, (2+1)D, grouped, shuffled)
draw one spatial panel per window stage side by side, and below them the channel connections
of every stage, groups as coloured blocks (:func:`channel_diagram`).

Every drawn cell has a ``data-role`` (``input``, ``padding``, ``inserted-zero``, ``cropped``,
``output``, ``kernel``; the highlighted output of a frame is ``active``) and ``data-coord``
(its position in the drawn grid, comma-separated, axes in order D, H, W); input cells also carry
``data-src`` (the input pixel). A frame is a ``<g class="frame" data-frame data-out>`` holding
its kernel cells (taps in row-major order) and the active output cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from convcalc.draw.geometry import (
    CROPPED,
    INPUT,
    KERNEL,
    OUTPUT,
    PADDING,
    ZERO,
    GridPlan,
    plan_for,
    step_index,
)
from convcalc.draw.svg import Svg
from convcalc.engine import LayerResult, StageResult
from convcalc.errors import LimitError, ShapeError
from convcalc.parse.values import format_shape
from convcalc.primitives.conv import ChannelShuffle, Conv, ConvTranspose

MODES = ("animate", "step", "grid", "overlap")

STYLE = (
    ".input{fill:#8ec1ea;stroke:#2b6aa3;stroke-width:1}"
    ".padding{fill:#fff;stroke:#6f7d8c;stroke-width:1;stroke-dasharray:3 2}"
    ".inserted-zero{fill:#f3f6f9;stroke:#8d9aa8;stroke-width:1;stroke-dasharray:1 2}"
    ".cropped{fill:#ececec;stroke:#b5b5b5;stroke-width:1;stroke-dasharray:1 3;opacity:.6}"
    ".kernel{fill:#123f7a;fill-opacity:.55;stroke:#0b2a55;stroke-width:1.5}"
    ".output{fill:#9fe3de;stroke:#239089;stroke-width:1}"
    ".active{fill:#1f8f88;stroke:#0d5c57;stroke-width:1.5}"
    ".heat{stroke:none}"
    ".hot{stroke:none}"
    ".num{font-size:10px;text-anchor:middle;dominant-baseline:central;fill:#10243a}"
    ".numw{font-size:10px;text-anchor:middle;dominant-baseline:central;fill:#fff}"
    ".title{font-size:15px;font-weight:bold;fill:#1b2733}"
    ".label{font-size:12px;fill:#33414f}"
    ".small{font-size:11px;fill:#33414f}"
    ".formula{font-size:12px;fill:#1b2733;font-family:Menlo,Consolas,monospace}"
    ".band{fill-opacity:.16;stroke-opacity:.5;stroke-width:.6}"
    ".channel{fill:#d9e6f2;stroke:#51677d;stroke-width:.6}"
    ".edge{stroke-width:.7;fill:none;stroke-opacity:.75}"
)
GROUP_COLOURS = ("#2b6aa3", "#d0742c", "#3c9a52", "#a23c8c", "#b8a22b", "#3a9aa8", "#8c5a3c", "#5a5aa8")
FRAME_SECONDS = Fraction(1, 2)
"""How long one animation step shows (D&V's GIFs step about twice a second)."""
HEADER = 62
"""Space above a panel's output grid: title, subtitle, step label."""
MAX_WIDTH = 760
"""Target width of one panel's widest grid, in pixels; cells shrink to fit (down to 8 px)."""


@dataclass(frozen=True)
class Options:
    """What to draw: ``mode`` (:data:`MODES`) and, for ``step``, the 1-based step."""

    mode: str = "animate"
    step: int = 1


# ----------------------------------------------------------------------------------------------
# Layout of one panel
# ----------------------------------------------------------------------------------------------


def split(coord: Sequence[int]) -> tuple[int, int, int]:
    """(depth slice, row, column) of a 1D/2D/3D coordinate: 1D is one row, 3D a row of slices."""
    if len(coord) == 1:
        return 0, 0, coord[0]
    if len(coord) == 2:
        return 0, coord[0], coord[1]
    return coord[0], coord[1], coord[2]


def extent(shape: Sequence[int]) -> tuple[int, int, int]:
    """(slices, rows, columns) of a grid of ``shape``."""
    last = split([n - 1 for n in shape])
    return last[0] + 1, last[1] + 1, last[2] + 1


@dataclass(frozen=True)
class Block:
    """Where a grid of ``shape`` is drawn: top-left corner, cell size, gap between slices."""

    shape: tuple[int, ...]
    x: float
    y: float
    cell: float

    @property
    def gap(self) -> float:
        return self.cell * 1.5

    @property
    def width(self) -> float:
        slices, _, cols = extent(self.shape)
        return slices * cols * self.cell + (slices - 1) * self.gap

    @property
    def height(self) -> float:
        return extent(self.shape)[1] * self.cell

    def at(self, coord: Sequence[int]) -> tuple[float, float]:
        z, r, c = split(coord)
        cols = extent(self.shape)[2]
        return self.x + z * (cols * self.cell + self.gap) + c * self.cell, self.y + r * self.cell


def block_width(shape: Sequence[int], cell: float) -> float:
    return Block(tuple(shape), 0, 0, cell).width


def cell_size(plan: GridPlan) -> float:
    """Cells of up to 30 px, smaller so the widest grid fits :data:`MAX_WIDTH` (at least 8 px)."""
    widest = max(block_width(plan.drawn_shape, 1), block_width(plan.out_shape, 1))
    return max(8.0, min(30.0, MAX_WIDTH / widest))


def mix(low: str, high: str, share: float) -> str:
    """The colour ``share`` (0..1) of the way from ``low`` to ``high`` (``#rrggbb``)."""
    channels = [round(int(low[i : i + 2], 16) + share * (int(high[i : i + 2], 16) - int(low[i : i + 2], 16))) for i in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in channels)


def coord_text(coord: Sequence[int]) -> str:
    return ",".join(str(c) for c in coord)


def _cell(svg: Svg, block: Block, coord: Sequence[int], role: str, inset: float, **extra: str | int | None) -> None:
    x, y = block.at(coord)
    size = block.cell - 2 * inset
    svg.add("rect", x=x + inset, y=y + inset, width=size, height=size, class_=role, data_role=role, data_coord=coord_text(coord), **extra)


def _number(svg: Svg, block: Block, coord: Sequence[int], value: int, white: bool) -> None:
    if block.cell < 14:
        return
    x, y = block.at(coord)
    svg.text(x + block.cell / 2, y + block.cell / 2, f"{value}", class_="numw" if white else "num")


def _slice_labels(svg: Svg, block: Block, prefix: str) -> None:
    slices = extent(block.shape)[0]
    if slices == 1:
        return
    for z in range(slices):
        x, _ = block.at((z, 0, 0))
        svg.text(x, block.y - 4, f"{prefix}{z}", class_="small")


# ----------------------------------------------------------------------------------------------
# One panel: input, output, frames
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """A window stage laid out: its plan, title and the two grids."""

    plan: GridPlan
    title: str
    subtitle: str
    cell: float

    @property
    def inset(self) -> float:
        return max(1.0, self.cell * 0.06)

    @property
    def width(self) -> float:
        text = 6.3 * max(len(self.subtitle), len(self.title) * 1.4)
        return max(block_width(self.plan.drawn_shape, self.cell), block_width(self.plan.out_shape, self.cell), 220, text)

    @property
    def height(self) -> float:
        depth_labels = 16 if len(self.plan.drawn_shape) == 3 else 0
        return HEADER + 2 * depth_labels + self.blocks(0, 0)[0].height + self.cell * 1.4 + self.blocks(0, 0)[1].height + 20

    def blocks(self, x: float, y: float) -> tuple[Block, Block]:
        """(output block, input block): output on top, centred, as D&V draw them."""
        depth_labels = 16 if len(self.plan.drawn_shape) == 3 else 0
        out_w = block_width(self.plan.out_shape, self.cell)
        in_w = block_width(self.plan.drawn_shape, self.cell)
        top = y + HEADER + depth_labels
        out = Block(self.plan.out_shape, x + (self.width - out_w) / 2, top, self.cell)
        below = top + out.height + self.cell * 1.4 + depth_labels
        return out, Block(self.plan.drawn_shape, x + (self.width - in_w) / 2, below, self.cell)

    def draw(self, svg: Svg, x: float, y: float, options: Options) -> None:
        plan = self.plan
        out_block, in_block = self.blocks(x, y)
        svg.text(x, y + 16, self.title, class_="title")
        svg.text(x, y + 32, self.subtitle, class_="label")
        _slice_labels(svg, out_block, "d=")
        _slice_labels(svg, in_block, "d=")
        svg.open("g", class_="input-grid")
        grid = options.mode == "grid"
        top_use = max((plan.uses(c) for c, _ in plan.cells()), default=0) if grid else 0
        for coord, role in plan.cells():
            src = plan.source(coord)
            uses = plan.uses(coord) if grid else None
            _cell(svg, in_block, coord, role, self.inset, data_src=coord_text(src) if src else None, data_uses=uses)
            if grid and uses:
                xx, yy = in_block.at(coord)
                share = uses / top_use
                svg.rect(xx + 3 * self.inset, yy + 3 * self.inset, self.cell - 6 * self.inset, self.cell - 6 * self.inset,
                         class_="heat", fill=mix("#d7e8f7", "#123f7a", share))  # fmt: skip
                _number(svg, in_block, coord, uses, white=share > 0.5)
        svg.close("g")
        overlap = options.mode == "overlap"
        top_contrib = max((plan.contributions(o) for o in plan.frames()), default=0) if overlap else 0
        svg.open("g", class_="output-grid")
        for out in plan.frames():
            count = plan.contributions(out) if overlap else None
            _cell(svg, out_block, out, OUTPUT, self.inset, data_contributions=count)
            if overlap and count is not None and top_contrib:
                xx, yy = out_block.at(out)
                share = count / top_contrib
                svg.rect(xx + self.inset, yy + self.inset, self.cell - 2 * self.inset, self.cell - 2 * self.inset,
                         class_="hot", fill=mix("#fdecd2", "#a8391a", share))  # fmt: skip
                _number(svg, out_block, out, count, white=share > 0.5)
        svg.close("g")
        if options.mode == "animate":
            self.frames(svg, x, in_block, out_block, list(plan.frames()), animate=True)
        elif options.mode == "step":
            self.frames(svg, x, in_block, out_block, [step_index(options.step, plan)], animate=False, first=options.step - 1)

    def frames(
        self, svg: Svg, x: float, in_block: Block, out_block: Block, outs: list[tuple[int, ...]], *, animate: bool, first: int = 0
    ) -> None:
        """One group per output position: its footprint on the input and the active output cell.
        Animated with SMIL: group ``i`` shows during ``[i·t, (i+1)·t)`` of each ``N·t`` loop."""
        total = len(outs)
        period = FRAME_SECONDS * total
        for index, out in enumerate(outs):
            number = first + index
            hidden = animate and index > 0
            svg.open("g", class_="frame", data_frame=number, data_out=coord_text(out), visibility="hidden" if hidden else None)
            if animate and total > 1:
                svg.add(
                    "animate",
                    attributeName="visibility",
                    values="visible;hidden",
                    keyTimes=f"0;{float(Fraction(1, total)):.6g}",
                    calcMode="discrete",
                    dur=f"{float(period):g}s",
                    begin=f"{float(FRAME_SECONDS * index):g}s",
                    repeatCount="indefinite",
                )
            for coord in self.plan.footprint(out):
                _cell(svg, in_block, coord, KERNEL, self.inset)
            _cell(svg, out_block, out, "active", self.inset, data_frame=number)
            label = f"step {number + 1} of {self.plan.frame_count}: output {coord_text(out)}"
            svg.text(x, out_block.y - 8 - (16 if len(out) == 3 else 0), label, class_="small", data_role="step")
            svg.close("g")


# ----------------------------------------------------------------------------------------------
# Legends
# ----------------------------------------------------------------------------------------------

LEGEND = ((INPUT, "input"), (PADDING, "padding"), (ZERO, "inserted zero"), (CROPPED, "cropped"), (KERNEL, "kernel"), (OUTPUT, "output"))


def formula_lines(stage: StageResult, plan: GridPlan) -> list[str]:
    """The output-size formula with the numbers substituted (the stage's own ``--explain`` lines),
    and for a transposed conv how the equivalent direct convolution is built."""
    lines = [line for line in stage.stats.explain if "_out = " in line]
    op = stage.op
    if isinstance(op, ConvTranspose):
        parts = []
        for axis, (k, s, p, d, q) in enumerate(zip(op.kernel_size, op.stride, op.padding, op.dilation, op.output_padding, strict=True)):
            before, after = d * (k - 1) - p[0], d * (k - 1) - p[1] + q
            name = "LHW"[axis] if len(op.kernel_size) == 1 else "DHW"[axis + 3 - len(op.kernel_size)]
            parts.append(
                f"{name}: {s - 1} zero(s) between inputs, padding d(k-1)-p = {before} before, {after} after"
                + (f" (incl. output_padding {q})" if q else "")
            )
        lines.append("drawn as a direct conv, stride 1, over the zero-inserted input:")
        lines.extend("  " + part for part in parts)
    return lines


def legend(svg: Svg, x: float, y: float, roles: set[str]) -> float:
    """Swatches for the roles present; returns the height used."""
    cursor = x
    for role, text in LEGEND:
        if role not in roles:
            continue
        svg.rect(cursor, y, 14, 14, class_=role)
        svg.text(cursor + 19, y + 11, text, class_="label")
        cursor += 30 + 7 * len(text)
    return 22


# ----------------------------------------------------------------------------------------------
# Channel connections (composite and grouped layers)
# ----------------------------------------------------------------------------------------------

MAX_CHANNEL_TICKS = 64
"""Channels drawn one by one up to this count; wider tensors are drawn as one bar."""


def _band(
    svg: Svg, x1: float, a1: float, b1: float, x2: float, a2: float, b2: float, colour: str, up: float, **extra: str | int
) -> None:
    """A block joining channels ``[a1, b1]`` at ``x1`` to ``[a2, b2]`` at ``x2`` (arcing ``up`` above)."""
    c1, c2 = ((x1 + 40, x2 - 40) if up else ((x1 + x2) / 2, (x1 + x2) / 2))
    d = (
        f"M{x1:.1f},{a1:.1f} C{c1:.1f},{a1 - up:.1f} {c2:.1f},{a2 - up:.1f} {x2:.1f},{a2:.1f}"
        f" L{x2:.1f},{b2:.1f} C{c2:.1f},{b2 - up:.1f} {c1:.1f},{b1 - up:.1f} {x1:.1f},{b1:.1f} Z"
    )
    svg.add("path", d=d, class_="band", fill=colour, stroke=colour, **extra)


def shuffle_target(channel: int, channels: int, groups: int) -> int:
    """Where channel shuffle sends ``channel``: reshape ``(g, C/g)``, transpose, flatten (Zhang
    et al. 2018), so channel ``a·(C/g) + b`` goes to position ``b·g + a``."""
    per = channels // groups
    group, offset = divmod(channel, per)
    return offset * groups + group


def channel_diagram(svg: Svg, stages: Sequence[StageResult], x: float, y: float, width: float) -> float:
    """Tensors as columns of channels (the input, then each stage's output) and every stage's
    channel connections: each group a coloured block joining its input channels to its output
    channels, with one line per connection when there are few (a dense conv is one block, a
    depthwise conv one thin block per channel); a shuffle as crossing lines; a merge as one
    line per channel from each input. A stage reading a tensor further left arcs above the
    columns in between. Returns the height used."""
    names = ["in", *(s.name for s in stages)]
    shapes = {"in": stages[0].input_shapes[0], **{s.name: s.output for s in stages}}
    pitch = {name: min(22.0, 240 / shape[0]) for name, shape in shapes.items()}  # each column its own scale
    bottom = max(pitch[name] * shape[0] for name, shape in shapes.items())
    spacing = min(240.0, (width - 60) / max(len(names) - 1, 1))
    xs = {name: x + 30 + i * spacing for i, name in enumerate(names)}
    order = {name: i for i, name in enumerate(names)}
    top = y + 96 if any(order[src] < order[s.name] - 1 for s in stages for src in s.inputs) else y + 40
    svg.text(x, y + 14, "channels: each group a coloured block", class_="title")

    def span(name: str, start: int, stop: int) -> tuple[float, float]:
        return top + pitch[name] * start, top + pitch[name] * stop

    def lift(src: str, dst: str) -> float:
        """How far an edge skipping columns arcs above them."""
        return 0.0 if order[dst] - order[src] <= 1 else 40.0 + top - y - 40

    for stage in stages:
        out_name, op = stage.name, stage.op
        x2 = xs[out_name] - 5
        if isinstance(op, ChannelShuffle):
            (src,) = stage.inputs
            channels = shapes[src][0]
            for c in range(channels if channels <= 4 * MAX_CHANNEL_TICKS else 0):
                t = shuffle_target(c, channels, op.groups)
                colour = GROUP_COLOURS[(c * op.groups // channels) % len(GROUP_COLOURS)]
                _link(svg, xs[src] + 5, top + pitch[src] * (c + 0.5), x2, top + pitch[out_name] * (t + 0.5), 0.0, colour)
        else:
            groups = op.groups if isinstance(op, (Conv, ConvTranspose)) else 1
            for src in stage.inputs:
                x1, up = xs[src] + 5, lift(src, out_name)
                c_in, c_out = shapes[src][0], shapes[out_name][0]
                per_in, per_out = c_in // groups, c_out // groups
                lines = not op.merge and c_in * per_out <= 512 and max(c_in, c_out) <= MAX_CHANNEL_TICKS
                for g in range(groups):
                    a1, b1 = span(src, g * per_in, (g + 1) * per_in)
                    a2, b2 = span(out_name, g * per_out, (g + 1) * per_out)
                    colour = GROUP_COLOURS[g % len(GROUP_COLOURS)] if groups > 1 else "#51677d"
                    _band(svg, x1, a1, b1, x2, a2, b2, colour, up, data_role="group", data_group=g)
                    for i in range(per_in if lines else 0):
                        for o in range(per_out):
                            yi = top + pitch[src] * (g * per_in + i + 0.5)
                            yo = top + pitch[out_name] * (g * per_out + o + 0.5)
                            _link(svg, x1, yi, x2, yo, up, colour)
        label = stage.label or op.describe()
        xm = (xs[stage.inputs[0]] + xs[out_name]) / 2
        svg.text(xm, top + bottom + 34 + 13 * (order[out_name] % 2), label, class_="small", text_anchor="middle")
    for name in names:
        channels = shapes[name][0]
        if channels > MAX_CHANNEL_TICKS:  # one bar for a wide tensor
            svg.rect(xs[name] - 5, top, 10, pitch[name] * channels, class_="channel", data_role="channels", data_count=channels)
        for c in range(channels if channels <= MAX_CHANNEL_TICKS else 0):
            a, b = span(name, c, c + 1)
            svg.rect(xs[name] - 5, a + 0.3, 10, max(b - a - 0.6, 0.4), class_="channel", data_role="channel", data_coord=f"{name}:{c}")
        svg.text(xs[name], top + bottom + 16, f"{name} {format_shape(shapes[name])}", class_="small", text_anchor="middle")
    return top - y + bottom + 64


def _link(svg: Svg, x1: float, y1: float, x2: float, y2: float, up: float, colour: str) -> None:
    """One channel-to-channel connection (an S-curve, or an arc ``up`` pixels above the columns)."""
    mid = (x1 + x2) / 2
    if up:
        d = f"M{x1:.1f},{y1:.1f} C{x1 + 40:.1f},{y1 - up:.1f} {x2 - 40:.1f},{y2 - up:.1f} {x2:.1f},{y2:.1f}"
    else:
        d = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    svg.add("path", d=d, class_="edge", stroke=colour, data_role="connection")


# ----------------------------------------------------------------------------------------------
# The layer picture
# ----------------------------------------------------------------------------------------------


def panels(result: LayerResult, options: Options) -> list[tuple[StageResult, Panel]]:
    """A panel per window stage (conv, transposed conv, pooling), sized to one common cell size."""
    found: list[tuple[StageResult, GridPlan]] = []
    for stage in result.stages:
        plan = plan_for(stage.op, stage.input_shapes[0]) if stage.input_shapes else None
        if plan is not None:
            plan.check_size(f"layer '{result.spec.name}', stage '{stage.name}'", frames=options.mode == "animate")
            found.append((stage, plan))
    if not found and not needs_channels(result):
        raise ShapeError(
            f"{result.spec.kind} has no sliding window to draw (no convolution or pooling stage).",
            hint="Draw a convolution type, e.g. 'convcalc draw conv2d --in 1x5x5 -k 3'.",
        )
    if options.mode == "overlap" and not any(p.transposed for _, p in found):
        raise ShapeError(
            "--overlap draws how many inputs feed each output of a transposed convolution; this layer has none.",
            hint="Use --grid to see how many windows use each input pixel of a direct convolution.",
        )
    if not found:
        return []
    cell = min(cell_size(plan) for _, plan in found)
    if len(found) > 1:
        cell = min(cell, max(8.0, 2 * MAX_WIDTH / sum(block_width(p.drawn_shape, 1) for _, p in found)))
    out = []
    for stage, plan in found:
        title = stage.name if len(result.stages) > 1 else f"{result.spec.kind}"
        sub = f"{format_shape(stage.input_shapes[0])} → {format_shape(stage.output)}   {stage.label or stage.op.describe()}"
        out.append((stage, Panel(plan, title, sub, cell)))
    return out


def needs_channels(result: LayerResult) -> bool:
    """Draw channel connections for multi-stage layers and grouped convolutions."""
    if len(result.stages) > 1:
        return True
    op = result.stages[0].op
    return isinstance(op, ChannelShuffle) or (isinstance(op, (Conv, ConvTranspose)) and op.groups > 1)


def draw_layer(result: LayerResult, options: Options) -> str:
    """The whole SVG file for an evaluated layer."""
    if options.mode not in MODES:
        raise ShapeError(f"unknown drawing mode {options.mode!r}; one of {', '.join(MODES)}.")
    laid = panels(result, options)
    check_channels_drawable(result)
    svg = Svg()
    margin = 16.0
    heights = []
    roles: set[str] = {OUTPUT}
    for _, panel in laid:
        heights.append(panel.height)
        roles |= {role for _, role in panel.plan.cells()}
    width_panels = sum(p.width for _, p in laid) + 40 * max(len(laid) - 1, 0)
    lines = [f"{result.spec.kind} '{result.spec.name}': {format_shape(result.input_shape)} → {format_shape(result.output_shape)}"]
    for stage, panel in laid:
        prefix = f"{stage.name}: " if len(laid) > 1 else ""
        lines.extend(prefix + line for line in formula_lines(stage, panel.plan))
    lines.extend(f"note: {note}" for note in dict.fromkeys(result.notes))
    if options.mode == "grid":
        lines.append("numbers: how many windows (output positions) read each drawn cell")
    if options.mode == "overlap":
        lines.append("numbers: how many real input pixels feed each output pixel (uneven = checkerboard)")
    total_width = max(width_panels, 520.0, 7.3 * max(len(line) for line in lines)) + 2 * margin
    x = (total_width - width_panels) / 2 if len(laid) == 1 else margin
    body = Svg()
    top = margin
    for _, panel in laid:
        panel.draw(body, x, top, options)
        x += panel.width + 40
    y = top + max(heights, default=0.0)
    if options.mode in ("animate", "step"):
        roles.add(KERNEL)
    if laid:
        y += legend(body, margin, y, roles) + 6
    for line in lines:
        y += 16
        body.text(margin, y, line, class_="formula")
    y += 14
    if needs_channels(result):
        y += channel_diagram(body, result.stages, margin, y, max(total_width - 2 * margin, 360.0))
    total_height = y + margin
    svg.rect(0, 0, total_width, total_height, fill="#ffffff")
    svg.parts.extend(body.parts)
    title = f"convcalc draw {result.spec.kind}: {format_shape(result.input_shape)} -> {format_shape(result.output_shape)}"
    return svg.document(total_width, total_height, STYLE, title)


def check_channels_drawable(result: LayerResult) -> None:
    """Refuse channel diagrams that would draw an absurd number of bands."""
    for stage in result.stages:
        groups = getattr(stage.op, "groups", 1)
        if isinstance(groups, int) and groups > 1024:
            raise LimitError(
                f"stage '{stage.name}' has {groups:,} groups (limit 1,024 for the channel picture).",
                hint="Draw a version with fewer channels; the spatial picture does not depend on them.",
            )

