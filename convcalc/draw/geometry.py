"""What a layer picture shows, as exact integers: the drawn input grid, every window footprint,
use counts and (transposed) contribution counts. No drawing code here.

Every window op is drawn as a *direct* convolution sliding over a row of drawn cells per axis,
as Dumoulin & Visin (2016, "A guide to convolution arithmetic for deep learning") draw them:

* convolution / pooling: ``p_b`` padding cells, the ``i`` input cells, ``p_a`` padding cells;
  output ``o``'s window starts at drawn cell ``o·s`` (input coordinate ``o·s - p_b``) and its
  taps are ``t·d`` further (``t < k``). The number of outputs is :func:`convcalc.primitives.conv.conv_out_size`.
* transposed convolution (D&V relationships 13-14): the input with ``s - 1`` zeros inserted
  between pixels, padded by ``d(k-1) - p_b`` before and ``d(k-1) - p_a + output_padding`` after
  (a negative amount crops that many cells of the stretched input), then a stride-1 window of
  ``k`` taps ``d`` apart. The number of outputs is :func:`convcalc.primitives.conv.transposed_out_size`.

An N-d window is the product of its axes, so footprints, use counts and contribution counts are
products of per-axis quantities.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from convcalc.errors import LimitError, ShapeError
from convcalc.formula import axis_names
from convcalc.parse.values import Axes, Pairs, format_shape
from convcalc.primitives.conv import Conv, ConvTranspose, conv_out_size, effective_kernel, transposed_out_size

INPUT, PADDING, ZERO, CROPPED, OUTPUT, KERNEL = "input", "padding", "inserted-zero", "cropped", "output", "kernel"
"""``data-role`` values of drawn cells. ``cropped``: stretched-input cells a transposed conv's
padding crops away (drawn faded, never under a window)."""

ROLE_ORDER = (CROPPED, PADDING, ZERO, INPUT)
"""A cell of an N-d grid takes the first of these roles any of its axes has."""

MAX_CELLS = 4096
"""Most input or output cells one picture draws (64x64): an SVG cell is ~100 bytes."""
MAX_FRAMES = 1024
"""Most animation frames (output positions) one picture holds."""


@dataclass(frozen=True)
class AxisPlan:
    """One spatial axis drawn as a direct window over a row of cells (module docstring)."""

    roles: tuple[str, ...]
    sources: tuple[int | None, ...]
    start: int
    kernel: int
    stride: int
    dilation: int
    out: int

    def taps(self, o: int) -> tuple[int, ...]:
        """Drawn cells under output ``o``'s window: ``start + o·s + t·d`` for ``t < k``."""
        first = self.start + o * self.stride
        return tuple(first + t * self.dilation for t in range(self.kernel))

    def uses(self) -> tuple[int, ...]:
        """How many (output, tap) pairs land on each drawn cell."""
        counts = [0] * len(self.roles)
        for o in range(self.out):
            for x in self.taps(o):
                counts[x] += 1
        return tuple(counts)

    def contributions(self) -> tuple[int, ...]:
        """Per output: how many of its taps land on real input cells (not padding or zeros)."""
        return tuple(sum(self.roles[x] == INPUT for x in self.taps(o)) for o in range(self.out))


def direct_axis(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int, axis: str) -> AxisPlan:
    """A convolution or pooling axis (module docstring)."""
    out = conv_out_size(size, kernel, stride, pad, dilation, axis)
    roles = (PADDING,) * pad[0] + (INPUT,) * size + (PADDING,) * pad[1]
    sources = (None,) * pad[0] + tuple(range(size)) + (None,) * pad[1]
    return AxisPlan(roles, sources, 0, kernel, stride, dilation, out)


def transposed_axis(
    size: int, kernel: int, stride: int, crop: tuple[int, int], dilation: int, output_padding: int, axis: str
) -> AxisPlan:
    """A transposed-convolution axis as the equivalent direct convolution (module docstring)."""
    out = transposed_out_size(size, kernel, stride, crop, dilation, output_padding, axis)
    k_eff = effective_kernel(kernel, dilation)
    stretched = (size - 1) * stride + 1  # s - 1 zeros between neighbouring inputs
    roles = [INPUT if j % stride == 0 else ZERO for j in range(stretched)]
    sources: list[int | None] = [j // stride if j % stride == 0 else None for j in range(stretched)]
    before = k_eff - 1 - crop[0]
    after = k_eff - 1 - crop[1] + output_padding
    for j in range(min(-before, stretched)):  # negative padding crops the stretched input
        roles[j] = CROPPED
    for j in range(max(stretched + after, 0), stretched):
        roles[j] = CROPPED
    pad_b, pad_a = max(before, 0), max(after, 0)
    return AxisPlan(
        (PADDING,) * pad_b + tuple(roles) + (PADDING,) * pad_a,
        (None,) * pad_b + tuple(sources) + (None,) * pad_a,
        max(-before, 0),
        kernel,
        1,
        dilation,
        out,
    )


class WindowOp(Protocol):
    """Any primitive with a sliding window along each spatial axis (Conv, Pool)."""

    @property
    def kernel_size(self) -> Axes: ...
    @property
    def stride(self) -> Axes: ...
    @property
    def padding(self) -> Pairs: ...
    @property
    def dilation(self) -> Axes: ...


@dataclass(frozen=True)
class GridPlan:
    """An N-d window op drawn as a direct convolution: one :class:`AxisPlan` per spatial axis."""

    axes: tuple[AxisPlan, ...]
    transposed: bool = False
    groups: int = 1

    @property
    def drawn_shape(self) -> tuple[int, ...]:
        return tuple(len(a.roles) for a in self.axes)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(a.out for a in self.axes)

    @property
    def frame_count(self) -> int:
        return math.prod(self.out_shape)

    def role(self, coord: Sequence[int]) -> str:
        """The role of a drawn cell (:data:`ROLE_ORDER`)."""
        roles = {a.roles[x] for a, x in zip(self.axes, coord, strict=True)}
        return next(r for r in ROLE_ORDER if r in roles)

    def source(self, coord: Sequence[int]) -> tuple[int, ...] | None:
        """The input pixel a drawn cell holds, or None (padding, inserted zero)."""
        found = tuple(a.sources[x] for a, x in zip(self.axes, coord, strict=True))
        return None if None in found else tuple(x for x in found if x is not None)

    def cells(self) -> Iterator[tuple[tuple[int, ...], str]]:
        """Every drawn input cell with its role, row-major."""
        for coord in itertools.product(*(range(n) for n in self.drawn_shape)):
            yield coord, self.role(coord)

    def frames(self) -> Iterator[tuple[int, ...]]:
        """Output positions in animation order (row-major)."""
        return itertools.product(*(range(n) for n in self.out_shape))

    def footprint(self, out: Sequence[int]) -> list[tuple[int, ...]]:
        """Drawn cells under the window of output ``out``, one per kernel tap, row-major taps."""
        return list(itertools.product(*(a.taps(o) for a, o in zip(self.axes, out, strict=True))))

    def uses(self, coord: Sequence[int]) -> int:
        """Windows covering a drawn cell: the product of the per-axis use counts."""
        return math.prod(u[x] for u, x in zip(self._uses, coord, strict=True))

    def contributions(self, out: Sequence[int]) -> int:
        """Real input pixels feeding output ``out`` (transposed: ``convcalc overlap`` counts)."""
        return math.prod(c[o] for c, o in zip(self._contributions, out, strict=True))

    @cached_property
    def _uses(self) -> tuple[tuple[int, ...], ...]:
        return tuple(a.uses() for a in self.axes)

    @cached_property
    def _contributions(self) -> tuple[tuple[int, ...], ...]:
        return tuple(a.contributions() for a in self.axes)

    def check_size(self, what: str, frames: bool = True) -> None:
        """Refuse pictures that would be absurdly large (:data:`MAX_CELLS`, :data:`MAX_FRAMES`)."""
        drawn, out = math.prod(self.drawn_shape), self.frame_count
        example = "1x" + "x".join(["5" if len(self.axes) == 3 else "7"] * len(self.axes))
        hint = f"Draw a smaller input (the picture of a window does not depend on the channel count), e.g. --in {example}."
        if drawn > MAX_CELLS or out > MAX_CELLS:
            raise LimitError(
                f"{what}: the picture would have {max(drawn, out):,} cells"
                f" (drawn input {format_shape(self.drawn_shape)}, output {format_shape(self.out_shape)};"
                f" limit {MAX_CELLS:,}).",
                hint=hint,
            )
        if frames and out > MAX_FRAMES:
            raise LimitError(
                f"{what}: the animation would have {out:,} frames, one per output position (limit {MAX_FRAMES:,}).",
                hint=hint + " Or draw one frame with --step N, or all windows at once with --grid.",
            )


def plan_window(op: WindowOp, sizes: Sequence[int], groups: int = 1) -> GridPlan:
    """A convolution or pooling op on an input of spatial ``sizes``."""
    names = axis_names(len(sizes))
    return GridPlan(
        tuple(
            direct_axis(i, k, s, p, d, n)
            for i, k, s, p, d, n in zip(sizes, op.kernel_size, op.stride, op.padding, op.dilation, names, strict=True)
        ),
        groups=groups,
    )


def plan_transposed(op: ConvTranspose, sizes: Sequence[int]) -> GridPlan:
    """A transposed convolution on an input of spatial ``sizes``."""
    names = axis_names(len(sizes))
    return GridPlan(
        tuple(
            transposed_axis(i, k, s, p, d, q, n)
            for i, k, s, p, d, q, n in zip(
                sizes, op.kernel_size, op.stride, op.padding, op.dilation, op.output_padding, names, strict=True
            )
        ),
        transposed=True,
        groups=op.groups,
    )


def plan_for(op: object, input_shape: Sequence[int]) -> GridPlan | None:
    """The plan of any window primitive (Conv, ConvTranspose, Pool), or None for other ops."""
    from convcalc.primitives.pool import Pool

    sizes = input_shape[1:]
    if not sizes:
        return None
    if isinstance(op, ConvTranspose):
        return plan_transposed(op, sizes)
    if isinstance(op, Conv):
        return plan_window(op, sizes, op.groups)
    if isinstance(op, Pool):
        return plan_window(op, sizes)
    return None


def step_index(step: int, plan: GridPlan) -> tuple[int, ...]:
    """The output position of 1-based animation step ``step``."""
    if not 1 <= step <= plan.frame_count:
        raise ShapeError(
            f"--step {step} is out of range: this layer has {plan.frame_count:,} output positions"
            f" ({format_shape(plan.out_shape)}), steps 1 to {plan.frame_count:,}.",
            hint="Pick a step in that range, or omit --step for the animation.",
        )
    return next(itertools.islice(plan.frames(), step - 1, None))
