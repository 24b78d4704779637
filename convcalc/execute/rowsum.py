"""Two-stage stride-1 2-D convolution: kernel columns by one GEMM, kernel rows by a GEMV.

For a 2-D convolution with stride 1 that keeps the width (``W_out = W_in = W``; any
groups, channel multiplier, padding and dilation), with the input as flat rows of
pitch ``W`` (``m = r·W + j``, ``r < H_in``) and ``H_p = H_in + p_t + p_b`` padded rows:

* ``E[c, e, m] = x[c, r, j + s_e]`` with ``s_e = e·d_w - p_l``, zero where column
  ``j + s_e`` leaves ``[0, W)``: ``k_w`` copies of the input, each one flat run
  shifted by ``s_e``, then the columns whose reads wrap across a row end zeroed;
* stage 1, one GEMM per group over the input rows:
  ``Q[o, a, (r + p_t)·W + j] = Σ_{c, e} w[o, c, a, e]·E[c, e, r·W + j]``,
  ``(C_out/g·k_h, C_in/g·k_w) @ (C_in/g·k_w, H_in·W)``; the ``p_t + p_b`` padding rows
  of ``Q`` are zero (written once per call);
* stage 2, one GEMV per output channel: ``y[o, i·W + j] = Σ_a Q[o, a, (i + a·d_h)·W + j]``,
  ``(1, k_h)`` ones times the ``k_h`` rows of ``Q`` at row stride ``H_p·W + d_h·W``
  (BLAS reads them in place).  With one output channel per group (depthwise without a
  multiplier) ``Q`` holds a row of ones after the planes and the vector is
  ``(1, ..., 1, b_o)``: the bias costs no extra pass (144ch @56: 0.93 vs 1.03 ms).

``k_w`` input copies and ``k_h`` times the output in ``Q``, instead of im2col's
``k_h·k_w`` input copies and per-channel calls; both products are BLAS calls over
whole blocks of channels.  Measured (1 thread, OpenBLAS SkylakeX kernels): 3x3
depthwise 144ch @56 1.0 ms vs 1.3 ms for one GEMV per output row and per-channel
GEMVs over im2col columns; ResNeXt 3x3 g=32 256ch @14 0.35 ms vs 0.57 ms im2col.
Stage 1 runs ``H_in / H_out`` times the direct MACs, stage 2 adds ``k_h`` per output.
"""

from __future__ import annotations

from functools import lru_cache
from math import prod

import numpy as np

from convcalc.execute.convspec import ConvSpec
from convcalc.execute.geometry import FloatArray, blocks, copy_padded, reshape_view
from convcalc.execute.workspace import Workspace

BLOCK_BYTES = 1 << 20
"""Preferred scratch per block (E, Q and the output block), about half of L2: both products
then read cache-resident data (3x3 depthwise 144ch @56, 1 thread, E+Q per block: 0.3 MiB
1.24 ms, 0.6 MiB 1.07 ms, 1.2 MiB 1.02 ms, 2.5 MiB 1.42 ms, 11 MiB 1.70 ms)."""


def applies(spec: ConvSpec) -> bool:
    """2-D, stride 1, output width = input width."""
    return spec.ndim == 2 and spec.stride == (1, 1) and spec.out_shape[1] == spec.in_shape[1]


def padded_rows(spec: ConvSpec) -> int:
    """``H_p = H_in + p_t + p_b = H_out + d_h·(k_h - 1)``."""
    return spec.in_shape[0] + sum(spec.padding[0])


def fixed_buffers(spec: ConvSpec) -> list[tuple[int, ...]]:
    """Per call: the weights as ``(g, C_out/g·k_h, C_in/g·k_w)`` (a view when ``C_in/g == 1``)."""
    if spec.c_in_g == 1:
        return []
    return [(spec.groups, spec.c_out_g * spec.kernel[0], spec.c_in_g * spec.kernel[1])]


def _q_channel(spec: ConvSpec) -> int:
    """``Q`` elements per output channel: ``k_h`` planes of ``H_p·W``; with one output channel per
    group, a row of ones after them (at the stage-2 row stride), which adds the bias."""
    m, wd = padded_rows(spec) * spec.in_shape[1], spec.in_shape[1]
    if spec.c_out_g > 1:
        return spec.kernel[0] * m
    return (spec.kernel[0] + 1) * (m + spec.dilation[0] * wd)


def block_buffers(spec: ConvSpec, nb: int, gb: int) -> list[tuple[int, ...]]:
    """Per block of ``nb`` samples x ``gb`` groups: ``E`` (input rows only), ``Q`` (all padded
    rows) and the output (for a strided ``y``)."""
    h, wd = spec.in_shape
    return [
        (nb, gb * spec.c_in_g * spec.kernel[1], h * wd),
        (nb, gb * spec.c_out_g, _q_channel(spec)),
        (nb, gb * spec.c_out_g, 1, prod(spec.out_shape)),
    ]


def executed_macs(spec: ConvSpec) -> int:
    """Stage 1 over the ``H_in`` input rows plus stage 2's ``k_h`` per output."""
    out = spec.batch * spec.c_out * prod(spec.out_shape)
    return spec.macs * spec.in_shape[0] // spec.out_shape[0] + out * spec.kernel[0]


def pack_weights(w: FloatArray, spec: ConvSpec) -> FloatArray:
    """``wr[g, (o, a), (c, e)] = w[g·C_out/g + o, c, a, e]`` as a new array (made once per layer)."""
    (k0, k1), g, cin_g, cout_g = spec.kernel, spec.groups, spec.c_in_g, spec.c_out_g
    wr: FloatArray = np.ascontiguousarray(w.reshape(g, cout_g, cin_g, k0, k1).transpose(0, 1, 3, 2, 4))
    return wr.reshape(g, cout_g * k0, cin_g * k1)


def _weights(spec: ConvSpec, w: FloatArray, ws: Workspace, packed: FloatArray | None) -> FloatArray:
    """The stage-1 matrices: ``packed`` (:func:`pack_weights`), a view of ``w`` when ``C_in/g == 1``,
    else re-arranged into the workspace."""
    (k0, k1), g, cin_g, cout_g = spec.kernel, spec.groups, spec.c_in_g, spec.c_out_g
    if packed is not None:
        return packed
    if cin_g == 1:
        return w.reshape(g, cout_g * k0, k1)
    wr = ws.take(fixed_buffers(spec)[0], spec.dtype)
    np.copyto(wr.reshape(g, cout_g, k0, cin_g, k1), w.reshape(g, cout_g, cin_g, k0, k1).transpose(0, 1, 3, 2, 4))
    return wr


@lru_cache(maxsize=256)
def _spans(spec: ConvSpec) -> tuple[tuple[int, int, int], ...]:
    """``(s_e, lo, hi)`` per kernel column: plane ``e`` holds ``x[m + s_e]`` at flat ``[lo, hi)``."""
    m = prod(spec.in_shape)
    shifts = [e * spec.dilation[1] - spec.padding[1][0] for e in range(spec.kernel[1])]
    return tuple((s, min(m, max(0, -s)), max(0, min(m, m - s))) for s in shifts)


def _zero_margins(spans: tuple[tuple[int, int, int], ...], e4: FloatArray) -> None:
    """Zero the flat ranges of ``e4`` (``(nb, C, k_w, H·W)``) no plane copies data into (once per
    call: every block reuses the buffer)."""
    e4[..., : max(lo for _, lo, _ in spans)] = 0.0
    e4[..., min(max(lo, hi) for _, lo, hi in spans) :] = 0.0


def _load(spec: ConvSpec, spans: tuple[tuple[int, int, int], ...], x: FloatArray, e4: FloatArray, grid: FloatArray) -> None:
    """``e4[n, c, e]`` (``grid``: the same as ``(nb, C, k_w, H, W)``) = the input shifted by ``s_e``:
    one flat copy per kernel column, then the columns whose reads wrap across a row end zeroed
    (the ends by :func:`_zero_margins`).  An input whose rows are not one flat run (a strided
    view) is copied row by row."""
    h, wd = spec.in_shape
    item = x.itemsize
    if x.strides[-1] != item or x.strides[-2] != wd * item:
        for e, (s, _, _) in enumerate(spans):
            copy_padded(x, [(0, h), (s, s + wd)], grid[:, :, e])
        return
    src = x.reshape(*x.shape[:2], h * wd)
    for e, (s, lo, hi) in enumerate(spans):
        if hi > lo:
            e4[:, :, e, lo:hi] = src[..., lo + s : hi + s]
        if s < 0:
            grid[:, :, e, :, : min(wd, -s)] = 0.0
        elif s > 0:
            grid[:, :, e, :, max(0, wd - s) :] = 0.0


def run(
    spec: ConvSpec,
    block: tuple[int, int],
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None,
    y: FloatArray,
    ws: Workspace,
    packed: FloatArray | None = None,
) -> None:
    """Write ``conv(x, w) + b`` into ``y`` (``x`` may hold fewer samples than ``spec``), blocks of
    ``block = (samples, groups)``; the block buffers are taken once and sliced per block.
    ``packed``: :func:`pack_weights` of ``w`` (else re-arranged here when ``C_in/g > 1``)."""
    with ws.scope():
        _run(spec, block, x, _weights(spec, w, ws, packed), b, y, ws)


def _view(base: FloatArray, shape: tuple[int, ...], strides: tuple[int, ...], offset: int = 0) -> FloatArray:
    """Strided view of the C-contiguous ``base`` from element ``offset`` (bounds checked by
    ``np.ndarray``; 5x cheaper per call than ``as_strided``, which matters at 14x14)."""
    view: FloatArray = np.ndarray(shape, base.dtype, base, offset * base.itemsize, strides)
    return view


def _run(spec: ConvSpec, block: tuple[int, int], x: FloatArray, wr: FloatArray, b: FloatArray | None, y: FloatArray, ws: Workspace) -> None:
    k0, k1 = spec.kernel
    g, cin_g, cout_g = spec.groups, spec.c_in_g, spec.c_out_g
    ho, wd = spec.out_shape
    h, hp, pt = spec.in_shape[0], padded_rows(spec), spec.padding[0][0]
    m, npos, item = hp * wd, ho * wd, y.itemsize
    row = m + spec.dilation[0] * wd
    fused = b is not None and cout_g == 1
    if fused:
        assert b is not None
        vec = np.ones((g, 1, k0 + 1), spec.dtype)
        vec[:, 0, k0] = b
    else:
        vec = np.ones((1, 1, k0), spec.dtype)
    y5 = reshape_view(y, (y.shape[0], g, cout_g, ho, wd))
    direct = y.strides[-1] == item and y.strides[-2] == wd * item
    bias = None if b is None or fused else b.reshape(g * cout_g, 1, 1)
    nbm, gbm = min(block[0], x.shape[0]), block[1]
    shapes = block_buffers(spec, nbm, gbm)
    e = ws.take(shapes[0], spec.dtype)
    q = ws.take(shapes[1], spec.dtype)
    tmp = None if direct else ws.take(shapes[2], spec.dtype)
    e4 = e.reshape(nbm, gbm * cin_g, k1, h * wd)
    grid = e.reshape(nbm, gbm * cin_g, k1, h, wd)
    spans = _spans(spec)
    _zero_margins(spans, e4)
    e_mm = e.reshape(nbm, gbm, cin_g * k1, h * wd)
    sn, sc = q.strides[:2]
    planes = _view(q, (nbm, gbm, cout_g * k0, hp, wd), (sn, cout_g * sc, m * item, wd * item, item))
    planes[..., :pt, :] = 0.0
    planes[..., pt + h :, :] = 0.0
    q_mm = _view(q, (nbm, gbm, cout_g * k0, h * wd), (sn, cout_g * sc, m * item, item), pt * wd)
    if fused:
        _view(q, (nbm, gbm, npos), (sn, sc, item), k0 * row).fill(1.0)
    rows = _view(q, (nbm, gbm * cout_g, vec.shape[-1], npos), (sn, sc, row * item, item))
    for n0, n1, g0, g1 in blocks(x.shape[0], g, nbm, gbm):
        nb, gb = n1 - n0, g1 - g0
        _load(spec, spans, x[n0:n1, g0 * cin_g : g1 * cin_g], e4[:nb, : gb * cin_g], grid[:nb, : gb * cin_g])
        np.matmul(wr[g0:g1], e_mm[:nb, :gb], out=q_mm[:nb, :gb])
        dst = y5[n0:n1, g0:g1]
        out = reshape_view(dst, (nb, gb * cout_g, 1, npos)) if tmp is None else tmp[:nb, : gb * cout_g]
        np.matmul(vec[g0:g1] if fused else vec[0], rows[:nb, : gb * cout_g], out=out)
        if bias is not None:  # on flat rows (per output row it costs 20% of the call at W = 56)
            np.add(out, bias[g0 * cout_g : g1 * cout_g], out=out)
        if tmp is not None:
            np.copyto(dst, out.reshape(dst.shape))
