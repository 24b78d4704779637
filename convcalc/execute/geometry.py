"""Argument normalisation and index arithmetic shared by the kernels.

Conventions: arrays are channels-first with a leading batch axis,
``(N, C, *spatial)``; per-axis padding is a ``(before, after)`` pair; output
length of a window op is ``(L + before + after - d*(k-1) - 1) // s + 1``
(PyTorch ``Conv``/``MaxPool`` documentation, shape section).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[Any]
Pairs = tuple[tuple[int, int], ...]
IntSpec = int | Sequence[int]
PadSpec = int | Sequence[int] | Sequence[Sequence[int]]


def as_float_array(x: ArrayLike, dtype: np.dtype[Any] | None = None) -> FloatArray:
    """Return ``x`` as a C-contiguous float32/float64 array.

    float64 stays float64, every other input becomes float32 unless ``dtype``
    is given.
    """
    arr = np.asarray(x)
    if dtype is None:
        dtype = np.dtype(np.float64) if arr.dtype == np.float64 else np.dtype(np.float32)
    return np.ascontiguousarray(arr, dtype=dtype)


def spatial_ndim(x: FloatArray, name: str = "x", allowed: Sequence[int] = (1, 2, 3)) -> int:
    """Number of spatial axes of an ``(N, C, *spatial)`` array (validated)."""
    nd = x.ndim - 2
    if nd not in allowed:
        raise ValueError(f"{name} must have shape (N, C, *spatial) with {tuple(allowed)} spatial axes, got {x.shape}")
    return nd


def int_tuple(value: IntSpec, ndim: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """Broadcast an int or per-axis sequence to ``ndim`` ints >= ``minimum``."""
    vals = (int(value),) * ndim if isinstance(value, int | np.integer) else tuple(int(v) for v in value)
    if len(vals) != ndim:
        raise ValueError(f"{name} needs {ndim} values, got {value!r}")
    if any(v < minimum for v in vals):
        raise ValueError(f"{name} values must be >= {minimum}, got {value!r}")
    return vals


def pad_pairs(padding: PadSpec, ndim: int, name: str = "padding", allow_negative: bool = False) -> Pairs:
    """Normalise padding to ``ndim`` ``(before, after)`` pairs.

    Accepts an int (all sides), ``ndim`` ints (symmetric per axis) or
    ``ndim`` pairs.
    """
    if isinstance(padding, int | np.integer):
        pairs = tuple((int(padding), int(padding)) for _ in range(ndim))
    else:
        items: list[Any] = list(padding)
        if len(items) != ndim:
            raise ValueError(f"{name} needs {ndim} entries, got {padding!r}")
        out = []
        for item in items:
            if isinstance(item, int | np.integer):
                out.append((int(item), int(item)))
            else:
                pair = tuple(int(v) for v in item)
                if len(pair) != 2:
                    raise ValueError(f"{name} entries must be ints or (before, after) pairs, got {padding!r}")
                out.append((pair[0], pair[1]))
        pairs = tuple(out)
    if not allow_negative and any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{name} must be non-negative, got {padding!r}")
    return pairs


def window_out_len(length: int, k: int, s: int, pad: tuple[int, int], d: int) -> int:
    """Output length of a window op along one axis (floor mode)."""
    return (length + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


Epilogue = Callable[[FloatArray], object]
"""An element-wise stage applied in place to each block of a kernel's output as the kernel writes
it, while the block is cache hot (:mod:`convcalc.execute.fuse`)."""


def finish_block(y: FloatArray, b: FloatArray | None, epilogue: Epilogue | None) -> None:
    """``y[:, o, ...] += b[o]``, then the epilogue, on one freshly written output block."""
    add_bias(y, b)
    if epilogue is not None:
        epilogue(y)


def add_bias(y: FloatArray, b: FloatArray | None) -> None:
    """``y[:, o, ...] += b[o]`` in place."""
    if b is not None:
        np.add(y, b.reshape((1, -1) + (1,) * (y.ndim - 2)), out=y)


def reshape_view(a: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Reshape that must not copy (a silent copy would lose writes into it)."""
    out = a.reshape(shape)
    if out.size and not np.may_share_memory(out, a):
        raise RuntimeError(f"reshape of {a.shape} to {shape} would copy (internal error)")
    return out


def copy_padded(src: FloatArray, ranges: Sequence[tuple[int, int]], dst: FloatArray, fill: float = 0.0) -> None:
    """Copy a window of ``src``'s trailing axes into ``dst``, ``fill`` outside ``src``.

    ``ranges[i] = (lo, hi)`` selects ``src[..., lo:hi]`` along trailing axis
    ``i`` in ``src`` coordinates, where indices outside ``[0, L)`` read as ``fill``;
    ``dst`` has the leading shape of ``src`` and trailing shape ``hi - lo``.
    """
    lead = src.ndim - len(ranges)
    src_sl: list[slice] = [slice(None)] * lead
    dst_sl: list[slice] = [slice(None)] * lead
    for (lo, hi), length in zip(ranges, src.shape[lead:], strict=True):
        vlo, vhi = max(lo, 0), min(hi, length)
        if vhi <= vlo:
            dst.fill(fill)
            return
        src_sl.append(slice(vlo, vhi))
        dst_sl.append(slice(vlo - lo, vhi - lo))
    for axis, (lo, hi) in enumerate(ranges):
        keep = dst_sl[lead + axis]
        before = [slice(None)] * dst.ndim
        before[lead + axis] = slice(0, keep.start)
        after = [slice(None)] * dst.ndim
        after[lead + axis] = slice(keep.stop, hi - lo)
        dst[tuple(before)] = fill
        dst[tuple(after)] = fill
    dst[tuple(dst_sl)] = src[tuple(src_sl)]


def phase_view(slab: FloatArray, stride: Sequence[int]) -> FloatArray:
    """View ``(nb, C, *s, *L/s)`` of a ``(nb, C, *L)`` slab: ``[..., f, i] = slab[..., i*s + f]``.

    Each trailing extent ``L`` must be a multiple of its stride ``s``.
    """
    lead, sp = slab.shape[:2], slab.shape[2:]
    st = slab.strides[2:]
    return as_strided(
        slab,
        (*lead, *stride, *(n // s for n, s in zip(sp, stride, strict=True))),
        (*slab.strides[:2], *st, *(t * s for t, s in zip(st, stride, strict=True))),
        writeable=False,
    )


def choose_block(
    n: int,
    rows: int,
    unit: int,
    nbytes: Callable[[int, int], int],
    target: int,
) -> tuple[int, int]:
    """Pick ``(samples, rows)`` per block so that ``nbytes(samples, rows) <= target``.

    Whole samples are preferred (as many as fit); otherwise one sample and the
    largest multiple of ``unit`` rows that fits (at least ``unit``).
    """
    if nbytes(1, rows) <= target:
        nb = 1
        while nb < n and nbytes(nb + 1, rows) <= target:
            nb += 1
        return nb, rows
    units = -(-rows // unit)
    lo, hi = 1, units
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if nbytes(1, mid * unit) <= target:
            lo = mid
        else:
            hi = mid - 1
    return 1, min(rows, lo * unit)


def blocks(n: int, rows: int, nb: int, rb: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(n0, n1, r0, r1)`` covering ``n`` samples and ``rows`` rows."""
    for n0 in range(0, n, nb):
        for r0 in range(0, rows, rb):
            yield n0, min(n, n0 + nb), r0, min(rows, r0 + rb)
