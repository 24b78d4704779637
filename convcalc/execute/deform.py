"""Deformable convolution v1/v2 (``torchvision.ops.deform_conv2d`` semantics).

Dai et al., "Deformable Convolutional Networks" (ICCV 2017) and Zhu et al.,
"Deformable ConvNets v2" (CVPR 2019).  For output ``(ho, wo)`` and tap
``(i, j)`` the input is sampled at ``h = ho*sh - ph + i*dh + dy`` and
``w = wo*sw - pw + j*dw + dx``; ``(dy, dx)`` come from
``offset[n, og*2*K + 2*(i*kw + j) + {0, 1}, ho, wo]`` for the channel's offset
group ``og = c // (C_in / offset_groups)`` (``K = kh*kw``).  The sample is 0
if ``h <= -1 or h >= H or w <= -1 or w >= W``, else the bilinear blend of the
four neighbours, neighbours outside the image counting as 0 (torchvision's
``bilinear_interpolate``).  v2 multiplies the sample by
``mask[n, og*K + i*kw + j, ho, wo]``.  The sampled columns
``(C_in*K, P)`` then go through one GEMM per weight group, as in im2col.

The mask and the validity test are folded into the four bilinear weights of
each (tap, position), so the per-channel sampling cost is 4 MACs per value.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from convcalc.execute.conv import IM2COL_BLOCK_BYTES
from convcalc.execute.geometry import (
    FloatArray,
    IntSpec,
    PadSpec,
    add_bias,
    as_float_array,
    copy_padded,
    int_tuple,
    pad_pairs,
    reshape_view,
    window_out_len,
)
from convcalc.execute.stats import KernelRecord, record
from convcalc.execute.workspace import buffer_bytes, get_workspace_budget, reserve


@dataclass(frozen=True)
class DeformSpec:
    """Validated shapes of one deformable convolution."""

    batch: int
    c_in: int
    c_out: int
    groups: int
    offset_groups: int
    in_shape: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, int]
    out_shape: tuple[int, int]
    modulated: bool

    @property
    def taps(self) -> int:
        """Kernel taps ``kh*kw``."""
        return prod(self.kernel)

    @property
    def macs(self) -> int:
        """Main-convolution MACs ``N * H_out*W_out * C_out * C_in/g * kh*kw``."""
        return self.batch * prod(self.out_shape) * self.c_out * (self.c_in // self.groups) * self.taps

    @property
    def sampling_macs(self) -> int:
        """``(4 + modulated) * N * C_in * kh*kw * H_out*W_out``."""
        return (4 + int(self.modulated)) * self.batch * self.c_in * self.taps * prod(self.out_shape)


def make_deform_spec(
    x_shape: tuple[int, ...],
    offset_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    mask_shape: tuple[int, ...] | None,
    stride: IntSpec,
    padding: PadSpec,
    dilation: IntSpec,
    offset_groups: int | None,
) -> DeformSpec:
    """Validate shapes; ``groups`` and (if ``None``) ``offset_groups`` are inferred as in torchvision."""
    if len(x_shape) != 4 or len(w_shape) != 4 or len(offset_shape) != 4:
        raise ValueError("deform_conv2d needs 4-D x, offset and weight")
    n, c_in, h, w = x_shape
    c_out, c_in_g, kh, kw = w_shape
    if c_in_g < 1 or c_in % c_in_g or c_out % (c_in // c_in_g):
        raise ValueError(f"weight {w_shape} incompatible with {c_in} input channels")
    groups = c_in // c_in_g
    k = kh * kw
    if offset_groups is None:
        offset_groups = offset_shape[1] // (2 * k)
    if offset_groups < 1 or c_in % offset_groups:
        raise ValueError(f"offset_groups={offset_groups} must divide C_in={c_in}")
    st, dl = int_tuple(stride, 2, "stride"), int_tuple(dilation, 2, "dilation")
    pads = pad_pairs(padding, 2)
    out = (
        window_out_len(h, kh, st[0], pads[0], dl[0]),
        window_out_len(w, kw, st[1], pads[1], dl[1]),
    )
    if min(out) < 1:
        raise ValueError("kernel larger than padded input")
    if offset_shape != (n, 2 * offset_groups * k, *out):
        raise ValueError(f"offset must have shape {(n, 2 * offset_groups * k, *out)}, got {offset_shape}")
    if mask_shape is not None and mask_shape != (n, offset_groups * k, *out):
        raise ValueError(f"mask must have shape {(n, offset_groups * k, *out)}, got {mask_shape}")
    return DeformSpec(
        n,
        c_in,
        c_out,
        groups,
        offset_groups,
        (h, w),
        (kh, kw),
        (st[0], st[1]),
        pads,
        (dl[0], dl[1]),
        out,
        mask_shape is not None,
    )


def deform_chunk(spec: DeformSpec, dtype: np.dtype[Any]) -> tuple[int, int]:
    """Output positions per chunk and the scratch bytes it needs (within the workspace budget)."""
    target = min(IM2COL_BLOCK_BYTES, get_workspace_budget())
    chunk = prod(spec.out_shape)
    while chunk > 1 and _chunk_bytes(spec, dtype, chunk) > target:
        chunk = (chunk + 1) // 2
    return chunk, _chunk_bytes(spec, dtype, chunk)


def deform_workspace_bytes(
    x_shape: tuple[int, ...],
    offset_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    mask_shape: tuple[int, ...] | None = None,
    stride: IntSpec = 1,
    padding: PadSpec = 0,
    dilation: IntSpec = 1,
    offset_groups: int | None = None,
    dtype: DTypeLike = np.float32,
) -> int:
    """Scratch bytes :func:`deform_conv2d` will reserve for these shapes."""
    spec = make_deform_spec(x_shape, offset_shape, w_shape, mask_shape, stride, padding, dilation, offset_groups)
    return deform_chunk(spec, np.dtype(dtype))[1]


def _chunk_bytes(spec: DeformSpec, dtype: np.dtype[Any], positions: int) -> int:
    k = spec.taps
    h, w = spec.in_shape
    return buffer_bytes(
        [
            ((spec.c_in, h + 2, w + 2), dtype),
            ((spec.c_in, k, positions), dtype),
            ((spec.c_in // spec.offset_groups, k * positions), dtype),
            ((4, k, positions), dtype),
            ((4, k, positions), np.int64),
        ]
    )


def _bilinear_taps(
    spec: DeformSpec, offset: FloatArray, mask: FloatArray | None, p0: int, p1: int, wts: FloatArray, idx: FloatArray
) -> None:
    """Fill the 4 neighbour weights and flat indices (padded image) per (tap, position)."""
    h_in, w_in = spec.in_shape
    kw = spec.kernel[1]
    pos = np.arange(p0, p1)
    ho, wo = pos // spec.out_shape[1], pos % spec.out_shape[1]
    ti, tj = np.divmod(np.arange(spec.taps), kw)
    dt = wts.dtype
    base_h = (ho * spec.stride[0] - spec.padding[0][0])[None, :] + (ti * spec.dilation[0])[:, None]
    base_w = (wo * spec.stride[1] - spec.padding[1][0])[None, :] + (tj * spec.dilation[1])[:, None]
    off = offset.reshape(2 * spec.taps, -1)[:, p0:p1]
    hs = base_h.astype(dt) + off[0::2]
    wp = base_w.astype(dt) + off[1::2]
    valid = (hs > -1) & (hs < h_in) & (wp > -1) & (wp < w_in)
    h0, w0 = np.floor(hs), np.floor(wp)
    lh, lw = hs - h0, wp - w0
    scale = valid.astype(dt) if mask is None else valid * mask.reshape(spec.taps, -1)[:, p0:p1]
    np.multiply((1 - lh) * (1 - lw), scale, out=wts[0])
    np.multiply((1 - lh) * lw, scale, out=wts[1])
    np.multiply(lh * (1 - lw), scale, out=wts[2])
    np.multiply(lh * lw, scale, out=wts[3])
    row = np.clip(h0, -1, h_in - 1).astype(np.int64) + 1
    col = np.clip(w0, -1, w_in - 1).astype(np.int64) + 1
    pitch = w_in + 2
    idx[0] = row * pitch + col
    idx[1] = idx[0] + 1
    idx[2] = idx[0] + pitch
    idx[3] = idx[2] + 1


def deform_conv2d(
    x: ArrayLike,
    offset: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntSpec = 1,
    padding: PadSpec = 0,
    dilation: IntSpec = 1,
    mask: ArrayLike | None = None,
    offset_groups: int | None = None,
) -> FloatArray:
    """Deformable 2-D convolution, ``torchvision.ops.deform_conv2d``.

    ``x`` (N, C_in, H, W); ``offset`` (N, 2*offset_groups*kh*kw, H_out,
    W_out) as (dy, dx) pairs per tap; ``weight`` (C_out, C_in/groups, kh, kw)
    (``groups`` inferred); ``mask`` (N, offset_groups*kh*kw, H_out, W_out) for
    v2 or None for v1; ``padding`` as (before, after) pairs or ints.
    """
    xa = as_float_array(x)
    oa = as_float_array(offset, xa.dtype)
    wa = as_float_array(weight, xa.dtype)
    ma = None if mask is None else as_float_array(mask, xa.dtype)
    ba = None if bias is None else as_float_array(bias, xa.dtype)
    spec = make_deform_spec(
        xa.shape, oa.shape, wa.shape, None if ma is None else ma.shape, stride, padding, dilation, offset_groups
    )
    if ba is not None and ba.shape != (spec.c_out,):
        raise ValueError(f"bias must have shape ({spec.c_out},)")
    total = prod(spec.out_shape)
    chunk, nbytes = deform_chunk(spec, xa.dtype)
    y = np.empty((spec.batch, spec.c_out, *spec.out_shape), xa.dtype)
    g, og, k = spec.groups, spec.offset_groups, spec.taps
    cg_off = spec.c_in // og
    wr = wa.reshape(g, spec.c_out // g, -1)
    h, w = spec.in_shape
    with reserve(nbytes) as ws:
        padded = ws.take((spec.c_in, h + 2, w + 2), xa.dtype)
        for n in range(spec.batch):
            copy_padded(xa[n], [(-1, h + 1), (-1, w + 1)], padded)
            flat = padded.reshape(og, cg_off, -1)
            yn = y[n].reshape(spec.c_out, total)
            for p0 in range(0, total, chunk):
                p1 = min(total, p0 + chunk)
                np_ = p1 - p0
                with ws.scope():
                    cols = ws.take((spec.c_in, k, np_), xa.dtype)
                    gathered = ws.take((cg_off, k * np_), xa.dtype)
                    wts = ws.take((4, k, np_), xa.dtype)
                    idx = ws.take((4, k, np_), np.int64)
                    for grp in range(og):
                        offs = oa[n, grp * 2 * k : (grp + 1) * 2 * k]
                        msk = None if ma is None else ma[n, grp * k : (grp + 1) * k]
                        _bilinear_taps(spec, offs, msk, p0, p1, wts, idx)
                        dst = cols[grp * cg_off : (grp + 1) * cg_off].reshape(cg_off, k * np_)
                        for corner in range(4):
                            np.take(flat[grp], idx[corner].reshape(-1), axis=1, out=gathered)
                            gathered *= wts[corner].reshape(1, -1)
                            if corner == 0:
                                np.copyto(dst, gathered)
                            else:
                                dst += gathered
                    out = reshape_view(yn[:, p0:p1], (g, spec.c_out // g, np_))
                    np.matmul(wr, cols.reshape(g, -1, np_), out=out)
    add_bias(y, ba)
    record(KernelRecord("deform_conv2d", "sampled-im2col", spec.macs, spec.macs, nbytes, spec.sampling_macs))
    return y


def deform_sample(
    x: FloatArray,
    offsets: FloatArray,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, int],
    offset_groups: int,
    modulated: bool,
) -> FloatArray:
    """The sampling stage alone, laid out for a ``k``-strided ``k`` convolution.

    Sample ``x`` at every tap moved by its learned (dy, dx) offset (the rule of the module
    docstring), times the sigmoid of the v2 mask channels when ``modulated``; tap ``(i, j)`` of
    output ``(h, w)`` lands at ``(h·k_h + i, w·k_w + j)`` of the ``(N, C, k_h·H_out, k_w·W_out)``
    result.
    """
    n, c, height, width = x.shape
    kh, kw = kernel_size
    taps = kh * kw
    groups = offset_groups
    ho, wo = offsets.shape[2:]
    off = offsets[:, : 2 * groups * taps].reshape(n, groups, taps, 2, ho, wo)
    ti, tj = np.divmod(np.arange(taps), kw)
    base_h = (np.arange(ho) * stride[0] - padding[0][0])[None, :, None] + (ti * dilation[0])[:, None, None]
    base_w = (np.arange(wo) * stride[1] - padding[1][0])[None, None, :] + (tj * dilation[1])[:, None, None]
    hs = base_h + off[:, :, :, 0]
    ws = base_w + off[:, :, :, 1]
    h0, w0 = np.floor(hs), np.floor(ws)
    lh, lw = hs - h0, ws - w0
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    r0 = np.clip(h0, -1, height).astype(np.intp) + 1
    c0 = np.clip(w0, -1, width).astype(np.intp) + 1
    r1, c1 = np.minimum(r0 + 1, height + 1), np.minimum(c0 + 1, width + 1)
    inside = ((hs > -1) & (hs < height) & (ws > -1) & (ws < width)).astype(x.dtype)
    if modulated:
        mask = offsets[:, 2 * groups * taps :].reshape(n, groups, taps, ho, wo)
        inside = inside / (1 + np.exp(-mask))
    per_group = c // groups
    sampled = np.empty((n, c, taps, ho, wo), x.dtype)
    for b in range(n):
        for g in range(groups):
            img = padded[b, g * per_group : (g + 1) * per_group]
            val = (
                img[:, r0[b, g], c0[b, g]] * ((1 - lh[b, g]) * (1 - lw[b, g]))
                + img[:, r0[b, g], c1[b, g]] * ((1 - lh[b, g]) * lw[b, g])
                + img[:, r1[b, g], c0[b, g]] * (lh[b, g] * (1 - lw[b, g]))
                + img[:, r1[b, g], c1[b, g]] * (lh[b, g] * lw[b, g])
            )
            sampled[b, g * per_group : (g + 1) * per_group] = val * inside[b, g]
    grid = sampled.reshape(n, c, kh, kw, ho, wo).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(grid).reshape(n, c, ho * kh, wo * kw)


def deform_sample_temporary_bytes(
    x_shape: tuple[int, ...], out_sizes: tuple[int, int], taps: int, offset_groups: int, itemsize: int
) -> int:
    """Upper bound of what :func:`deform_sample` allocates besides its output: the padded input,
    the ``sampled`` array (one output), about 16 float64 index/weight arrays of
    ``N·G·K·H_out·W_out`` values, and per group 8 gathered/multiplied arrays of the group's
    channels (float64 at worst, as the weights mix float32 and int64)."""
    n, c, height, width = x_shape
    positions = taps * out_sizes[0] * out_sizes[1]
    padded = n * c * (height + 2) * (width + 2) * itemsize
    sampled = n * c * positions * itemsize
    index = 16 * n * offset_groups * positions * 8
    per_group = 8 * (c // offset_groups) * positions * 8
    return padded + sampled + index + per_group
