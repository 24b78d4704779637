"""Two-stage stride-1 2-D convolution: kernel columns by one GEMM, kernel rows by a GEMV.

For a 2-D convolution with stride 1 that keeps the width (``W_out = W_in = W``; any
groups, channel multiplier, padding and dilation), with the input as flat rows of
pitch ``W`` (``m = r·W + j``, ``r < H_in``) and ``H_p = H_in + p_t + p_b`` padded rows:

* ``E[c, e, m] = x[c, r, j + s_e]`` with ``s_e = e·d_w - p_l``, zero where column
  ``j + s_e`` leaves ``[0, W)``: ``k_w`` copies of the input, each one flat run
  shifted by ``s_e``, then the columns whose reads wrap across a row end zeroed;
* stage 1, one GEMM per group over the input rows:
  ``Q[a, o, (r + p_t)·W + j] = Σ_{c, e} w[o, c, a, e]·E[c, e, r·W + j]``,
  ``(k_h·C_out/g, C_in/g·k_w) @ (C_in/g·k_w, H_in·W)``; the ``p_t + p_b`` padding rows
  of ``Q`` are zero (written once per call);
* stage 2, one GEMV per output channel:
  ``y[o, i·W + j] = Σ_a Q[a, o, (i + a·d_h)·W + j] + b_o``, ``(1, ..., 1, b_o)`` times
  the ``k_h`` rows of ``Q`` at row stride ``C_out/g·H_p·W + d_h·W`` and one row of a zone
  of ones after the planes (BLAS reads them in place; the bias costs no extra pass:
  144ch @56 0.93 vs 1.03 ms with an add).

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
from convcalc.execute.geometry import Epilogue, FloatArray, blocks, copy_padded, finish_block, reshape_view
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


def _packs(spec: ConvSpec) -> bool:
    """Whether the stage-1 matrices need a re-arranged copy of ``w`` (not a view)."""
    return spec.c_in_g > 1 or spec.c_out_g > 1


def fixed_buffers(spec: ConvSpec) -> list[tuple[int, ...]]:
    """Per call: the weights as ``(g, k_h·C_out/g, C_in/g·k_w)`` (none: a view of ``w`` when each
    group has one input and one output channel)."""
    if not _packs(spec):
        return []
    return [(spec.groups, spec.kernel[0] * spec.c_out_g, spec.c_in_g * spec.kernel[1])]


def _q_group(spec: ConvSpec) -> tuple[int, int, int]:
    """``(m, row, size)``: plane length ``H_p·W``, stage-2 row stride ``C_out/g·m + d_h·W`` and
    ``Q`` elements per group: ``k_h·C_out/g`` planes in ``(a, o)`` order, then a zone of ones
    that every output channel's stage-2 row ``k_h`` reads (it adds the bias)."""
    wd = spec.in_shape[1]
    m, k0, cout_g = padded_rows(spec) * wd, spec.kernel[0], spec.c_out_g
    row = cout_g * m + spec.dilation[0] * wd
    ones = (cout_g - 1) * m + k0 * spec.dilation[0] * wd + prod(spec.out_shape)
    return m, row, k0 * cout_g * m + ones


def block_buffers(spec: ConvSpec, nb: int, gb: int) -> list[tuple[int, ...]]:
    """Per block of ``nb`` samples x ``gb`` groups: ``E`` (input rows only), ``Q`` (all padded
    rows and the ones) and the output (for a strided ``y``)."""
    h, wd = spec.in_shape
    return [
        (nb, gb * spec.c_in_g * spec.kernel[1], h * wd),
        (nb, gb, _q_group(spec)[2]),
        (nb, gb, spec.c_out_g, 1, prod(spec.out_shape)),
    ]


def executed_macs(spec: ConvSpec) -> int:
    """Stage 1 over the ``H_in`` input rows plus stage 2's ``k_h`` per output."""
    out = spec.batch * spec.c_out * prod(spec.out_shape)
    return spec.macs * spec.in_shape[0] // spec.out_shape[0] + out * spec.kernel[0]


def _arrange(w: FloatArray, spec: ConvSpec) -> FloatArray:
    """View ``[g, a, o, c, e] = w[g·C_out/g + o, c, a, e]``."""
    (k0, k1), g, cin_g, cout_g = spec.kernel, spec.groups, spec.c_in_g, spec.c_out_g
    view: FloatArray = w.reshape(g, cout_g, cin_g, k0, k1).transpose(0, 3, 1, 2, 4)
    return view


def pack_weights(w: FloatArray, spec: ConvSpec) -> FloatArray:
    """``wr[g, (a, o), (c, e)] = w[g·C_out/g + o, c, a, e]`` as a new array (made once per layer)."""
    wr: FloatArray = np.ascontiguousarray(_arrange(w, spec))
    return wr.reshape(fixed_buffers(spec)[0])


def _weights(spec: ConvSpec, w: FloatArray, ws: Workspace, packed: FloatArray | None) -> FloatArray:
    """The stage-1 matrices: ``packed`` (:func:`pack_weights`), a view of ``w`` for one input and
    one output channel per group, else re-arranged into the workspace."""
    if packed is not None:
        return packed
    if not _packs(spec):
        return w.reshape(spec.groups, spec.kernel[0], spec.kernel[1])
    wr = ws.take(fixed_buffers(spec)[0], spec.dtype)
    np.copyto(wr.reshape(_arrange(w, spec).shape), _arrange(w, spec))
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
    epilogue: Epilogue | None = None,
) -> None:
    """Write ``epilogue(conv(x, w) + b)`` into ``y`` (``x`` may hold fewer samples than ``spec``),
    blocks of ``block = (samples, groups)``; the block buffers are taken once and sliced per
    block, the epilogue applied to each output block as it is written.
    ``packed``: :func:`pack_weights` of ``w`` (else re-arranged here when ``C_in/g > 1``)."""
    with ws.scope():
        _run(spec, block, x, _weights(spec, w, ws, packed), b, y, ws, epilogue)


def _view(base: FloatArray, shape: tuple[int, ...], strides: tuple[int, ...], offset: int = 0) -> FloatArray:
    """Strided view of the C-contiguous ``base`` from element ``offset`` (bounds checked by
    ``np.ndarray``; 5x cheaper per call than ``as_strided``, which matters at 14x14)."""
    view: FloatArray = np.ndarray(shape, base.dtype, base, offset * base.itemsize, strides)
    return view


def _run(
    spec: ConvSpec,
    block: tuple[int, int],
    x: FloatArray,
    wr: FloatArray,
    b: FloatArray | None,
    y: FloatArray,
    ws: Workspace,
    epilogue: Epilogue | None,
) -> None:
    k0, k1 = spec.kernel
    g, cin_g, cout_g = spec.groups, spec.c_in_g, spec.c_out_g
    ho, wd = spec.out_shape
    h, hp, pt = spec.in_shape[0], padded_rows(spec), spec.padding[0][0]
    npos, item = ho * wd, y.itemsize
    m, row, _ = _q_group(spec)
    if b is None:
        vec = np.ones((1, 1, 1, k0), spec.dtype)
    else:
        vec = np.ones((g, cout_g, 1, k0 + 1), spec.dtype)
        vec[:, :, 0, k0] = b.reshape(g, cout_g)
    y5 = reshape_view(y, (y.shape[0], g, cout_g, ho, wd))
    direct = y.strides[-1] == item and y.strides[-2] == wd * item
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
    sn, sg = q.strides[:2]
    planes = _view(q, (nbm, gbm, k0 * cout_g, hp, wd), (sn, sg, m * item, wd * item, item))
    planes[..., :pt, :] = 0.0
    planes[..., pt + h :, :] = 0.0
    q_mm = _view(q, (nbm, gbm, k0 * cout_g, h * wd), (sn, sg, m * item, item), pt * wd)
    if b is not None:
        q[..., k0 * cout_g * m :] = 1.0
    rows = _view(q, (nbm, gbm, cout_g, vec.shape[-1], npos), (sn, sg, m * item, row * item, item))
    for n0, n1, g0, g1 in blocks(x.shape[0], g, nbm, gbm):
        nb, gb = n1 - n0, g1 - g0
        _load(spec, spans, x[n0:n1, g0 * cin_g : g1 * cin_g], e4[:nb, : gb * cin_g], grid[:nb, : gb * cin_g])
        np.matmul(wr[g0:g1], e_mm[:nb, :gb], out=q_mm[:nb, :gb])
        dst = y5[n0:n1, g0:g1]
        out = reshape_view(dst, (nb, gb, cout_g, 1, npos)) if tmp is None else tmp[:nb, :gb]
        np.matmul(vec if b is None else vec[g0:g1], rows[:nb, :gb], out=out)
        if tmp is not None:
            np.copyto(dst, out.reshape(dst.shape))
        finish_block(dst, None, epilogue)
