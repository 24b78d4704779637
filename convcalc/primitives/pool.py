"""Pooling: max/avg windows (PyTorch ``MaxPool*d``/``AvgPool*d``), adaptive and global pooling.

``other_ops`` counts one comparison (max) or one addition (avg, plus the division) per window
element. Receptive field: a pooling window is a window like a convolution (Distill 2019); uneven
adaptive windows are not tracked (``rf=None``, said in ``notes``). A pooling whose one output unit
spans the whole map (global or adaptive-to-1 pooling, a window as large as the map) is a *global
reduction* (``OpStats.global_reduction``): what follows it sees global context, not a wider local
field (:mod:`convcalc.rf`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.formula import axis_names, positions, product
from convcalc.parse.values import Axes, Pairs, format_shape
from convcalc.primitives.base import OpStats, Shape, check_rank, numel, pads_text, single_input
from convcalc.primitives.conv import conv_out_size, effective_kernel, transposed_step
from convcalc.rf import AxisStep

# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------


def pool_out_size(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int, ceil_mode: bool, axis: str) -> int:
    """Output size of a pooling window (PyTorch ``pooling_output_shape_pad_lr``).

    * floor mode: ``floor((i + p_b + p_a - d(k-1) - 1)/s) + 1`` (:func:`convcalc.primitives.conv.conv_out_size`);
    * ceil mode: ``ceil(...) + 1`` — the floor formula with ``s - 1`` more padding after — then
      minus one if that last window would start at or after ``i + p_b`` ("the last pooling must
      start inside the image or the left padding").
    """
    if not ceil_mode:
        return conv_out_size(size, kernel, stride, pad, dilation, axis)
    try:
        out = conv_out_size(size, kernel, stride, (pad[0], pad[1] + stride - 1), dilation, axis)
    except ShapeError:
        raise ShapeError(
            f"along axis {axis} the pooling window d·(k-1)+1 = {effective_kernel(kernel, dilation)} does not fit the"
            f" padded input {size} + {pad[0]} + {pad[1]}, even in ceil mode (the output would be smaller than 1).",
            hint="Use a smaller kernel or dilation, or a larger input.",
        ) from None
    if (out - 1) * stride >= size + pad[0]:
        out -= 1
    return out


def check_pool_padding(kernel: Axes, padding: Pairs) -> None:
    """PyTorch refuses pooling padding larger than half the (undilated) kernel: ``p <= k // 2``."""
    for name, k, (before, after) in zip(axis_names(len(kernel)), kernel, padding, strict=True):
        if max(before, after) > k // 2:
            raise ShapeError(
                f"along axis {name} the pooling padding {max(before, after)} is more than half the kernel {k}"
                f" (PyTorch requires padding <= kernel_size // 2 = {k // 2}).",
                hint="Lower the padding or enlarge the kernel.",
            )


def pools_whole_map(size: Sequence[int], out: Sequence[int], steps: Sequence[AxisStep]) -> bool:
    """True when a pooling reduces over all spatial axes: a single output unit whose window spans
    the whole input map (of more than one position). Per axis the window covers input positions
    ``-p .. k - 1 - p`` (``k`` the effective kernel, ``p >= 0`` the padding before), which must
    reach the last position ``I - 1``."""
    return (
        all(o == 1 for o in out)
        and any(i > 1 for i in size)
        and all(st.kernel - 1 - st.pad >= i - 1 for i, st in zip(size, steps, strict=True))
    )


@dataclass(frozen=True)
class Pool:
    """Max or average pooling, PyTorch ``MaxPool{1,2,3}d`` / ``AvgPool{1,2,3}d`` semantics.

    * output per axis: :func:`pool_out_size` (floor or ceil mode); channels unchanged
    * params 0, MACs 0; ``other_ops = out_elements × (K - 1)`` comparisons (max) or
      ``out_elements × K`` (avg: ``K - 1`` additions and one division), ``K = prod(k)``
    * receptive-field step: kernel ``d(k-1)+1``, stride ``s``, padding ``p_b`` (Distill 2019).
      ``count_include_pad`` changes values only, never shapes or counts.
    """

    op: ClassVar[str] = "pool"
    merge: ClassVar[bool] = False

    mode: str
    kernel_size: Axes
    stride: Axes
    padding: Pairs
    dilation: Axes
    ceil_mode: bool = False
    count_include_pad: bool = True

    def describe(self) -> str:
        text = f"{self.mode}pool k={format_shape(self.kernel_size)} s={format_shape(self.stride)}"
        if any(p != (0, 0) for p in self.padding):
            text += f" p={pads_text(self.padding)}"
        if any(d != 1 for d in self.dilation):
            text += f" d={format_shape(self.dilation)}"
        return text + (" ceil" if self.ceil_mode else "")

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, len(self.kernel_size), f"this {self.mode} pooling")
        check_pool_padding(self.kernel_size, self.padding)
        out = tuple(
            pool_out_size(i, k, s, p, d, self.ceil_mode, n)
            for i, k, s, p, d, n in zip(
                shape[1:], self.kernel_size, self.stride, self.padding, self.dilation, axis_names(len(shape) - 1), strict=True
            )
        )
        window = numel(self.kernel_size)
        per_out = window - 1 if self.mode == "max" else window
        ops = product(
            "other ops",
            [("C", shape[0]), positions(out, "out"), ("K-1 comparisons" if self.mode == "max" else "K adds+div", per_out)],
        )
        steps = tuple(
            AxisStep(effective_kernel(k, d), s, Fraction(p[0]))
            for k, s, p, d in zip(self.kernel_size, self.stride, self.padding, self.dilation, strict=True)
        )
        return OpStats(
            output=(shape[0], *out),
            other_ops=ops.value,
            rf=steps,
            explain=(ops.explain(),),
            global_reduction=pools_whole_map(shape[1:], out, steps),
        )


def adaptive_windows_total(size: int, out: int) -> int:
    """Sum of the adaptive window lengths along one axis: ``I + O - gcd(I, O)``.

    PyTorch's window ``o`` is ``[floor(o·I/O), ceil((o+1)·I/O))``. With ``Σ_{o<O} floor(o·I/O) =
    ((I-1)(O-1) + gcd(I,O) - 1)/2`` and ``ceil(k·I/O) = I - floor((O-k)·I/O)``, the sum of
    ``end - start`` telescopes to ``I + O - gcd(I, O)`` (e.g. I=5, O=3: 2+3+2 = 7).
    """
    return size + out - gcd(size, out)


def adaptive_step(size: int, out: int) -> AxisStep | None:
    """Receptive-field step of adaptive pooling along one axis, or None when windows are uneven.

    ``I % O == 0``: windows of ``I/O`` with stride ``I/O`` (an ordinary pooling). ``O % I == 0``:
    every output copies one input, exactly nearest upsampling by ``O/I``. Otherwise windows differ
    in length and position: no regular grid.
    """
    if size % out == 0:
        return AxisStep(size // out, size // out, Fraction(0))
    if out % size == 0:
        return transposed_step(out // size, out // size, 0)
    return None


@dataclass(frozen=True)
class AdaptivePool:
    """Adaptive (and global) max/avg pooling, PyTorch ``AdaptiveAvgPool{1,2,3}d`` semantics.

    * output: ``output_size`` per axis (``None`` keeps the input size); ``keepdims=False`` drops
      the spatial axes (global pooling to a ``(C,)`` vector, Keras ``GlobalAveragePooling``)
    * window ``o`` along an axis: ``[floor(o·I/O), ceil((o+1)·I/O))``; params 0, MACs 0
    * ``other_ops = C × prod(W_a)`` (avg: one op per window element) or ``C × (prod(W_a) -
      out_positions)`` (max), ``W_a = I + O - gcd(I, O)`` (:func:`adaptive_windows_total`)
    """

    op: ClassVar[str] = "adaptive_pool"
    merge: ClassVar[bool] = False

    mode: str
    output_size: tuple[int | None, ...]
    keepdims: bool = True

    def describe(self) -> str:
        sizes = "x".join("*" if o is None else str(o) for o in self.output_size)
        return f"adaptive {self.mode}pool -> {sizes}" + ("" if self.keepdims else " (flat)")

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, len(self.output_size), f"this adaptive {self.mode} pooling")
        out = tuple(i if o is None else o for i, o in zip(shape[1:], self.output_size, strict=True))
        read = shape[0] * math.prod(adaptive_windows_total(i, o) for i, o in zip(shape[1:], out, strict=True))
        other = read if self.mode == "avg" else read - shape[0] * numel(out)
        steps = [adaptive_step(i, o) for i, o in zip(shape[1:], out, strict=True)]
        global_reduction = all(o == 1 for o in out) and any(i > 1 for i in shape[1:])
        notes: tuple[str, ...] = ()
        rf: tuple[AxisStep, ...] | None = tuple(s for s in steps if s is not None)
        if None in steps or not self.keepdims:
            rf = None
        if None in steps:
            notes = (
                f"receptive field not tracked: adaptive pooling {format_shape(shape[1:])} -> {format_shape(out)}"
                " has windows of unequal length (neither size divides the other).",
            )
        return OpStats(
            output=(shape[0], *out) if self.keepdims else (shape[0],),
            other_ops=other,
            rf=rf,
            notes=notes,
            explain=(f"other ops = {other:,} ({self.mode} over windows of total length I + O - gcd(I, O) per axis)",),
            global_reduction=global_reduction,
        )
