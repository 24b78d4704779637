"""Resampling: upsample (nearest/linear) and pixel (un)shuffle.

Receptive field: upsampling by an integer factor ``s`` is the transposed convolution that computes
it exactly (nearest: kernel ``s``, crop 0; linear: kernel ``2s - s mod 2``, crop ``s // 2``), so it
follows the stated fractional-stride rule of :func:`convcalc.primitives.conv.transposed_step`: the
window lies on the grid refined ``s`` times (jump ``j/s``), with exact :class:`~fractions.Fraction`
arithmetic. That is exact where the upsampled units are single input pixels; deeper in a network a
unit's true span can be narrower by less than ``(s - 1)·j_out`` per side (the window's end positions
may fall between real units, depending on the phase ``o mod s``): the rule gives the
phase-independent bound (``tests/test_rf_bruteforce.py``). ``rf=None`` marks a field convcalc does
not track (non-integer resampling ratios; the op says so in ``notes``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.formula import axis_names
from convcalc.parse.values import Axes, format_shape
from convcalc.primitives.base import OpStats, Shape, check_rank, numel, single_input
from convcalc.primitives.conv import transposed_step
from convcalc.rf import AxisStep

# ----------------------------------------------------------------------------------------------
# Resampling: upsample, pixel shuffle/unshuffle, padding
# ----------------------------------------------------------------------------------------------

UPSAMPLE_RANKS = {"linear": 1, "bilinear": 2, "trilinear": 3}
"""PyTorch accepts each linear mode for one input rank only (3-D, 4-D, 5-D tensors)."""


def upsample_step(mode: str, ratio: Fraction, align_corners: bool) -> AxisStep | None:
    """Receptive-field step of upsampling by ``ratio = O/I`` along one axis (module docstring).

    Integer ``s``: nearest copies source ``floor(o/s)``, i.e. a transposed conv with kernel ``s``,
    stride ``s``, crop 0. Linear (``align_corners=False``) samples ``x = (o + 1/2)/s - 1/2`` from
    its two neighbours, i.e. the transposed conv with the triangle kernel ``2s - s mod 2``,
    stride ``s``, crop ``s // 2`` (FCN, Long et al. 2015). Other ratios: None (untracked).
    """
    if ratio.denominator != 1 or (align_corners and mode != "nearest"):
        return None
    s = ratio.numerator
    if mode == "nearest":
        return transposed_step(s, s, 0)
    return transposed_step(2 * s - s % 2, s, s // 2)


@dataclass(frozen=True)
class Upsample:
    """PyTorch ``nn.Upsample`` / ``F.interpolate`` with ``scale_factor`` or ``size``.

    * output per axis: ``size``, or ``floor(i × scale_factor)`` (computed in double precision,
      as PyTorch does)
    * params 0, MACs 0; nearest moves ``out_elements`` values; linear modes count ``2 × 2^n``
      ops per output element (one multiply and one add per tap of the ``2^n`` neighbours)
    * receptive field: :func:`upsample_step` (exact for integer factors)
    """

    op: ClassVar[str] = "upsample"
    merge: ClassVar[bool] = False

    mode: str
    scale_factor: tuple[Fraction, ...] | None = None
    size: Axes | None = None
    align_corners: bool = False

    def describe(self) -> str:
        how = (
            f"x{'x'.join(_fraction_text(f) for f in self.scale_factor)}"
            if self.scale_factor
            else f"-> {format_shape(self.size or ())}"
        )
        return f"upsample {self.mode} {how}"

    def _out(self, sizes: Sequence[int]) -> tuple[int, ...]:
        if self.size is not None:
            return self.size
        if self.scale_factor is None:
            raise ShapeError("upsample needs a scale_factor or a size.", hint="Add e.g. 'scale_factor: 2'.")
        return tuple(math.floor(i * float(f)) for i, f in zip(sizes, self.scale_factor, strict=True))

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        rank = len(shape) - 1
        if self.mode in UPSAMPLE_RANKS and UPSAMPLE_RANKS[self.mode] != rank:
            raise ShapeError(
                f"'{self.mode}' interpolation needs {UPSAMPLE_RANKS[self.mode]} spatial axes"
                f" but the input is {format_shape(shape)}.",
                hint="Use linear (1D), bilinear (2D), trilinear (3D) or nearest (any).",
            )
        check_rank(shape, len(self.size or self.scale_factor or ()), "this upsampling")
        out = self._out(shape[1:])
        for name, size in zip(axis_names(rank), out, strict=True):
            if size < 1:
                raise ShapeError(
                    f"along axis {name} the upsampled size is {size} (< 1).", hint="Use a larger scale_factor or size."
                )
        steps = [upsample_step(self.mode, Fraction(o, i), self.align_corners) for i, o in zip(shape[1:], out, strict=True)]
        rf = None if None in steps else tuple(s for s in steps if s is not None)
        notes = (
            ()
            if rf is not None
            else (
                f"receptive field not tracked: {self.mode} resampling {format_shape(shape[1:])} -> {format_shape(out)}"
                " is not an integer upscaling" + (" with align_corners=False" if self.mode != "nearest" else "") + ".",
            )
        )
        out_elements = shape[0] * numel(out)
        ops = 0 if self.mode.startswith("nearest") else out_elements * 2 * 2**rank
        return OpStats(output=(shape[0], *out), other_ops=ops, moved=out_elements if ops == 0 else 0, rf=rf, notes=notes)


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


@dataclass(frozen=True)
class PixelShuffle:
    """PyTorch ``PixelShuffle(r)`` (Shi et al. 2016): ``(C·r², H, W) -> (C, H·r, W·r)``; and,
    with ``inverse``, ``PixelUnshuffle(r)``: ``(C, H, W) -> (C·r², H/r, W/r)``.

    No params or ops; every element is moved once. Receptive field: shuffle is nearest
    upsampling by ``r`` (:func:`upsample_step`), unshuffle a window ``r`` with stride ``r``.
    """

    op: ClassVar[str] = "pixel_shuffle"
    merge: ClassVar[bool] = False

    factor: int
    inverse: bool = False

    def describe(self) -> str:
        return f"pixel_{'un' if self.inverse else ''}shuffle r={self.factor}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, 2, "pixel (un)shuffle")
        r = self.factor
        if self.inverse:
            if any(size % r for size in shape[1:]):
                raise ShapeError(f"pixel_unshuffle needs H and W divisible by {r}, got {format_shape(shape)}.")
            out = (shape[0] * r * r, *(size // r for size in shape[1:]))
            steps = tuple(AxisStep(r, r, Fraction(0)) for _ in shape[1:])
        else:
            if shape[0] % (r * r):
                raise ShapeError(f"pixel_shuffle needs the {shape[0]} channels to be divisible by r² = {r * r}.")
            out = (shape[0] // (r * r), *(size * r for size in shape[1:]))
            steps = tuple(transposed_step(r, r, 0) for _ in shape[1:])
        return OpStats(output=out, moved=numel(out), rf=steps)
