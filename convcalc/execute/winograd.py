"""Winograd minimal filtering F(m, r) for stride-1 convolutions.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016):
a 1-D tile of ``m`` outputs of an ``r``-tap correlation is
``y = A^T [(G g) * (B^T d)]`` with ``alpha = m + r - 1`` element-wise products
instead of ``m*r``; nesting gives the 2-D ``Y = A^T [(G g G^T) * (B^T d B)] A``.
The matrices are built by the Toom-Cook construction from the interpolation
points ``0, 1, -1, 2, -2, 1/2, -1/2`` (as many as needed) and infinity; for
F(4, 3) these give Lavin's matrices.  ``m`` is chosen per axis from
{2, 4, 6} by a small cost model (GEMM work vs transform and copy work);
float32 error is ~2-30x the direct algorithm's (tests bound it).

Layout: the trailing one (1-D) or two (2-D, 3-D) spatial axes are tiled; a
3-D convolution's depth axis is a direct axis whose taps are folded into the
transform-domain GEMM (``K = k_depth * C_in``).  Dilation ``d`` is handled by
tiling each of the ``d`` interleaved phases: a tile holds the ``m`` outputs
``o0 + d*u`` and reads inputs ``o0 + d*j``, ``j < alpha``.  Transforms are
single GEMMs with Kronecker products of the 1-D matrices; the channel GEMMs
are batched over the ``alpha^2`` transform-domain points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import product
from math import prod
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from convcalc.execute.convspec import ConvSpec
from convcalc.execute.geometry import Epilogue, FloatArray, blocks, copy_padded, finish_block, reshape_view
from convcalc.execute.workspace import Workspace

TILES = (2, 4, 6)
"""Candidate outputs per tile (``m`` of F(m, r)) per axis; the cheapest by :func:`winograd_cost` is used."""
COPY_COST = 8.0
"""Cost model: one element gathered or scattered costs about this many GEMM multiply-adds."""
GEMM_HALF_N = 30
"""Cost model: channel GEMMs run at ``N / (N + GEMM_HALF_N)`` of peak for ``N`` tile columns."""
GATHER_BYTES = 1 << 20
"""Tiles are gathered and input-transformed in chunks of about this size (L2 resident)."""

_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)
_KERNELS = (2, 3)


@cache
def winograd_matrices(m: int, r: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return ``(A^T, G, B^T)`` of F(m, r), shapes (m, a), (a, r), (a, a), ``a = m + r - 1``.

    ``A^T`` and ``G`` are the Toom-Cook evaluation matrices (``G`` carries
    the Lagrange denominators); ``B^T`` is solved from the identity
    ``sum_j A^T[i, j] G[j, k] B^T[j, u] = [u == i + k]``.
    """
    alpha = m + r - 1
    if alpha - 1 > len(_POINTS):
        raise ValueError(f"F({m}, {r}) needs more interpolation points than available")
    pts = np.array(_POINTS[: alpha - 1])
    at = np.zeros((m, alpha))
    at[:, :-1] = pts[None, :] ** np.arange(m)[:, None]
    at[-1, -1] = 1.0
    denom = np.array([np.prod([p - q for q in pts if q != p]) for p in pts])
    g = np.zeros((alpha, r))
    g[:-1] = pts[:, None] ** np.arange(r)[None, :] / denom[:, None]
    g[-1, -1] = 1.0
    system = (at[:, None, :] * g.T[None, :, :]).reshape(m * r, alpha)
    rhs = np.zeros((m * r, alpha))
    for i in range(m):
        for k in range(r):
            rhs[i * r + k, i + k] = 1.0
    bt = np.linalg.lstsq(system, rhs, rcond=None)[0]
    if not np.allclose(system @ bt, rhs, atol=1e-12):
        raise RuntimeError(f"no Winograd F({m}, {r}) for the chosen points")
    return at, g, np.asarray(np.round(bt, 12))


def kron_all(mats: Sequence[FloatArray]) -> FloatArray:
    """Kronecker product of the per-axis matrices (axis 0 outermost)."""
    out = mats[0]
    for m in mats[1:]:
        out = np.kron(out, m)
    return out


@cache
def _kron_matrices(geo: WinogradGeometry, dtype: np.dtype[Any]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Kronecker products over the tiled axes: ``(A^T, G, B^T)``.

    With several filters, ``B^T`` stacks one ``(alpha^n, alpha_in^n)`` block
    per filter, each reading its shifted window of the shared input tile.
    """
    mats = [winograd_matrices(m, r) for m, r in zip(geo.m, geo.r, strict=True)]
    at, g = kron_all([a for a, _, _ in mats]), kron_all([gg for _, gg, _ in mats])
    blocks_bt = []
    for shift in geo.shifts:
        shifted = []
        for (_, _, bt), sh, width in zip(mats, shift, geo.alpha_in, strict=True):
            padded = np.zeros((bt.shape[0], width))
            padded[:, sh : sh + bt.shape[1]] = bt
            shifted.append(padded)
        blocks_bt.append(kron_all(shifted))
    out = tuple(np.ascontiguousarray(m, dtype=dtype) for m in (at, g, np.concatenate(blocks_bt)))
    for arr in out:
        arr.setflags(write=False)
    return out[0], out[1], out[2]


@dataclass(frozen=True)
class WinogradGeometry:
    """Tiling of a convolution's trailing axes into F(m, r) tiles.

    ``lead`` is the number of direct leading spatial axes (1 for 3-D, else 0);
    per tiled axis ``m`` outputs per tile, ``r`` taps, dilation ``d`` and
    ``q`` tile groups, each group spanning ``m*d`` outputs (``d`` phases).
    ``shifts`` (dilation 1, no lead axis) lists several filters that read the
    same input at different offsets ``t + shift + j``: their input transforms
    share one tile gather (the stride phases of a transposed convolution).
    """

    lead: int
    m: tuple[int, ...]
    r: tuple[int, ...]
    d: tuple[int, ...]
    q: tuple[int, ...]
    shifts: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.shifts:
            object.__setattr__(self, "shifts", ((0,) * len(self.m),))

    @property
    def alpha(self) -> tuple[int, ...]:
        """Transform-domain points per axis (``m + r - 1``)."""
        return tuple(m + r - 1 for m, r in zip(self.m, self.r, strict=True))

    @property
    def filters(self) -> int:
        """Number of filters sharing the input tiles (stride phases of a transposed conv)."""
        return len(self.shifts)

    @property
    def alpha_in(self) -> tuple[int, ...]:
        """Input tile length per axis: ``alpha`` plus the largest filter shift."""
        return tuple(a + max(s[i] for s in self.shifts) for i, a in enumerate(self.alpha))

    @property
    def span(self) -> tuple[int, ...]:
        """Outputs covered by one tile group per axis."""
        return tuple(m * d for m, d in zip(self.m, self.d, strict=True))

    @property
    def row_unit(self) -> int:
        """Granularity of row blocks along spatial axis 0."""
        return 1 if self.lead else self.span[0]


def winograd_geometry(spec: ConvSpec) -> WinogradGeometry | None:
    """Tiling for ``spec`` or ``None`` when Winograd does not apply.

    Applies to tiled axes with 2 or 3 taps and stride 1 (any dilation), and
    for 3-D only without groups.
    """
    lead = 1 if spec.ndim == 3 else 0
    if lead and spec.groups != 1:
        return None
    axes = range(lead, spec.ndim)
    if any(spec.kernel[a] not in _KERNELS or spec.stride[a] != 1 for a in axes):
        return None
    d = tuple(spec.dilation[a] for a in axes)
    r = tuple(spec.kernel[a] for a in axes)
    candidates = [
        WinogradGeometry(lead, m, r, d, tuple(-(-spec.out_shape[a] // (ma * da)) for a, ma, da in zip(axes, m, d, strict=True)))
        for m in product(TILES, repeat=len(axes))
    ]
    return min(candidates, key=lambda geo: winograd_cost(spec, geo))


def winograd_cost(spec: ConvSpec, geo: WinogradGeometry) -> float:
    """Estimated work per sample in GEMM multiply-add units (used to pick the tile size).

    Channel GEMMs (discounted for few tile columns), the two Kronecker
    transform GEMMs, and the gather/scatter copies.
    """
    tiles = prod(qa * da for qa, da in zip(geo.q, geo.d, strict=True))
    a, mo = prod(geo.alpha), prod(geo.m)
    rows_out = spec.out_shape[0] if geo.lead else 1
    rows_in = spec.in_shape[0] + sum(spec.padding[0]) if geo.lead else 1
    k_lead = spec.kernel[0] if geo.lead else 1
    columns = tiles * min(spec.batch, 8)
    main = tiles * a * spec.c_out * spec.c_in_g * k_lead * rows_out * (columns + GEMM_HALF_N) / columns
    transforms = tiles * (spec.c_in * a * a * rows_in + spec.c_out * mo * a * rows_out)
    copies = COPY_COST * tiles * (spec.c_in * a * rows_in + spec.c_out * mo * rows_out)
    return main + transforms + copies


def weight_transform_cost(spec: ConvSpec, geo: WinogradGeometry) -> float:
    """Work of :func:`transform_weights`, paid once per call whatever the batch: the Kronecker
    GEMM (``alpha^n`` outputs of ``prod(r)`` terms per filter) and writing ``U``."""
    filters = spec.c_out * spec.c_in_g * (spec.kernel[0] if geo.lead else 1)
    return prod(geo.alpha) * filters * (prod(geo.r) + COPY_COST)


@dataclass(frozen=True)
class _Block:
    """Buffer shapes of one block of ``nb`` samples and ``rows`` output rows."""

    q: tuple[int, ...]
    slab: tuple[int, ...]
    tiles: tuple[int, ...]
    chunk: int
    gather: tuple[int, ...]
    v: tuple[int, ...]
    m: tuple[int, ...]
    y: tuple[int, ...]
    cols: tuple[int, ...] | None


def _block(spec: ConvSpec, geo: WinogradGeometry, nb: int, rows: int) -> _Block:
    q = list(geo.q)
    lead_in: list[int] = []
    if geo.lead:
        lead_in = [(rows - 1) * spec.stride[0] + spec.dilation[0] * (spec.kernel[0] - 1) + 1]
    else:
        q[0] = -(-rows // geo.span[0])
    ext = [
        qa * sp + d * (r - 1) + ai - al
        for qa, sp, d, r, ai, al in zip(q, geo.span, geo.d, geo.r, geo.alpha_in, geo.alpha, strict=True)
    ]
    tiles = tuple(v for qa, d in zip(q, geo.d, strict=True) for v in (qa, d))
    t = nb * prod(tiles)
    a, mo, f, a_in = prod(geo.alpha), prod(geo.m), geo.filters, prod(geo.alpha_in)
    cols = (a, t, spec.kernel[0], spec.c_in) if geo.lead and spec.dilation[0] > 1 else None
    row_tiles = prod(tiles[1:]) * prod(lead_in) * spec.c_in
    chunk = max(1, min(q[0], GATHER_BYTES // (a_in * row_tiles * spec.itemsize)))
    return _Block(
        q=tuple(q),
        slab=(nb, spec.c_in, *lead_in, *ext),
        tiles=tiles,
        chunk=chunk,
        gather=(a_in, chunk * row_tiles),
        v=(f * a, t, *lead_in, spec.c_in),
        m=(f * a, spec.c_out, t),
        y=(f, mo, spec.c_out, t),
        cols=cols,
    )


def weight_shape(spec: ConvSpec, geo: WinogradGeometry) -> tuple[int, ...]:
    """Shape of the transformed weights ``U``."""
    kd = spec.kernel[0] if geo.lead else 1
    return (geo.filters * prod(geo.alpha), spec.c_out, kd * spec.c_in_g)


def block_buffers(spec: ConvSpec, geo: WinogradGeometry, nb: int, rows: int) -> list[tuple[int, ...]]:
    """Shapes of the scratch buffers one block needs (excluding ``U``)."""
    blk = _block(spec, geo, nb, rows)
    shapes = [blk.slab, blk.gather, blk.v, blk.m, blk.y]
    return shapes if blk.cols is None else [*shapes, blk.cols]


def executed_macs(spec: ConvSpec, geo: WinogradGeometry) -> int:
    """Transform-domain multiply-accumulates of the channel GEMMs."""
    tiles = prod(qa * d for qa, d in zip(geo.q, geo.d, strict=True))
    lead = spec.out_shape[0] * spec.kernel[0] if geo.lead else 1
    return geo.filters * spec.batch * lead * tiles * prod(geo.alpha) * spec.c_out * spec.c_in_g


def transform_weights(w: FloatArray, spec: ConvSpec, geo: WinogradGeometry, ws: Workspace) -> FloatArray:
    """``U = G g G^T`` per (out, in[, depth tap]) as ``(alpha^n, C_out, K)``."""
    _, kg, _ = _kron_matrices(geo, spec.dtype)
    a = prod(geo.alpha)
    flat = ws.take((a, w.size // prod(geo.r)), spec.dtype)
    np.matmul(kg, w.reshape(-1, prod(geo.r)).T, out=flat)
    if not geo.lead:
        return reshape_view(flat, weight_shape(spec, geo))
    u = ws.take(weight_shape(spec, geo), spec.dtype)
    kd = spec.kernel[0]
    np.copyto(u.reshape(a, spec.c_out, kd, spec.c_in), flat.reshape(a, spec.c_out, spec.c_in, kd).transpose(0, 1, 3, 2))
    return u


def _tile_view(slab: FloatArray, geo: WinogradGeometry, blk: _Block) -> FloatArray:
    """View ``(alpha..., nb, (Q, d)..., [depth], C)`` of the tiles in ``slab``.

    Channels innermost: the gather copy then runs long inner loops (the
    channel-strided reads stay in cache), 3-8x faster than tile-inner orders.
    """
    base = 2 + geo.lead
    shape = list(slab.shape[:base])
    strides = list(slab.strides[:base])
    for i, (qa, d, al, sp) in enumerate(zip(blk.q, geo.d, geo.alpha_in, geo.span, strict=True)):
        st = slab.strides[base + i]
        shape += [qa, d, al]
        strides += [sp * st, st, d * st]
    view = as_strided(slab, tuple(shape), tuple(strides), writeable=False)
    nw = len(geo.m)
    perm = [base + 3 * i + 2 for i in range(nw)] + [0]
    perm += [base + 3 * i + j for i in range(nw) for j in (0, 1)]
    return np.asarray(view.transpose([*perm, *range(2, base), 1]))


def _input_transform(
    slab: FloatArray, v: FloatArray, kbt: FloatArray, geo: WinogradGeometry, blk: _Block, gather: FloatArray
) -> None:
    """``V = (B^T kron B^T) @ tiles`` (all filters at once), gathering ``blk.chunk`` tile rows at a time."""
    view = _tile_view(slab, geo, blk)
    nw = len(geo.m)
    a = v.shape[0]
    per_sample = prod(blk.tiles)
    per_row = per_sample // blk.q[0]
    for n in range(slab.shape[0]):
        for q0 in range(0, blk.q[0], blk.chunk):
            q1 = min(blk.q[0], q0 + blk.chunk)
            part = view[(slice(None),) * nw + (n, slice(q0, q1))]
            buf = gather[:, : part[(0,) * nw].size].reshape(part.shape)
            np.copyto(buf, part)
            t0 = n * per_sample + q0 * per_row
            dst = v[:, t0 : t0 + (q1 - q0) * per_row]
            np.matmul(kbt, buf.reshape(kbt.shape[1], -1), out=reshape_view(dst, (a, -1)))


@lru_cache(maxsize=64)
def _scatter_plan(
    geo: WinogradGeometry, spatial: tuple[int, ...]
) -> tuple[tuple[tuple[int | slice, ...], tuple[slice, ...]], ...]:
    """(source index, target index) pairs of :func:`_scatter` for one block shape."""
    pairs = []
    for mo, us in enumerate(product(*(range(m) for m in geo.m))):
        for rs in product(*(range(d) for d in geo.d)):
            src: list[int | slice] = [mo, slice(None), slice(None)]
            dst: list[slice] = [slice(None), slice(None)]
            for u, r, d, span, size in zip(us, rs, geo.d, geo.span, spatial, strict=True):
                first = u * d + r
                if first >= size:
                    break
                dst.append(slice(first, None, span))
                src += [slice(0, -(-(size - first) // span)), r]
            else:
                pairs.append((tuple(src), tuple(dst)))
    return tuple(pairs)


def _scatter(ybuf: FloatArray, target: FloatArray, geo: WinogradGeometry, blk: _Block) -> None:
    """Copy ``(m..., C_out, nb, (Q, d)...)`` tiles into ``target`` ``(nb, C_out, *spatial)``.

    One strided copy per in-tile position ``u`` and phase ``r`` (per axis),
    covering outputs ``q*m*d + u*d + r`` that fall inside ``target``: fewer,
    longer inner loops than one fully transposed copy, and no crop pass.
    """
    src_all = ybuf.reshape(prod(geo.m), ybuf.shape[1], target.shape[0], *blk.tiles)
    for src, dst in _scatter_plan(geo, target.shape[2:]):
        np.copyto(target[dst], src_all[src].swapaxes(0, 1))


def _channel_gemm(
    u: FloatArray,
    v: FloatArray,
    mbuf: FloatArray,
    spec: ConvSpec,
    geo: WinogradGeometry,
    row: int,
    cols: FloatArray | None,
) -> None:
    """Transform-domain products ``M[xi] = U[xi] @ V[xi]^T`` for one row of the direct axis.

    ``v`` is ``(alpha^n, T, [depth], C_in)``; BLAS reads ``V[xi]^T`` as a
    transposed operand, no copy.  With a direct (depth) axis, the depth taps
    of output row ``row`` are folded into the contraction (``K = k_d * C_in``).
    """
    a, t = v.shape[0], v.shape[1]
    if not geo.lead:
        g = spec.groups
        np.matmul(
            u.reshape(a, g, spec.c_out_g, spec.c_in_g),
            v.reshape(a, t, g, spec.c_in_g).transpose(0, 2, 3, 1),
            out=mbuf.reshape(a, g, spec.c_out_g, t),
        )
        return
    s, d, k = spec.stride[0], spec.dilation[0], spec.kernel[0]
    src = v[:, :, row * s : row * s + (k - 1) * d + 1 : d]
    if cols is not None:
        np.copyto(cols, src)
        src = cols
    np.matmul(u, reshape_view(src, (a, t, k * spec.c_in)).transpose(0, 2, 1), out=mbuf)


def run_winograd(
    x: FloatArray,
    u: FloatArray,
    b: FloatArray | None,
    spec: ConvSpec,
    geo: WinogradGeometry,
    block: tuple[int, int],
    targets: Sequence[FloatArray],
    ws: Workspace,
    epilogue: Epilogue | None = None,
) -> None:
    """Write ``epilogue(conv(x, w_f) + b)`` into ``targets[f]`` for each filter, from transformed
    weights ``u``.

    ``u`` is ``(filters * alpha^n, C_out, K)``; targets may be strided views;
    the bias and the epilogue are applied block by block while the outputs are cache hot.
    """
    kat, _, kbt = _kron_matrices(geo, spec.dtype)
    dt = spec.dtype
    for n0, n1, r0, r1 in blocks(x.shape[0], spec.out_shape[0], *block):
        blk = _block(spec, geo, n1 - n0, r1 - r0)
        with ws.scope():
            slab = ws.take(blk.slab, dt)
            ranges = []
            for axis in range(spec.ndim):
                lo = (r0 * spec.stride[0] if axis == 0 else 0) - spec.padding[axis][0]
                ranges.append((lo, lo + blk.slab[2 + axis]))
            copy_padded(x[n0:n1], ranges, slab)
            v = ws.take(blk.v, dt)
            _input_transform(slab, v, kbt, geo, blk, ws.take(blk.gather, dt))
            mbuf = ws.take(blk.m, dt)
            ybuf = ws.take(blk.y, dt)
            cols = ws.take(blk.cols, dt) if blk.cols else None
            for row in range(r1 - r0 if geo.lead else 1):
                _channel_gemm(u, v, mbuf, spec, geo, row, cols)
                np.matmul(kat, mbuf.reshape(geo.filters, kat.shape[1], -1), out=ybuf.reshape(geo.filters, kat.shape[0], -1))
                for f, y in enumerate(targets):
                    target = y[n0:n1, :, r0 + row] if geo.lead else y[n0:n1, :, r0:r1]
                    _scatter(ybuf[f], target, geo, blk)
                    finish_block(target, b, epilogue)
