"""Exact path counts from every input pixel to one unit of a network layer.

With every weight equal to one and no non-linearity, the gradient of a unit with respect to an
input pixel is the number of paths between them in the network's spatial graph: the "effective
receptive field" of Luo et al. (2016, "Understanding the Effective Receptive Field in Deep
Convolutional Neural Networks") without training. Its counts concentrate in the centre of the
theoretical field (Gaussian-like), which is why the effective field is much smaller.

The graph has one node per spatial position of every tensor; a window op has one edge per
kernel tap that lands on a real (not padding) position, a merge one edge from each input at the
same position (a size-1 broadcast input: from its one position), an element-wise op one edge.
Channels are not multiplied in: with uniform weights a convolution scales every path through it
by the same factor ``C_in/g``, so only merges of branches with different widths would weigh
branches differently. Counts are Python ints (they grow like ``prod(k)`` per layer).

Counts are pushed backwards from the unit, stage by stage in reverse order, one axis at a time
(every op here is a product of per-axis connections), keeping only the positions the unit can
reach; the work is bounded (:data:`MAX_WORK`) before it is spent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from convcalc.draw.geometry import INPUT, plan_for
from convcalc.engine import StageResult
from convcalc.errors import LimitError, ShapeError
from convcalc.network.evaluate import INPUT_TENSOR
from convcalc.network.result import UNALIGNED, LayerRow, NetResult
from convcalc.parse.values import format_shape
from convcalc.primitives.base import Shape
from convcalc.primitives.conv import DeformSample
from convcalc.rf import AxisStep

MAX_WORK = 40_000_000
"""Most count updates one picture may cost (a few seconds of Python)."""

Counts = dict[tuple[int, ...], int]


def window_links(stage: StageResult, axis: int) -> list[list[int]] | None:
    """Conv, transposed conv, pooling: the input positions under each output's window along
    ``axis`` (taps on padding or inserted zeros carry no path), from the drawn plan."""
    plan = plan_for(stage.op, stage.input_shapes[0])
    if plan is None:
        return None
    along = plan.axes[axis]
    return [
        [src for x in along.taps(o) if along.roles[x] == INPUT and (src := along.sources[x]) is not None] for o in range(along.out)
    ]


def adaptive_links(size: int, out: int) -> list[list[int]]:
    """PyTorch adaptive pooling: output ``o`` reads ``[floor(o·I/O), ceil((o+1)·I/O))``."""
    return [list(range(o * size // out, -(-(o + 1) * size // out))) for o in range(out)]


def step_links(step: AxisStep, size: int, out: int) -> list[list[int]]:
    """Any other op, from its receptive-field step (:mod:`convcalc.rf`): a window of ``kernel``
    inputs starting at ``o·stride - pad``; with ``upsample = u`` (upsampling, pixel shuffle), the
    transposed form: input ``i`` reaches outputs ``i·u + t - (kernel - 1 - pad)``, ``t < kernel``."""
    pad = int(step.pad)
    if step.upsample == 1:
        return [[i for t in range(step.kernel) if 0 <= (i := o * step.stride - pad + t) < size] for o in range(out)]
    links: list[list[int]] = [[] for _ in range(out)]
    shift = step.kernel - 1 - pad
    for i in range(size):
        for t in range(step.kernel):
            o = i * step.upsample + t - shift
            if 0 <= o < out:
                links[o].append(i)
    return links


def links_for(stage: StageResult, source: int, axis: int) -> list[list[int]]:
    """Per output index along ``axis``, the indices of input ``source`` it reads."""
    from convcalc.primitives.pool import AdaptivePool

    size, out = stage.input_shapes[source][axis + 1], stage.output[axis + 1]
    if stage.op.merge:
        return [[0] if size == 1 else [o] for o in range(out)]
    found = window_links(stage, axis)
    if found is not None:
        return found
    if isinstance(stage.op, AdaptivePool):
        return adaptive_links(size, out)
    steps = stage.stats.rf
    if steps is None:
        raise ShapeError(
            f"stage '{stage.name}' ({stage.op.describe()}) has no per-axis connection convcalc tracks.",
            hint="Pick a layer before it.",
        )
    return step_links(steps[axis], size, out)


@dataclass
class PathCounts:
    """The result: counts per input pixel reaching the unit, and what the paths went through."""

    unit: tuple[int, ...]
    row: LayerRow
    counts: Counts
    work: int
    marks: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def peak(self) -> int:
        return max(self.counts.values(), default=0)

    def smallest_share(self, share: tuple[int, int]) -> int:
        """How many pixels (the most-travelled first) hold at least ``num/den`` of all paths."""
        num, den = share
        need, acc = self.total * num, 0
        for n, value in enumerate(sorted(self.counts.values(), reverse=True), start=1):
            acc += value * den
            if acc >= need:
                return n
        return len(self.counts)


def find_row(result: NetResult, layer: str) -> LayerRow:
    """A row by name, or the last row of a block (``layer1`` -> ``layer1.2.relu``)."""
    for row in result.rows:
        if row.name == layer:
            return row
    inside = [row for row in result.rows if row.name.startswith(layer + ".")]
    if inside:
        return inside[-1]
    from difflib import get_close_matches

    names = [row.name for row in result.rows] + sorted(result.blocks)
    close = get_close_matches(layer, names, n=1)
    raise ShapeError(
        f"no layer or block named '{layer}' in {result.name}.",
        hint=f"Did you mean '{close[0]}'? " if close else "Run 'convcalc net SPEC' to list the layer names.",
    )


def parse_unit(text: str | None, shape: Shape, layer: str) -> tuple[int, ...]:
    """``"3,4"`` -> ``(3, 4)``, checked against the layer's spatial size; None: the centre unit."""
    sizes = shape[1:]
    if not sizes:
        raise ShapeError(
            f"layer '{layer}' has no spatial axes ({format_shape(shape)}): each of its units sees the whole input"
            " (global context).",
            hint="Pick a layer before the global pooling / flatten.",
        )
    if text is None:
        return tuple(n // 2 for n in sizes)
    try:
        unit = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise ShapeError(f"--unit must be integers such as 3,4, got {text!r}.") from None
    if len(unit) != len(sizes) or any(not 0 <= u < n for u, n in zip(unit, sizes, strict=False)):
        raise ShapeError(
            f"--unit {text} is not a position of layer '{layer}', whose output is {format_shape(shape)}.",
            hint=f"Give {len(sizes)} indices, each from 0 to size - 1 (e.g. {','.join(str(n // 2) for n in sizes)}).",
        )
    return unit


def _push(counts: Counts, links: Sequence[list[int]], axis: int) -> tuple[Counts, int]:
    """Move counts one axis back through an op: each output index spreads to the inputs it reads."""
    new: defaultdict[tuple[int, ...], int] = defaultdict(int)
    work = 0
    for coord, value in counts.items():
        targets = links[coord[axis]]
        work += len(targets)
        for i in targets:
            key = (*coord[:axis], i, *coord[axis + 1 :])
            new[key] += value
    return dict(new), work


def count_paths(result: NetResult, layer: str, unit_text: str | None = None, max_work: int = MAX_WORK) -> PathCounts:
    """Path counts from every input pixel to one unit of ``layer`` (module docstring)."""
    row = find_row(result, layer)
    unit = parse_unit(unit_text, row.output_shape, row.name)
    stages = {s.name: s for r in result.rows for s in r.stages}
    owner = {s.name: r for r in result.rows for s in r.stages}
    order = [s.name for r in result.rows for s in r.stages]
    target = row.stages[-1].name
    tensors: dict[str, Counts] = {target: {unit: 1}}
    marks: list[str] = []
    work = 0
    for name in reversed(order[: order.index(target) + 1]):
        counts = tensors.pop(name, None)
        if not counts:
            continue
        stage = stages[name]
        if isinstance(stage.op, DeformSample):
            raise ShapeError(
                f"the paths to this unit go through '{owner[name].name}', a deformable convolution whose taps move"
                " with the data: there is no fixed graph to count.",
                hint="Pick a layer before the deformable one.",
            )
        row_of = owner[name]
        for note in row_of.notes:
            if note.startswith(UNALIGNED) and f"'{row_of.name}': {note}" not in marks:
                marks.append(f"'{row_of.name}': {note}")
        for source, tensor in enumerate(stage.inputs):
            shape = stage.input_shapes[source]
            moved = counts
            if len(shape) == 1 or len(stage.output) == 1:
                raise ShapeError(
                    f"the paths to this unit go through '{row_of.name}', which has no spatial axes"
                    f" ({format_shape(shape)} -> {format_shape(stage.output)}): every input pixel reaches it (global context).",
                    hint="Pick a layer before it.",
                )
            for axis in range(len(shape) - 1):
                if shape[axis + 1] == 1 < stage.output[axis + 1] or (stage.output[axis + 1] == 1 < shape[axis + 1]):
                    mark = f"'{row_of.name}': global context (a size-1 axis: every position of {format_shape(shape)} reaches it)"
                    if mark not in marks:
                        marks.append(mark)
                links = links_for(stage, source, axis)
                if work + len(moved) * max(map(len, links), default=0) > max_work:
                    raise LimitError(
                        f"counting the paths to layer '{row.name}' would take more than {max_work:,} steps.",
                        hint="Pick an earlier layer, or a spec with a smaller input.",
                    )
                moved, spent = _push(moved, links, axis)
                work += spent
            into = tensors.setdefault(tensor, {})
            for coord, value in moved.items():
                into[coord] = into.get(coord, 0) + value
    return PathCounts(unit, row, tensors.get(INPUT_TENSOR, {}), work, marks)
