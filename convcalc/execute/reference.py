"""Direct-loop references for ``convcalc run --verify``: a few outputs recomputed from the
definitions in float64 and compared with the kernel's result.

Tolerance (stated, not fitted): ``8 · eps · sqrt(K) · max|x| · max|w|`` with ``K`` the
reduction length and ``eps`` the dtype's machine epsilon (float32 1.2e-7): the rounding error
of a ``K``-term dot product grows like ``sqrt(K)`` (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., sec. 3.1, probabilistic bound).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from convcalc.execute.registry import Array, Check, Shape


def tolerance(x: Array, w: Array, reduction: int) -> float:
    """``8 · eps · sqrt(reduction) · max|x| · max|w|`` (module docstring)."""
    eps = float(np.finfo(x.dtype).eps)
    return 8 * eps * math.sqrt(max(reduction, 1)) * float(np.abs(x).max() or 1) * float(np.abs(w).max() or 1)


def crop(sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """First, middle and last position per axis (their product): a small crop of the output."""
    out: list[tuple[int, ...]] = [()]
    for size in sizes:
        out = [(*prefix, i) for prefix in out for i in sorted({0, size // 2, size - 1})]
    return out


def _some(count: int) -> list[int]:
    return sorted({0, count // 2, count - 1})


def conv_check(
    xs: Sequence[Array],
    y: Array,
    w: Array,
    b: Array | None,
    stride: Shape,
    padding: tuple[tuple[int, int], ...],
    dilation: Shape,
    groups: int,
) -> Check:
    """``y[n,o,p] = b[o] + Σ_{c,t} w[o,c,t]·x_pad[n, g(o)·C_in/g + c, p·s + t·d]`` at a crop of p."""
    x = xs[0]
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *padding])
    out_channels, c_in_g = w.shape[:2]
    kernel = w.shape[2:]
    c_out_g = out_channels // groups
    worst = 0.0
    for pos in crop(y.shape[2:]):
        index = tuple(
            slice(p * s, p * s + d * (k - 1) + 1, d) for p, s, d, k in zip(pos, stride, dilation, kernel, strict=True)
        )
        for o in _some(out_channels):
            g = o // c_out_g
            window: tuple[Any, ...] = (slice(None), slice(g * c_in_g, (g + 1) * c_in_g), *index)
            want = np.tensordot(xp[window], w[o].astype(np.float64), axes=w[o].ndim) + (0 if b is None else b[o])
            got: tuple[Any, ...] = (slice(None), o, *pos)
            worst = max(worst, float(np.abs(y[got] - want).max()))
    return Check(worst, tolerance(x, w, c_in_g * math.prod(kernel)))


def conv_transpose_check(
    xs: Sequence[Array],
    y: Array,
    w: Array,
    b: Array | None,
    stride: Shape,
    padding: tuple[tuple[int, int], ...],
    dilation: Shape,
    groups: int,
) -> Check:
    """``y[o] = b + Σ x[i]·w[t]`` over taps with ``i·s + t·d - p_before = o`` (the definition)."""
    x = xs[0].astype(np.float64)
    in_channels, c_out_g = w.shape[:2]
    kernel = w.shape[2:]
    c_in_g = in_channels // groups
    worst = 0.0
    for pos in crop(y.shape[2:]):
        want = np.zeros((y.shape[0], c_out_g * groups))
        for taps in np.ndindex(*kernel):
            src = []
            for o, t, s, d, (before, _), size in zip(pos, taps, stride, dilation, padding, x.shape[2:], strict=True):
                offset = o + before - t * d
                if offset % s or not 0 <= offset // s < size:
                    break
                src.append(offset // s)
            else:
                for g in range(groups):
                    x_key: tuple[Any, ...] = (slice(None), slice(g * c_in_g, (g + 1) * c_in_g), *src)
                    w_key: tuple[Any, ...] = (slice(g * c_in_g, (g + 1) * c_in_g), slice(None), *taps)
                    want[:, g * c_out_g : (g + 1) * c_out_g] += x[x_key] @ w[w_key].astype(np.float64)
        if b is not None:
            want += b
        y_key: tuple[Any, ...] = (slice(None), slice(None), *pos)
        worst = max(worst, float(np.abs(y[y_key] - want).max()))
    reduction = c_in_g * math.prod(-(-k // s) for k, s in zip(kernel, stride, strict=True))
    return Check(worst, tolerance(xs[0], w, reduction))


def linear_check(xs: Sequence[Array], y: Array, w: Array, b: Array | None) -> Check:
    """``y[n, o, p] = b[o] + Σ_c w[o, c]·x[n, c, p]`` for a few outputs o."""
    x = xs[0].astype(np.float64)
    worst = 0.0
    for o in _some(w.shape[0]):
        want = np.tensordot(w[o].astype(np.float64), x, axes=([0], [1])) + (0 if b is None else b[o])
        worst = max(worst, float(np.abs(y[:, o] - want).max()))
    return Check(worst, tolerance(xs[0], w, w.shape[1]))


def float64_copy_bytes(shape: Shape, padding: tuple[tuple[int, int], ...] = ()) -> int:
    """Temporary bytes of a reference's float64 copy of ``shape`` (and of its padded copy)."""
    copy = math.prod(shape) * 8
    if not padding:
        return copy
    padded = math.prod(shape[:2]) * math.prod(s + a + b for s, (a, b) in zip(shape[2:], padding, strict=True)) * 8
    return copy + padded
