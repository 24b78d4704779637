"""N-d convolution with PyTorch ``conv1d/2d/3d`` semantics and padding pairs.

Paths (chosen by :func:`plan_conv`, all exact up to float rounding):

* ``matmul`` - 1x1 kernel, stride 1, no padding: ``y[n] = W @ x[n]`` on a
  reshaped view, no copy.
* ``im2col`` - columns ``(C_in*prod(k), P)`` copied from a strided window view
  of a zero-padded slab into a reused buffer (for strided kernels the slab is
  first split into stride phases so every copy has contiguous inner runs, each
  phase's taps copied to their places in the natural tap order), then per
  group one GEMM ``W_g (C_out/g, K) @ cols_g (K, P)`` written straight into
  the channels-first output.  Work is split into blocks of samples/output
  rows so scratch stays within the workspace budget.
* ``taps`` - depthwise (``C_in/groups == 1``, any channel multiplier) that
  ``rowsum`` does not take (strided, 1-D, 3-D): for 2-D, ``(taps, P)`` columns
  per few channels gathered straight from the input, ``cols[c, (i, j), (h, w)] =
  x_pad[c, h*s_0 + i*d_0, w*s_1 + j*d_1]`` (padding margins zeroed), and one small
  GEMV/GEMM ``[w | b] (mult, taps + 1) @ (taps + 1, P)`` per channel, a row of ones
  adding the bias (:func:`_run_taps_columns`); otherwise
  ``y += w[:, tap] * x_shifted`` per kernel tap, each tap one long contiguous
  slice of the flattened, phase-split padded input (:mod:`convcalc.execute.taps`).
* ``rowsum`` - 2-D, stride 1, width kept (depthwise, and grouped with few
  channels per group, see :func:`_rowsum_pays`): ``k_w`` flat shifted copies
  ``E`` of the input, stage 1 one GEMM per group
  ``Q[(o, a), m] = W_g (C_out/g*k_h, C_in/g*k_w) @ E_g (C_in/g*k_w, H*W)``, stage 2
  ``y[o, i*W + j] = sum_a Q[(o, a), (i + a*d_0)*W + j]`` as a GEMV of ones over
  rows of ``Q`` read in place (:mod:`convcalc.execute.rowsum`).
* ``im2col`` for 2-D stride-1 convolutions that keep the width uses "wrapped"
  rows of pitch ``W``: one long-run copy for all taps instead of ``W``-long
  runs, the reads that wrap across a row end masked per kernel column.
* ``winograd`` - F(m, r), ``m`` in {2, 4, 6}, for 2- and 3-tap stride-1 axes
  with enough channels (see :mod:`convcalc.execute.winograd`).

``macs`` in the kernel records is the direct-algorithm count; see
:mod:`convcalc.execute.stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import product
from math import prod
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import ArrayLike, DTypeLike

from convcalc.execute import parallel, rowsum
from convcalc.execute import winograd as wg
from convcalc.execute.convspec import ConvSpec, make_conv_spec
from convcalc.execute.geometry import (
    Epilogue,
    FloatArray,
    IntSpec,
    PadSpec,
    as_float_array,
    blocks,
    choose_block,
    copy_padded,
    finish_block,
    phase_view,
    reshape_view,
)
from convcalc.execute.stats import KernelRecord, record, recording
from convcalc.execute.taps import TapGeometry
from convcalc.execute.workspace import Workspace, buffer_bytes, get_workspace_budget, reserve

Algorithm = Literal["auto", "matmul", "im2col", "taps", "rowsum", "winograd"]

IM2COL_BLOCK_BYTES = 2 << 20
"""Preferred scratch per im2col block: columns stay cache resident while the GEMM packs them."""
IM2COL_WRAPPED_BLOCK_BYTES = 4 << 20
"""Preferred scratch per block of wrapped-row im2col (see :func:`_wraps`): whole samples pay
off over cache residency (ResNeXt 3x3 g=32 @28: 1 block of 28 rows 0.36 ms vs 2 of 14 rows
0.43 ms, 1 thread), as every block costs one small GEMM call per group."""
WINOGRAD_BLOCK_BYTES = 24 << 20
"""Upper bound of the preferred scratch per Winograd block (see :func:`_winograd_target`)."""
WINOGRAD_MIN_COLUMNS = 128
"""Tile columns per block wanted for efficient channel GEMMs."""
TAPS_BLOCK_BYTES = 8 << 20
"""Preferred scratch per block of the tap loop (few, long NumPy calls beat cache-sized ones)."""
TAPS_COLUMN_BYTES = 1 << 20
"""Columns per call of the tap-columns depthwise path, about half of L2, which the GEMV then
reads (3x3/2 depthwise 96ch @112, 1 thread: 1.77 ms vs 2.50 at 256 KiB, 1.96 at 512 KiB, 2.05
at 2 MiB)."""
ROWSUM_MAX_CHANNELS = 32
"""Most input channels per group for which the planner picks the rowsum path for a grouped
convolution (1 thread, vs im2col/Winograd: ResNeXt 3x3 g32 256ch @14 0.35 vs 0.57 ms, 8 samples
1.5 vs 3.0 ms; 128ch g4 @14 0.59 vs 0.99 ms; dense convolutions stay off it: 256ch @14 4.9 vs
3.0 ms, 3->64 @224 9.1 vs 5.0 ms)."""
WINOGRAD_MIN_CHANNELS = 16
"""Winograd is picked automatically only with at least this many channels per group."""


@dataclass(frozen=True)
class ConvPlan:
    """Chosen algorithm, blocking and scratch size of one convolution."""

    spec: ConvSpec
    path: str
    block: tuple[int, int]
    workspace_bytes: int
    executed_macs: int
    winograd: wg.WinogradGeometry | None = None

    @property
    def writes_strided(self) -> bool:
        """Whether :func:`execute_conv` can write into a non-contiguous output view."""
        return self.path in ("taps", "rowsum", "winograd")


def _is_pointwise(spec: ConvSpec) -> bool:
    return spec.taps == 1 and set(spec.stride) == {1} and all(p == (0, 0) for p in spec.padding)


def _in_extent(spec: ConvSpec, axis: int, outputs: int) -> int:
    return (outputs - 1) * spec.stride[axis] + spec.dilation[axis] * (spec.kernel[axis] - 1) + 1


def _needs_slab(spec: ConvSpec) -> bool:
    return any(p != (0, 0) for p in spec.padding)


def _strided(spec: ConvSpec) -> bool:
    """A strided multi-tap kernel: im2col gathers its columns tap by tap (:func:`_gather_columns`)
    or through stride phases (:func:`_phase_columns`)."""
    return spec.taps > 1 and any(s > 1 for s in spec.stride)


GATHER_MAX_TAPS = 9
"""Largest kernel (in taps) whose strided im2col copies each tap straight from the input; larger
ones split the input into stride phases first, so each tap's copy has contiguous inner runs
(1 thread, whole layers: 3->64 k7/2 @224 4.19 ms through phases vs 7.67 tap by tap; 3->32 k3/2
@224 0.80 tap by tap vs 1.00, 128ch k3/2 @56 2.70 vs 3.84)."""


def _gathers(spec: ConvSpec) -> bool:
    return spec.taps <= GATHER_MAX_TAPS


def _bias_row(spec: ConvSpec) -> bool:
    """A pointwise convolution that widens (``C_out > C_in``, one group) computes its bias inside
    the GEMM, ``[W | b] @ [x; 1]``: copying the narrower input with a row of ones costs less than
    a pass over the wider output (1 thread: 16->96 @112 with ReLU6 1.31 vs 1.48 ms, 24->144 @56
    0.57 vs 0.68, 64->256 @56 1.11 vs 1.32; narrowing layers lose: 144->24 @56 0.46 vs 0.30)."""
    return _is_pointwise(spec) and spec.groups == 1 and spec.c_out > spec.c_in


def _im2col_buffers(spec: ConvSpec, nb: int, rows: int) -> list[tuple[int, ...]]:
    """Scratch of one block: [padded slab, [stride phases,]] columns ``(nb, C, taps, rows, *out_rest)``
    (pointwise: none, or the input with a row of ones, see :func:`_bias_row`)."""
    if _bias_row(spec):
        return [(nb, spec.c_in + 1, rows * prod(spec.out_shape[1:]))]
    if _is_pointwise(spec):
        return []
    if _wraps(spec):
        return [(nb, spec.c_in, _wrap_len(spec, rows)), (nb, spec.c_in, spec.taps, rows * spec.out_shape[1])]
    rest = spec.out_shape[1:]
    cols = (nb, spec.c_in, spec.taps, rows, *rest)
    ext = [_in_extent(spec, 0, rows), *(_in_extent(spec, a, o) for a, o in enumerate(rest, 1))]
    if _strided(spec) and _gathers(spec):
        return [cols]
    if _strided(spec):
        ext = [-(-e // s) * s for e, s in zip(ext, spec.stride, strict=True)]
        phases = (nb, spec.c_in, *spec.stride, *(e // s for e, s in zip(ext, spec.stride, strict=True)))
        return [(nb, spec.c_in, *ext), phases, cols]
    if not _needs_slab(spec):
        return [cols]
    return [(nb, spec.c_in, *ext), cols]


@dataclass(frozen=True)
class _PhaseBlock:
    """Kernel taps that read one stride phase: ``count`` per axis, phase shifts ``first + j*step``,
    kernel taps ``tap + j*tap_step`` (an arithmetic run per axis)."""

    phase: tuple[int, ...]
    first: tuple[int, ...]
    step: tuple[int, ...]
    count: tuple[int, ...]
    tap: tuple[int, ...]
    tap_step: tuple[int, ...]


@lru_cache(maxsize=64)
def _phase_blocks(spec: ConvSpec) -> tuple[_PhaseBlock, ...]:
    """Tap blocks grouped by stride phase.

    Tap ``t`` reads padded index ``o*s + t*d`` = phase ``(t*d) % s`` at shift ``(t*d) // s``;
    the taps of one phase are ``t0, t0 + s/gcd(s, d), ...``.
    """
    per_axis = []
    for k, s, d in zip(spec.kernel, spec.stride, spec.dilation, strict=True):
        groups: dict[int, list[int]] = {}
        for t in range(k):
            groups.setdefault(t * d % s, []).append(t)
        per_axis.append(sorted(groups.items()))
    blocks_: list[_PhaseBlock] = []
    for combo in product(*per_axis):
        shifts = [[t * d // s for t in taps] for (_, taps), s, d in zip(combo, spec.stride, spec.dilation, strict=True)]
        blocks_.append(
            _PhaseBlock(
                phase=tuple(p for p, _ in combo),
                first=tuple(sh[0] for sh in shifts),
                step=tuple(sh[1] - sh[0] if len(sh) > 1 else 1 for sh in shifts),
                count=tuple(len(taps) for _, taps in combo),
                tap=tuple(taps[0] for _, taps in combo),
                tap_step=tuple(taps[1] - taps[0] if len(taps) > 1 else 1 for _, taps in combo),
            )
        )
    return tuple(blocks_)


def _phase_columns(slab: FloatArray, phases: FloatArray, cols: FloatArray, spec: ConvSpec, rows: int) -> None:
    """Columns in natural tap order from a padded slab, one contiguous-inner copy per phase block
    into the block's (strided) taps, so the weights are used as they are."""
    np.copyto(phases, phase_view(slab, spec.stride))
    out_sp = (rows, *spec.out_shape[1:])
    grid = cols.reshape(*cols.shape[:2], *spec.kernel, *out_sp)
    for blk in _phase_blocks(spec):
        index: tuple[Any, ...] = (slice(None), slice(None), *blk.phase, *(slice(f, None) for f in blk.first))
        src = phases[index]
        view = as_strided(
            src,
            (*src.shape[:2], *blk.count, *out_sp),
            (*src.strides[:2], *(st * sp for st, sp in zip(src.strides[2:], blk.step, strict=True)), *src.strides[2:]),
            writeable=False,
        )
        taps: tuple[Any, ...] = (
            slice(None),
            slice(None),
            *(slice(t, t + ts * (c - 1) + 1, ts) for t, ts, c in zip(blk.tap, blk.tap_step, blk.count, strict=True)),
        )
        np.copyto(grid[taps], view)


Index = tuple[int | slice, ...]


@lru_cache(maxsize=256)
def _gather_plan(spec: ConvSpec, r0: int, out_block: tuple[int, ...]) -> tuple[tuple[Index, Index | None, Index, tuple[Index, ...]], ...]:
    """Per kernel tap: the tap's index into the columns, the outputs that read the input and
    where they read it (None: the tap reads only padding), and the padding margins (one region
    per axis side, the axes before it cut to the valid outputs)."""
    lead: Index = (slice(None), slice(None))
    taps: list[tuple[Index, Index | None, Index, tuple[Index, ...]]] = []
    for tap in product(*(range(k) for k in spec.kernel)):
        spans = []
        for axis, (t, n_out) in enumerate(zip(tap, out_block, strict=True)):
            first = r0 if axis == 0 else 0
            shift = t * spec.dilation[axis] - spec.padding[axis][0]
            lo, hi = _tap_span(first + n_out, shift, spec.stride[axis], spec.in_shape[axis])
            lo = min(max(lo, first), first + n_out)
            spans.append((lo - first, max(lo, hi) - first, lo * spec.stride[axis] + shift))
        valid = all(hi > lo for lo, hi, _ in spans)
        dst = lead + tuple(slice(lo, hi) for lo, hi, _ in spans)
        src = lead + tuple(slice(at, at + (hi - lo - 1) * s + 1, s) for (lo, hi, at), s in zip(spans, spec.stride, strict=True))
        margins: list[Index] = []
        for axis, (lo, hi, _) in enumerate(spans):
            inner = lead + tuple(slice(a, b) for a, b, _ in spans[:axis])
            margins += [(*inner, slice(0, lo))] if lo > 0 else []
            margins += [(*inner, slice(hi, None))] if hi < out_block[axis] else []
        at_tap: Index = (*lead, *tap)
        taps.append((at_tap, src if valid else None, dst, tuple(margins)))
    return tuple(taps)


def _gather_columns(spec: ConvSpec, x: FloatArray, grid: FloatArray, r0: int, *, margins: bool = True) -> None:
    """``grid[n, c, *t, *o] = x[n, c, o·s + t·d - p_before]`` (zero where that reads padding) for the
    block of output rows from ``r0`` (``grid``: ``(nb, C, *kernel, rows, *out_rest)``): one strided
    copy per kernel tap straight from the input and its padding margins zeroed (``margins=False``:
    left as they are, for a buffer whose margins an earlier block zeroed); no padded slab, no
    stride phases (see :data:`GATHER_MAX_TAPS`). The index tuples are made once per block shape."""
    for at_tap, src, dst, zero in _gather_plan(spec, r0, grid.shape[2 + spec.ndim :]):
        column = grid[at_tap]
        if src is not None:
            np.copyto(column[dst], x[src])
        for region in zero if margins else ():
            column[region] = 0.0


def _wraps(spec: ConvSpec) -> bool:
    """Taps path with row pitch = output width (2-D, stride 1, width kept): no wide layout, no crop.

    Taps then read across row ends; their contributions to the output columns
    whose window leaves the row are zeroed per kernel column (see :func:`_wrapped_im2col`).
    """
    return spec.ndim == 2 and spec.stride == (1, 1) and spec.out_shape[1] == spec.in_shape[1]


def _wrap_len(spec: ConvSpec, rows: int | None = None) -> int:
    """Flat length of one channel of the wrapped input for ``rows`` output rows (default all):
    left pad, padded input rows x width, right pad."""
    ext = (spec.out_shape[0] if rows is None else rows) + spec.dilation[0] * (spec.kernel[0] - 1)
    return sum(spec.padding[1]) + ext * spec.in_shape[1]


def _wrapped_columns(spec: ConvSpec) -> list[tuple[int, int, int]]:
    """``(e, lo, hi)`` per kernel column ``e``: outputs ``lo <= j < hi`` read inside the row."""
    (pl, _), d1, wd = spec.padding[1], spec.dilation[1], spec.out_shape[1]
    return [(e, max(0, pl - e * d1), min(wd, wd + pl - e * d1)) for e in range(spec.kernel[1])]


def _wrapped_load(spec: ConvSpec, x: FloatArray, r0: int, dst: FloatArray) -> FloatArray:
    """Fill ``dst`` (nb, C, flat) with the zero-padded input rows that output rows ``r0...`` read."""
    (pt, _), (pl, pr) = spec.padding
    wd = spec.in_shape[1]
    flat = dst.shape[-1]
    dst[..., :pl] = 0.0
    dst[..., flat - pr :] = 0.0
    body = dst[..., pl : flat - pr]
    ext = body.shape[-1] // wd
    copy_padded(x, [(r0 - pt, r0 - pt + ext), (0, wd)], reshape_view(body, (*dst.shape[:2], ext, wd)))
    return dst


def _wrapped_im2col(spec: ConvSpec, src: FloatArray, cols: FloatArray, rows: int) -> None:
    """Columns ``(nb, C, taps, rows*W)`` from wrapped rows: one long-run copy, then masking."""
    (k0, k1), (d0, d1), wd = spec.kernel, spec.dilation, spec.out_shape[1]
    npos = rows * wd
    st = src.strides
    view = as_strided(src, (*src.shape[:2], k0, k1, npos), (*st[:2], d0 * wd * st[2], d1 * st[2], st[2]), writeable=False)
    np.copyto(cols.reshape(*cols.shape[:2], k0, k1, npos), view)
    grid = cols.reshape(*cols.shape[:2], k0, k1, rows, wd)
    for e, lo, hi in _wrapped_columns(spec):
        grid[:, :, :, e, :, :lo] = 0.0
        grid[:, :, :, e, :, hi:] = 0.0


def _tap_columns_channels(spec: ConvSpec, channels: int) -> int:
    """Channels per column block of the tap-columns path (columns about TAPS_COLUMN_BYTES)."""
    return max(1, min(channels, TAPS_COLUMN_BYTES // ((spec.taps + 1) * prod(spec.out_shape) * spec.itemsize)))


def _tap_columns(spec: ConvSpec) -> bool:
    """Depthwise 2-D: the tap-columns path (:func:`_run_taps_columns`)."""
    return spec.ndim == 2


def _taps_buffers(spec: ConvSpec, nb: int, channels: int) -> list[tuple[int, ...]]:
    if _tap_columns(spec):
        sub, npos = _tap_columns_channels(spec, channels), prod(spec.out_shape)
        return [(sub, spec.taps + 1, npos), (sub, spec.c_out_g, npos)]
    geo = _tap_geometry(spec)
    return [*geo.buffers(nb, channels), *[(nb, channels, spec.c_out_g, geo.wide_len)] * 2]


def _nbytes(spec: ConvSpec, shapes: list[tuple[int, ...]]) -> int:
    return buffer_bytes([(s, spec.dtype) for s in shapes])


def _plan_gemm(spec: ConvSpec, budget: int) -> ConvPlan:
    path = "matmul" if _is_pointwise(spec) else "im2col"
    nb, rows = choose_block(
        spec.batch,
        spec.out_shape[0],
        1,
        lambda n, r: _nbytes(spec, _im2col_buffers(spec, n, r)),
        min(IM2COL_WRAPPED_BLOCK_BYTES if path == "im2col" and _wraps(spec) else IM2COL_BLOCK_BYTES, budget),
    )
    return ConvPlan(spec, path, (nb, rows), _nbytes(spec, _im2col_buffers(spec, nb, rows)), spec.macs)


def _plan_taps(spec: ConvSpec, budget: int) -> ConvPlan:
    nb, cb = choose_block(
        spec.batch, spec.c_in, 1, lambda n, c: _nbytes(spec, _taps_buffers(spec, n, c)), min(TAPS_BLOCK_BYTES, budget)
    )
    nb = 1 if cb < spec.c_in else nb
    return ConvPlan(spec, "taps", (nb, cb), _nbytes(spec, _taps_buffers(spec, nb, cb)), spec.macs)


def _plan_rowsum(spec: ConvSpec, budget: int) -> ConvPlan:
    fixed = _nbytes(spec, rowsum.fixed_buffers(spec))
    nb, gb = choose_block(
        spec.batch,
        spec.groups,
        1,
        lambda n, g: _nbytes(spec, rowsum.block_buffers(spec, n, g)),
        max(1, min(rowsum.BLOCK_BYTES, budget - fixed)),
    )
    total = fixed + _nbytes(spec, rowsum.block_buffers(spec, nb, gb))
    return ConvPlan(spec, "rowsum", (nb, gb), total, rowsum.executed_macs(spec))


def _winograd_target(spec: ConvSpec, geo: wg.WinogradGeometry, u_bytes: int) -> int:
    """Preferred block size: big enough for wide channel GEMMs (>= WINOGRAD_MIN_COLUMNS tile
    columns) and to amortise re-reading ``U`` (3x its size), otherwise as small as possible so
    the transform buffers stay in cache.  3-D blocks stay large: their depth halo is recomputed."""
    if geo.lead:
        return WINOGRAD_BLOCK_BYTES
    per_sample = prod(q * d for q, d in zip(geo.q, geo.d, strict=True))
    nb = min(spec.batch, -(-WINOGRAD_MIN_COLUMNS // per_sample))
    wide = _nbytes(spec, wg.block_buffers(spec, geo, nb, spec.out_shape[0]))
    return min(WINOGRAD_BLOCK_BYTES, max(wide, 3 * u_bytes))


def plan_winograd(spec: ConvSpec, geo: wg.WinogradGeometry, budget: int) -> ConvPlan | None:
    """Winograd plan with blocking for ``geo``, or None if its fixed scratch exceeds ``budget``."""
    fixed = _nbytes(spec, [wg.weight_shape(spec, geo)]) * 2
    if fixed >= budget:
        return None
    nb, rows = choose_block(
        spec.batch,
        spec.out_shape[0],
        geo.row_unit,
        lambda n, r: _nbytes(spec, wg.block_buffers(spec, geo, n, r)),
        min(_winograd_target(spec, geo, fixed // 2), budget - fixed),
    )
    total = fixed + _nbytes(spec, wg.block_buffers(spec, geo, nb, rows))
    if total > budget:
        return None
    return ConvPlan(spec, "winograd", (nb, rows), total, wg.executed_macs(spec, geo), geo)


def _winograd_worth_it(spec: ConvSpec, geo: wg.WinogradGeometry) -> bool:
    """Enough channels, and cheaper than im2col by the cost model once the per-call weight
    transform is counted (deep layers on small maps at batch 1, e.g. ResNet-50's 3x3 512->512
    at 7x7: im2col 3.6 ms vs Winograd 7.2 ms, its ``U`` costing more than the GEMM saves)."""
    if not winograd_channels(spec):
        return False
    winograd = spec.batch * wg.winograd_cost(spec, geo) + wg.weight_transform_cost(spec, geo)
    return winograd < _im2col_cost(spec)


def winograd_channels(spec: ConvSpec) -> bool:
    """At least :data:`WINOGRAD_MIN_CHANNELS` input and output channels per group."""
    return min(spec.c_in_g, spec.c_out_g) >= WINOGRAD_MIN_CHANNELS


def _im2col_cost(spec: ConvSpec) -> float:
    """im2col work in the units of :func:`convcalc.execute.winograd.winograd_cost`: the GEMM
    MACs (discounted for few columns, as there) and the column copies."""
    positions = prod(spec.out_shape)
    columns = positions * min(spec.batch, 8)
    gemm = spec.macs * (columns + wg.GEMM_HALF_N) / columns
    return gemm + wg.COPY_COST * spec.batch * spec.c_in * prod(spec.kernel) * positions


def _rowsum_pays(spec: ConvSpec) -> bool:
    """The two-stage path where it beat taps, im2col and Winograd (1 and 8 samples, 1 thread):
    every depthwise convolution it applies to; grouped ones with ``C_out/g <= C_in/g <=``
    :data:`ROWSUM_MAX_CHANNELS` and at most 1/7 extra rows (``H_p/H_out``; at 7x7 im2col wins)."""
    if not rowsum.applies(spec) or spec.taps == 1:
        return False
    if spec.c_in_g == 1:
        return True
    extra = spec.dilation[0] * (spec.kernel[0] - 1)
    return spec.groups > 1 and spec.c_out_g <= spec.c_in_g <= ROWSUM_MAX_CHANNELS and 7 * extra <= spec.out_shape[0]


def plan_for_spec(spec: ConvSpec, algorithm: Algorithm = "auto", budget: int | None = None) -> ConvPlan:
    """Choose the algorithm and blocking for ``spec`` (see module docstring); cached per arguments."""
    return _plan(spec, algorithm, get_workspace_budget() if budget is None else budget)


@lru_cache(maxsize=256)
def _plan(spec: ConvSpec, algorithm: Algorithm, budget: int) -> ConvPlan:
    geo = wg.winograd_geometry(spec)
    if algorithm == "auto":
        if _rowsum_pays(spec):
            two_stage = _plan_rowsum(spec, budget)
            if two_stage.workspace_bytes <= budget:
                return two_stage
        if spec.c_in_g == 1 and spec.taps > 1:
            return _plan_taps(spec, budget)
        if geo is not None and _winograd_worth_it(spec, geo):
            fast = plan_winograd(spec, geo, budget)
            if fast is not None:
                return fast
        return _plan_gemm(spec, budget)
    if algorithm == "taps":
        if spec.c_in_g != 1:
            raise ValueError("the taps path needs C_in/groups == 1 (depthwise)")
        return _plan_taps(spec, budget)
    if algorithm == "rowsum":
        if not rowsum.applies(spec):
            raise ValueError("the rowsum path needs a 2-D convolution with stride 1 that keeps the width")
        return _plan_rowsum(spec, budget)
    if algorithm == "winograd":
        plan = plan_winograd(spec, geo, budget) if geo is not None else None
        if plan is None:
            raise ValueError("Winograd does not apply to this convolution (or exceeds the workspace budget)")
        return plan
    if algorithm == "matmul" and not _is_pointwise(spec):
        raise ValueError("the matmul path needs a 1x1 kernel, stride 1 and no padding")
    if algorithm in ("matmul", "im2col"):
        return _plan_gemm(spec, budget)
    raise ValueError(f"unknown algorithm {algorithm!r}")


def plan_conv(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: IntSpec = 1,
    padding: PadSpec = 0,
    dilation: IntSpec = 1,
    groups: int = 1,
    dtype: DTypeLike = np.float32,
    algorithm: Algorithm = "auto",
    budget: int | None = None,
) -> ConvPlan:
    """Plan a convolution from shapes only; ``.workspace_bytes`` is its scratch need."""
    spec = make_conv_spec(x_shape, w_shape, stride, padding, dilation, groups, dtype)
    return plan_for_spec(spec, algorithm, budget)


def _window_view(src: FloatArray, spec: ConvSpec, rows: int) -> FloatArray:
    """``(nb, C, *k, rows, *out_rest)`` view: element = ``src[n, c, o*s + t*d]``."""
    sp = src.strides[2:]
    shape = (*src.shape[:2], *spec.kernel, rows, *spec.out_shape[1:])
    strides = (
        *src.strides[:2],
        *(d * st for d, st in zip(spec.dilation, sp, strict=True)),
        *(s * st for s, st in zip(spec.stride, sp, strict=True)),
    )
    return as_strided(src, shape, strides, writeable=False)


def _run_gemm(
    plan: ConvPlan,
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None,
    y: FloatArray,
    ws: Workspace,
    epilogue: Epilogue | None = None,
    packed: FloatArray | None = None,
) -> None:
    spec = plan.spec
    g, kg = spec.groups, spec.c_in_g * spec.taps
    wr = w.reshape(g, spec.c_out_g, kg)
    with_ones = packed is not None and b is not None and _bias_row(spec)
    if with_ones:
        assert packed is not None
        wr, b = packed.reshape(1, spec.c_out, spec.c_in + 1), None
    for n0, n1, r0, r1 in blocks(x.shape[0], spec.out_shape[0], *plan.block):
        nb, rows = n1 - n0, r1 - r0
        p = rows * prod(spec.out_shape[1:])
        with ws.scope():
            if with_ones:
                ones = ws.take(_im2col_buffers(spec, nb, rows)[0], spec.dtype)
                block = x[n0:n1, :, r0:r1]
                np.copyto(ones[:, : spec.c_in].reshape(block.shape), block)
                ones[:, spec.c_in] = 1.0
                cols = ones.reshape(nb, 1, spec.c_in + 1, p)
            elif plan.path == "matmul":
                cols = reshape_view(x[n0:n1, :, r0:r1], (nb, g, spec.c_in_g, p))
            elif _wraps(spec):
                shapes = _im2col_buffers(spec, nb, rows)
                src = _wrapped_load(spec, x[n0:n1], r0, ws.take(shapes[0], spec.dtype))
                buf = ws.take(shapes[1], spec.dtype)
                _wrapped_im2col(spec, src, buf, rows)
                cols = buf.reshape(nb, g, kg, p)
            elif _strided(spec) and _gathers(spec):
                buf = ws.take(_im2col_buffers(spec, nb, rows)[0], spec.dtype)
                _gather_columns(spec, x[n0:n1], buf.reshape(nb, spec.c_in, *spec.kernel, rows, *spec.out_shape[1:]), r0)
                cols = buf.reshape(nb, g, kg, p)
            else:
                shapes = _im2col_buffers(spec, nb, rows)
                lo0 = r0 * spec.stride[0] - spec.padding[0][0]
                if len(shapes) > 1:
                    src = ws.take(shapes[0], spec.dtype)
                    ranges = [(lo0, lo0 + src.shape[2])]
                    ranges += [(-pb, -pb + n) for (pb, _), n in zip(spec.padding[1:], src.shape[3:], strict=True)]
                    copy_padded(x[n0:n1], ranges, src)
                else:
                    src = x[n0:n1, :, lo0:]
                buf = ws.take(shapes[-1], spec.dtype)
                if _strided(spec):
                    _phase_columns(src, ws.take(shapes[1], spec.dtype), buf, spec, rows)
                else:
                    np.copyto(buf.reshape(nb, spec.c_in, *spec.kernel, rows, *spec.out_shape[1:]), _window_view(src, spec, rows))
                cols = buf.reshape(nb, g, kg, p)
            out = reshape_view(y[n0:n1, :, r0:r1], (nb, g, spec.c_out_g, p))
            np.matmul(wr, cols, out=out)
            finish_block(y[n0:n1, :, r0:r1], b, epilogue)


def _tap_geometry(spec: ConvSpec) -> TapGeometry:
    return TapGeometry(spec.in_shape, spec.out_shape, spec.kernel, spec.stride, spec.padding, spec.dilation)


def _tap_span(outputs: int, shift: int, stride: int, extent: int) -> tuple[int, int]:
    """Outputs ``[lo, hi)`` whose input index ``o·stride + shift`` lies in ``[0, extent)`` (the
    others read padding)."""
    lo = min(outputs, max(0, -(shift // stride)))
    hi = min(outputs, max(lo, (extent - 1 - shift) // stride + 1))
    return lo, hi


def _run_taps_columns(
    plan: ConvPlan, x: FloatArray, w: FloatArray, b: FloatArray | None, y: FloatArray, ws: Workspace, epilogue: Epilogue | None
) -> None:
    """Depthwise 2-D, any stride, padding and dilation, as per-channel GEMVs over columns
    gathered straight from the input by :func:`_gather_columns`: ``cols[c, (a, e), (i, j)] =
    x[c, i·s_0 + a·d_0 - p_t, j·s_1 + e·d_1 - p_l]`` (the padding margins zeroed once per call, as
    every block reuses the buffer), plus a row of
    ones when there is a bias, reduced by ``[w | b] (mult, taps + 1) @ cols (taps + 1, H_out·W_out)``
    straight into ``y``. About :data:`TAPS_COLUMN_BYTES` of columns per call.  Without a padded
    slab (one fewer pass over the input) 3x3/2 96ch @112 takes 1.77 ms instead of 2.16, 144ch @56
    0.84 instead of 1.06 (1 thread)."""
    spec = plan.spec
    (k0, k1), taps = spec.kernel, spec.taps
    ho, wo = spec.out_shape
    npos, mult, item = ho * wo, spec.c_out_g, y.itemsize
    rows = taps + (b is not None)
    wt = w.reshape(spec.c_in, mult, taps)
    if b is not None:
        wt = np.concatenate([wt, b.reshape(spec.c_in, mult, 1)], axis=2)
    y5 = reshape_view(y, (x.shape[0], spec.c_in, mult, ho, wo))
    direct = y5.strides[-1] == item and y5.strides[-2] == wo * item
    sub = _tap_columns_channels(spec, plan.block[1])
    with ws.scope():
        cols = ws.take((sub, rows, npos), spec.dtype)
        tmp = ws.take((sub, mult, npos), spec.dtype)
        grid = cols[:, :taps].reshape(1, sub, k0, k1, ho, wo)
        if b is not None:
            cols[:, taps] = 1.0
        zeroed = 0  # channels of the buffer whose padding margins are zero
        for n0, n1, c0, c1 in blocks(x.shape[0], spec.c_in, *plan.block):
            for n in range(n0, n1):
                for q0 in range(c0, c1, sub):
                    q1 = min(c1, q0 + sub)
                    k = q1 - q0
                    _gather_columns(spec, x[n : n + 1, q0:q1], grid[:, :k], 0, margins=k > zeroed)
                    zeroed = max(zeroed, k)
                    dst = y5[n, q0:q1]
                    out = dst.reshape(k, mult, npos) if direct else tmp[:k]
                    np.matmul(wt[q0:q1], cols[:k], out=out)
                    if not direct:
                        np.copyto(dst, out.reshape(dst.shape))
                    finish_block(dst, None, epilogue)


def _run_taps(
    plan: ConvPlan, x: FloatArray, w: FloatArray, b: FloatArray | None, y: FloatArray, ws: Workspace, epilogue: Epilogue | None
) -> None:
    spec = plan.spec
    if _tap_columns(spec):
        _run_taps_columns(plan, x, w, b, y, ws, epilogue)
        return
    geo = _tap_geometry(spec)
    mult = spec.c_out_g
    wt = w.reshape(spec.c_in, mult, spec.taps)
    y5 = reshape_view(y, (x.shape[0], spec.c_in, mult, *spec.out_shape))
    for n0, n1, c0, c1 in blocks(x.shape[0], spec.c_in, *plan.block):
        nb, cb = n1 - n0, c1 - c0
        with ws.scope():
            phases = geo.load(x[n0:n1, c0:c1], 0.0, ws)
            acc = ws.take((nb, cb, mult, geo.wide_len), spec.dtype)
            tmp = ws.take((nb, cb, mult, geo.wide_len), spec.dtype)
            last = len(geo.taps) - 1
            dst = y5[n0:n1, c0:c1]
            for i, tap in enumerate(geo.taps):
                src = geo.source(phases, tap)[:, :, None, :]
                wv = wt[c0:c1, :, tap.index, None]
                if i == 0:
                    np.multiply(src, wv, out=acc)
                    continue
                np.multiply(src, wv, out=tmp)
                if i < last:
                    np.add(acc, tmp, out=acc)
                else:
                    np.add(geo.crop(acc), geo.crop(tmp), out=dst)
            if last == 0:
                np.copyto(dst, geo.crop(acc))
            finish_block(reshape_view(dst, (nb, cb * mult, *spec.out_shape)), None if b is None else b[c0 * mult : c1 * mult], epilogue)


def execute_conv(
    plan: ConvPlan,
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None,
    y: FloatArray,
    ws: Workspace,
    packed: FloatArray | None = None,
    epilogue: Epilogue | None = None,
) -> None:
    """Run ``plan`` writing ``epilogue(conv(x, w) + b)`` into ``y`` (the epilogue applied in place
    to each output block as it is written; none: the identity).

    ``x`` may hold fewer samples than the plan was made for; ``packed`` is :func:`pack_conv`'s
    array (Winograd's ``U``, rowsum's matrices, a widening pointwise convolution's ``[W | b]``;
    else made here or, for ``[W | b]``, the bias added in a pass).  ``y`` must be
    C-contiguous for the GEMM paths (``plan.writes_strided`` is False); the
    Winograd, taps and rowsum paths also write into strided views.
    """
    if plan.path == "taps":
        _run_taps(plan, x, w, b, y, ws, epilogue)
    elif plan.path == "rowsum":
        rowsum.run(plan.spec, plan.block, x, w, b, y, ws, packed, epilogue)
    elif plan.path == "winograd":
        assert plan.winograd is not None
        u = packed if packed is not None else wg.transform_weights(w, plan.spec, plan.winograd, ws)
        wg.run_winograd(x, u, b, plan.spec, plan.winograd, plan.block, [y], ws, epilogue)
    else:
        _run_gemm(plan, x, w, b, y, ws, epilogue, packed)


def output_array(out: FloatArray | None, shape: tuple[int, ...], dtype: np.dtype[np.floating]) -> FloatArray:
    """``out`` validated as a C-contiguous ``shape``/``dtype`` array, or a new one."""
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {dtype} array of shape {shape}")
    return out


def conv(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntSpec = 1,
    padding: PadSpec = 0,
    dilation: IntSpec = 1,
    groups: int = 1,
    out: FloatArray | None = None,
    *,
    algorithm: Algorithm = "auto",
    packed: FloatArray | None = None,
) -> FloatArray:
    """N-d convolution (cross-correlation), ``torch.nn.functional.conv{1,2,3}d``.

    ``x``: (N, C_in, *S); ``w``: (C_out, C_in/groups, *k); ``b``: (C_out,) or
    None; ``padding``: (before, after) per axis (an int or per-axis ints mean
    symmetric); ``stride``/``dilation``: per axis.  Output (N, C_out, *O) with
    ``O = (S + before + after - d*(k-1) - 1) // s + 1``.  Depthwise with a
    channel multiplier is ``groups = C_in``, ``C_out = C_in * mult``; output
    channel ``o`` reads input channel ``o // mult``.  ``packed``: :func:`pack_conv` of ``w`` (and
    ``b``), made once by a caller that runs the layer repeatedly.
    """
    xa = as_float_array(x)
    wa = as_float_array(w, xa.dtype)
    ba = None if b is None else as_float_array(b, xa.dtype)
    spec = make_conv_spec(xa.shape, wa.shape, stride, padding, dilation, groups, xa.dtype)
    if ba is not None and ba.shape != (spec.c_out,):
        raise ValueError(f"bias must have shape ({spec.c_out},), got {ba.shape}")
    plan = plan_for_spec(spec, algorithm)
    u = None
    want = packed_shape(plan)
    if want is not None and packed is not None:
        if packed.shape != want or packed.dtype != xa.dtype:
            raise ValueError(f"packed weights {packed.shape} do not match this convolution's plan (use pack_conv)")
        u = packed
    return run_plan(plan, xa, wa, ba, u, output_array(out, (spec.batch, spec.c_out, *spec.out_shape), xa.dtype))


def run_plan(
    plan: ConvPlan,
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None,
    packed: FloatArray | None,
    y: FloatArray | None = None,
    epilogue: Epilogue | None = None,
) -> FloatArray:
    """Run ``plan`` on arrays that match it (no checks: :func:`conv` validates; a caller that
    planned once from shapes, as ``convcalc run`` does, skips the ~25 µs of re-validating and
    re-planning per call), split among the threads where that pays; returns ``y``
    (``epilogue``: see :func:`execute_conv`)."""
    spec = plan.spec
    if y is None:
        y = np.empty((x.shape[0], spec.c_out, *spec.out_shape), spec.dtype)
    tasks = _thread_parts(plan, x, w, b, y, packed, epilogue)
    if len(tasks) > 1:
        parallel.run_blas_single(tasks)
    else:
        with reserve(plan.workspace_bytes) as ws:
            execute_conv(plan, x, w, b, y, ws, packed, epilogue)
    if recording():
        record(KernelRecord("conv", plan.path, spec.macs, plan.executed_macs, plan.workspace_bytes))
    return y


PARALLEL_MIN_MACS = 1 << 21
"""Smallest convolution split among threads (~2 M MACs, ~50 µs: well above the ~25 µs of
handing the parts over and limiting the BLAS to one thread)."""


def packed_shape(plan: ConvPlan) -> tuple[int, ...] | None:
    """Shape of :func:`pack_conv`'s array for ``plan`` (None: the path uses ``w`` as it is)."""
    if _bias_row(plan.spec):
        return (plan.spec.c_out, plan.spec.c_in + 1)
    if plan.winograd is not None:
        return wg.weight_shape(plan.spec, plan.winograd)
    if plan.path == "rowsum" and rowsum.fixed_buffers(plan.spec):
        return rowsum.fixed_buffers(plan.spec)[0]
    return None


def pack_conv(w: FloatArray, plan: ConvPlan, b: FloatArray | None = None) -> FloatArray | None:
    """The weights re-arranged once for ``plan``: Winograd's ``U = G w Gᵀ``, rowsum's
    ``(g, k_h·C_out/g, C_in/g·k_w)`` matrices, a widening pointwise convolution's ``[W | b]``
    (:func:`_bias_row`; pass the same ``b`` to the call); None for the other paths and plain
    depthwise, which use ``w`` as it is. Pass it as ``conv(..., packed=...)``."""
    if _bias_row(plan.spec):
        if b is None:
            return None
        dt = plan.spec.dtype
        return np.concatenate([np.asarray(w, dt).reshape(plan.spec.c_out, -1), np.asarray(b, dt).reshape(-1, 1)], axis=1)
    if plan.path == "rowsum" and rowsum.fixed_buffers(plan.spec):
        return rowsum.pack_weights(np.asarray(w, plan.spec.dtype), plan.spec)
    if plan.winograd is None:
        return None
    with reserve(_nbytes(plan.spec, [wg.weight_shape(plan.spec, plan.winograd)]) * 2) as ws:
        u: FloatArray = wg.transform_weights(np.asarray(w, plan.spec.dtype), plan.spec, plan.winograd, ws).copy()
    return u


def _thread_parts(
    plan: ConvPlan,
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None,
    y: FloatArray,
    u: FloatArray | None,
    epilogue: Epilogue | None,
) -> list[Callable[[], None]]:
    """Independent parts of one convolution for :mod:`convcalc.execute.parallel`: whole samples
    when the batch has at least as many as threads (the plan runs on fewer samples as is), else
    for a depthwise taps convolution of one sample, ranges of channels (each planned alone);
    each part reserves its own thread's workspace. An empty list or one part: run inline.

    The GEMM and Winograd paths of a single sample are not split: the BLAS threads their
    matrix products itself (splitting the output rows among our threads instead, each with a
    one-thread BLAS, made ResNet-50 at batch 1 on two threads 1.3x slower: OpenBLAS serialises
    many small concurrent calls).  Nor is the rowsum path's (BLAS-bound too; split by channel
    ranges, 3x3 depthwise 144ch @56 took 1.17 ms on two threads vs 0.91 ms on one)."""
    spec = plan.spec
    count = parallel.threads()
    if count == 1 or spec.macs < PARALLEL_MIN_MACS:
        return []

    def part(sub: ConvPlan, xs: FloatArray, ws_: FloatArray, bs: FloatArray | None, ys: FloatArray, us: FloatArray | None) -> None:
        with reserve(sub.workspace_bytes) as ws:
            execute_conv(sub, xs, ws_, bs, ys, ws, us, epilogue)

    if spec.batch >= count:
        return [
            partial(part, plan, x[lo:hi], w, b, y[lo:hi], u) for lo, hi in parallel.whole(spec.batch)
        ]
    if plan.path != "taps" or spec.batch != 1 or spec.c_in_g != 1:
        return []
    mult = spec.c_out_g
    tasks: list[Callable[[], None]] = []
    for lo, hi in parallel.whole(spec.c_in):
        sub_spec = make_conv_spec(
            (1, hi - lo, *spec.in_shape), (mult * (hi - lo), 1, *spec.kernel), spec.stride, spec.padding, spec.dilation, hi - lo, spec.dtype
        )
        sub = plan_for_spec(sub_spec, "taps")
        channels = slice(lo * mult, hi * mult)
        tasks.append(partial(part, sub, x[:, lo:hi], w[channels], None if b is None else b[channels], y[:, channels], None))
    return tasks

