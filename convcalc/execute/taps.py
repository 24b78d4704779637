"""Per-tap window loops on flat contiguous slices (depthwise conv, pooling).

A window op ``y[o] = reduce_t f(t, x_pad[o*s + t*d])`` is computed tap by
tap.  To make every tap a single long contiguous slice (NumPy's per-call
overhead dominates short inner loops), the padded input is split into
``prod(s)`` stride phases, ``phase[f][i] = x_pad[i*s + f]``, each flattened
with row pitch ``Lph``; tap ``t`` then reads phase ``(t*d) % s`` at flat offset
``sum_a ((t_a*d_a) // s_a) * pitch_a``.  Outputs are produced in a "wide"
layout with the same pitch (positions past the true output length along the
inner axes are garbage) and cropped at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import product
from math import prod
from typing import Any

import numpy as np

from convcalc.execute.geometry import FloatArray, Pairs, copy_padded, phase_view, reshape_view
from convcalc.execute.workspace import Workspace


@dataclass(frozen=True)
class FlatTap:
    """One kernel tap: its flat kernel index, stride phase and flat offset."""

    index: int
    phase: int
    offset: int


@dataclass(frozen=True)
class TapGeometry:
    """Window geometry (per spatial axis) of a tap-wise op."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Pairs
    dilation: tuple[int, ...]

    @cached_property
    def phase_shape(self) -> tuple[int, ...]:
        """Extent of each stride phase: outputs plus the largest tap shift."""
        return tuple(
            o + (k - 1) * d // s for o, k, s, d in zip(self.out_shape, self.kernel, self.stride, self.dilation, strict=True)
        )

    @cached_property
    def pitch(self) -> tuple[int, ...]:
        """Flat stride of each axis inside a phase."""
        ph = self.phase_shape
        return tuple(prod(ph[a + 1 :]) for a in range(len(ph)))

    @cached_property
    def strided(self) -> bool:
        """Whether any stride exceeds 1 (phases need a second copy)."""
        return any(s > 1 for s in self.stride)

    @cached_property
    def flat_len(self) -> int:
        """Flat length of one phase including the tail read by garbage outputs."""
        shifts = [(k - 1) * d // s for k, s, d in zip(self.kernel, self.stride, self.dilation, strict=True)]
        return prod(self.phase_shape) + sum(sh * p for sh, p in zip(shifts[1:], self.pitch[1:], strict=True))

    @cached_property
    def wide_len(self) -> int:
        """Flat length of the wide output."""
        return self.out_shape[0] * self.pitch[0]

    @cached_property
    def taps(self) -> tuple[FlatTap, ...]:
        """All kernel taps in row-major order."""
        out = []
        for flat, t in enumerate(product(*(range(k) for k in self.kernel))):
            shift = [ti * d for ti, d in zip(t, self.dilation, strict=True)]
            phase = int(np.ravel_multi_index([sh % s for sh, s in zip(shift, self.stride, strict=True)], self.stride))
            off = sum((sh // s) * p for sh, s, p in zip(shift, self.stride, self.pitch, strict=True))
            out.append(FlatTap(flat, phase, off))
        return tuple(out)

    def buffers(self, nb: int, channels: int) -> list[tuple[int, ...]]:
        """Scratch shapes for loading ``nb`` samples x ``channels`` channels."""
        shapes: list[tuple[int, ...]] = [(nb, channels, prod(self.stride), self.flat_len)]
        if self.strided:
            shapes.append((nb, channels, *(p * s for p, s in zip(self.phase_shape, self.stride, strict=True))))
        return shapes

    def load(self, x: FloatArray, fill: float, ws: Workspace) -> FloatArray:
        """Pad ``x`` (nb, C, *in) with ``fill`` and split it into flat phases."""
        nb, ch = x.shape[:2]
        shapes = self.buffers(nb, ch)
        phases = ws.take(shapes[0], x.dtype)
        n = prod(self.phase_shape)
        phases[..., n:] = fill
        ranges = [(-pb, -pb + p * s) for (pb, _), p, s in zip(self.padding, self.phase_shape, self.stride, strict=True)]
        if not self.strided:
            copy_padded(x, ranges, reshape_view(phases[:, :, 0, :n], (nb, ch, *self.phase_shape)), fill)
            return phases
        slab = ws.take(shapes[1], x.dtype)
        copy_padded(x, ranges, slab, fill)
        np.copyto(reshape_view(phases[..., :n], (nb, ch, *self.stride, *self.phase_shape)), phase_view(slab, self.stride))
        return phases

    def source(self, phases: FloatArray, tap: FlatTap) -> FloatArray:
        """``(nb, C, wide_len)`` slice tap ``tap`` reads."""
        return phases[:, :, tap.phase, tap.offset : tap.offset + self.wide_len]

    def crop(self, wide: FloatArray) -> FloatArray:
        """View of the valid outputs of a ``(..., wide_len)`` array."""
        lead = wide.shape[:-1]
        shaped = wide.reshape(*lead, self.out_shape[0], *self.phase_shape[1:])
        valid: tuple[Any, ...] = (Ellipsis, *(slice(0, o) for o in self.out_shape))
        return np.asarray(shaped[valid])
