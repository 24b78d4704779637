"""N-d transposed convolution (PyTorch ``conv_transpose{1,2,3}d``).

``y[n, g*Cog + o, u - before] += x[n, g*Cig + c, i] * w[g*Cig + c, o, k]`` for
``u = i*s + k*d`` (per axis), output length
``(L-1)*s + d*(k-1) + 1 - before - after + output_padding``; ``output_padding``
extends the END (PyTorch semantics).

Algorithm (stride-phase decomposition, no zero-inserted input): output positions ``u`` with ``u % s == r`` receive only the taps
``k`` with ``k*d % s == r``, at input index ``i = q - (k*d - r)/s`` where
``u = q*s + r``.  Each phase is therefore an ordinary stride-1 convolution of
``x`` with the flipped sub-kernel (dilation ``d / gcd(d, s)``) and a
phase-specific padding or crop, run by :func:`convcalc.execute.conv.execute_conv`
(Winograd / im2col / taps as it sees fit) and written to ``y[..., r::s]``.
Phases that receive no tap hold the bias only.  Total work equals the direct
per-input-position count ``N * in_positions * C_in * C_out/g * prod(k)`` up
to the outputs cropped away.

col2im (``algorithm="col2im"``, chosen by :func:`_prefer_col2im`): one GEMM per sample and
group computes every (output channel, tap) product of every input position,
``cols = w_gᵀ (C_out/g·K, C_in/g) @ x_g (C_in/g, P)``, then each tap's ``(C_out, P)`` slab is
added into its stride-``s`` slice of ``y`` (``K`` strided adds). Same MACs, no im2col copy.

Phases whose sub-convolutions are all Winograd with the same sub-kernel size
and output size (e.g. every phase of DCGAN's 4x4 stride-2 layer) differ only
by an input shift; they run as one multi-filter Winograd call that gathers
and input-transforms the union window once (``WinogradGeometry.shifts``) and
transforms all phase weights with one GEMM on the contiguous kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache, lru_cache, partial
from itertools import product
from math import prod
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from convcalc.execute import parallel
from convcalc.execute.conv import (
    PARALLEL_MIN_MACS,
    ConvPlan,
    execute_conv,
    output_array,
    plan_for_spec,
    plan_winograd,
    winograd_channels,
)
from convcalc.execute.convspec import ConvSpec, make_conv_spec
from convcalc.execute.geometry import (
    Epilogue,
    FloatArray,
    IntSpec,
    PadSpec,
    as_float_array,
    finish_block,
    int_tuple,
    pad_pairs,
)
from convcalc.execute.stats import KernelRecord, record, recording
from convcalc.execute.winograd import (
    WinogradGeometry,
    kron_all,
    run_winograd,
    weight_shape,
    winograd_geometry,
    winograd_matrices,
)
from convcalc.execute.workspace import Workspace, buffer_bytes, get_workspace_budget, reserve


@dataclass(frozen=True)
class _AxisPhase:
    """One stride phase along one axis; ``taps`` selects its kernel taps, flipped."""

    start: int
    count: int
    ntaps: int
    taps: slice
    dilation: int
    padding: tuple[int, int]


def _axis_phases(length: int, k: int, s: int, d: int, pad: tuple[int, int], out_len: int) -> list[_AxisPhase]:
    phases = []
    for r in range(s):
        taps = [t for t in range(k) if (t * d) % s == r]
        q0 = -((r - pad[0]) // s)
        count = max(0, (pad[0] + out_len - 1 - r) // s - q0 + 1)
        start = r + s * q0 - pad[0]
        if not taps:
            phases.append(_AxisPhase(start, count, 0, slice(0, 0), 1, (0, 0)))
            continue
        shifts = [(t * d - r) // s for t in taps]
        dil = shifts[1] - shifts[0] if len(taps) > 1 else 1
        before = shifts[-1] - q0
        after = count + (len(taps) - 1) * dil - length - before
        step = taps[1] - taps[0] if len(taps) > 1 else 1
        flipped = slice(taps[-1], taps[0] - step if taps[0] >= step else None, -step)
        phases.append(_AxisPhase(start, count, len(taps), flipped, dil, (before, after)))
    return phases


@dataclass(frozen=True)
class _Phase:
    """A stride phase of the output: where it goes and which kernel taps feed it (flipped)."""

    out: tuple[slice, ...]
    taps: tuple[slice, ...]
    padding: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _PhaseGroup:
    """Phases filled by one convolution call; several share one Winograd input transform.

    ``plan`` is None for phases that receive no tap (bias only).
    """

    phases: tuple[_Phase, ...]
    plan: ConvPlan | None

    @property
    def shared(self) -> bool:
        """Whether the phases run as one multi-filter Winograd call."""
        return self.plan is not None and self.plan.winograd is not None and self.plan.winograd.filters > 1


@dataclass(frozen=True)
class ConvTransposePlan:
    """Phase decomposition, sample blocking and scratch size of one call."""

    in_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    groups: int
    phase_groups: tuple[_PhaseGroup, ...]
    batch_block: int
    workspace_bytes: int
    macs: int
    executed_macs: int
    path: str
    col2im: tuple[_AxisScatter, ...] | None = None
    """Per axis, where each kernel tap's products land, when the col2im path runs."""
    channels_last: bool = False
    """col2im with channels innermost (many output channels per group: long contiguous adds)."""


def _group_bytes(group: _PhaseGroup, nb: int, dtype: np.dtype[Any]) -> int:
    if group.plan is None:
        return 0
    spec = group.plan.spec
    shapes = [] if group.plan.writes_strided else [(nb, spec.c_out, *spec.out_shape)]
    return buffer_bytes([(s, dtype) for s in shapes]) + group.plan.workspace_bytes


def _group_phases(phases: list[_Phase], single: list[ConvPlan | None], budget: int, dt: np.dtype[Any]) -> list[_PhaseGroup]:
    """Group Winograd phases that can share their input transform; others run alone."""
    out: list[_PhaseGroup] = []
    buckets: dict[tuple[Any, ...], list[tuple[_Phase, ConvPlan]]] = {}
    for phase, plan in zip(phases, single, strict=True):
        geo = None if plan is None else plan.winograd
        if plan is None or geo is None or geo.lead or set(plan.spec.dilation) != {1}:
            out.append(_PhaseGroup((phase,), plan))
            continue
        buckets.setdefault((plan.spec.kernel, plan.spec.out_shape, geo), []).append((phase, plan))
    for members in buckets.values():
        shared = _union_plan([ph for ph, _ in members], members[0][1], budget, dt) if len(members) > 1 else None
        if shared is None:
            out += [_PhaseGroup((ph,), plan) for ph, plan in members]
        else:
            out.append(_PhaseGroup(tuple(ph for ph, _ in members), shared))
    return out


def _union_plan(phases: list[_Phase], first: ConvPlan, budget: int, dt: np.dtype[Any]) -> ConvPlan | None:
    """Winograd plan reading the union of the phases' input windows once (shifted filters)."""
    assert first.winograd is not None
    spec = first.spec
    before = [max(ph.padding[a][0] for ph in phases) for a in range(spec.ndim)]
    shifts = tuple(tuple(b - ph.padding[a][0] for a, b in enumerate(before)) for ph in phases)
    kernel = tuple(k + max(sh[a] for sh in shifts) for a, k in enumerate(spec.kernel))
    pads = tuple((b, o + k - 1 - n - b) for b, o, k, n in zip(before, spec.out_shape, kernel, spec.in_shape, strict=True))
    union = make_conv_spec(
        (spec.batch, spec.c_in, *spec.in_shape),
        (spec.c_out, spec.c_in_g, *kernel),
        1,
        pads,
        1,
        spec.groups,
        dt,
        allow_crop=True,
    )
    return plan_winograd(union, replace(first.winograd, shifts=shifts), budget)


TransposeAlgorithm = Literal["auto", "phases", "col2im"]
COL2IM_BLOCK_BYTES = 4 << 20
"""Columns per col2im block, at most (whole samples; the scatter-adds then read them from cache)."""
COL2IM_LAST_MIN_CHANNELS = 16
"""From this many output channels per group on, col2im keeps its columns channels-last
(``(P, K, C_out/g)``): every tap's scatter-add then runs over ``C_out/g``-long contiguous rows
instead of rows of the input width (256->128 k4/2 @16x16: the 16 adds 0.92 ms -> see bench)."""
COL2IM_COPY_POSITIONS = 64
"""From this many input positions per call on, col2im transposes the weights into a contiguous
copy (GEMM on a transposed view vs copy, 256->128 k4 @16x16: 3.1 vs 2.2 ms; at 4x4 positions the
copy of 8 MiB of weights costs more than the GEMM)."""


@dataclass(frozen=True)
class _AxisScatter:
    """col2im along one axis: per kernel tap the input positions ``i`` it reaches and where they
    land in the phase-major buffer (``u = i·s + t·d - before = q·s + r``: phase ``r``, index
    ``q``); ``phase_len`` positions ``q`` per phase."""

    taps: tuple[tuple[slice, int, slice], ...]
    stride: int
    phase_len: int
    out_len: int


def _axis_scatter(length: int, k: int, s: int, d: int, pad: tuple[int, int], out_len: int) -> _AxisScatter:
    taps = []
    for t in range(k):
        shift = t * d - pad[0]
        lo = max(0, -(shift // s))  # ceil(-shift / s)
        hi = min(length - 1, (out_len - 1 - shift) // s)
        if hi < lo:
            taps.append((slice(0, 0), 0, slice(0, 0)))
            continue
        r = shift % s
        q = (lo * s + shift - r) // s
        taps.append((slice(lo, hi + 1), r, slice(q, q + hi - lo + 1)))
    return _AxisScatter(tuple(taps), s, -(-out_len // s), out_len)


def _prefer_col2im(n: int, in_sp: tuple[int, ...], c_in: int, kernel: tuple[int, ...], stride: tuple[int, ...], groups: int) -> bool:
    """col2im beats the stride phases on every strided kernel whose windows overlap (some
    ``k > s``), and on narrow stride-1 layers (``N·P <= 8·C_in/g``: few positions for many
    channels). Measured with the weights packed once (wall clock, 1 thread, ms, phases ->
    col2im), k4/2: 512->256 @4 14.0 -> 1.5 (batch 8: 18.3 -> 9.6), 256->128 @8 2.5 -> 0.95
    (8.1 -> 6.9), 128->64 @16 1.5 -> 1.0 (8.1 -> 7.4), 64->3 @32 0.70 -> 0.23 (6.5 -> 1.2),
    128->64 @32 batch 8 38.9 -> 36.1, 64->32 @64 10.1 -> 7.2, 32->16 @128 17.1 -> 16.0; stride
    1, DCGAN's projection 100->512 k4 @1x1 (one GEMV on the packed weights instead of an im2col
    of the padded input) 2.6 -> 0.4. With ``k = s`` every phase is a plain 1x1 GEMM and a wide
    stride-1 layer's single phase may use Winograd: the phases keep those."""
    overlapping = any(k > s for k, s in zip(kernel, stride, strict=True))
    narrow = n * prod(in_sp) <= 8 * (c_in // groups)
    return overlapping and (max(stride) > 1 or narrow)


def _phase_plan(spec: ConvSpec, budget: int) -> ConvPlan:
    """A phase's convolution: Winograd whenever it applies with enough channels (phases with
    equal sub-kernels then share one weight transform, see :func:`_group_phases`), else auto."""
    geo = winograd_geometry(spec)
    shared = plan_winograd(spec, geo, budget) if geo is not None and winograd_channels(spec) else None
    return shared if shared is not None else plan_for_spec(spec, budget=budget)


def plan_conv_transpose(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: IntSpec = 1,
    padding: PadSpec = 0,
    output_padding: IntSpec = 0,
    dilation: IntSpec = 1,
    groups: int = 1,
    dtype: DTypeLike = np.float32,
    budget: int | None = None,
    algorithm: TransposeAlgorithm = "auto",
) -> ConvTransposePlan:
    """Plan a transposed convolution from shapes (``ValueError`` if inconsistent); ``.workspace_bytes`` is its scratch.

    ``algorithm``: ``"phases"`` (stride phases), ``"col2im"`` (one GEMM + scatter-add) or ``"auto"``
    (:func:`_prefer_col2im`)."""
    nd = len(x_shape) - 2
    if nd not in (1, 2, 3) or len(w_shape) != nd + 2:
        raise ValueError(f"x {x_shape} / weight {w_shape}: expected (N, C, *S) and (C_in, C_out/g, *k), 1-3 axes")
    return _plan_transpose(
        tuple(x_shape),
        tuple(w_shape),
        int_tuple(stride, nd, "stride"),
        pad_pairs(padding, nd),
        int_tuple(output_padding, nd, "output_padding", minimum=0),
        int_tuple(dilation, nd, "dilation"),
        groups,
        np.dtype(dtype),
        get_workspace_budget() if budget is None else budget,
        algorithm,
    )


@lru_cache(maxsize=128)
def _plan_transpose(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    st: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    op: tuple[int, ...],
    dl: tuple[int, ...],
    groups: int,
    dt: np.dtype[Any],
    budget: int,
    algorithm: TransposeAlgorithm,
) -> ConvTransposePlan:
    n, c_in, *in_sp = x_shape
    w_in, c_out_g, *kernel = w_shape
    if groups < 1 or w_in != c_in or c_in % groups:
        raise ValueError(f"weight {w_shape} does not match C_in={c_in} with groups={groups}")
    out_sp = tuple(
        (i - 1) * s + d * (k - 1) + 1 - pb - pa + o
        for i, s, d, k, (pb, pa), o in zip(in_sp, st, dl, kernel, pads, op, strict=True)
    )
    if min(out_sp) < 1:
        raise ValueError(f"transposed convolution output would be empty: {out_sp}")
    axes = [_axis_phases(*args) for args in zip(in_sp, kernel, st, dl, pads, out_sp, strict=True)]
    c_out = c_out_g * groups
    macs = n * prod(in_sp) * c_in * c_out_g * prod(kernel)
    per_sample = c_out * prod(kernel) * prod(in_sp) * dt.itemsize
    if algorithm == "col2im" or (algorithm == "auto" and _prefer_col2im(n, tuple(in_sp), c_in, tuple(kernel), st, groups)):
        w_bytes = buffer_bytes([(w_shape, dt)])
        if per_sample + w_bytes <= budget:
            nb = max(1, min(n, COL2IM_BLOCK_BYTES // per_sample, (budget - w_bytes) // per_sample))
            scatter = tuple(_axis_scatter(*args) for args in zip(in_sp, kernel, st, dl, pads, out_sp, strict=True))
            phase_buf = (nb, c_out, *st, *(a.phase_len for a in scatter))
            return ConvTransposePlan(
                in_shape=tuple(x_shape),
                w_shape=tuple(w_shape),
                out_shape=(n, c_out, *out_sp),
                groups=groups,
                phase_groups=(),
                batch_block=nb,
                workspace_bytes=w_bytes
                + buffer_bytes([((nb, c_out * prod(kernel), prod(in_sp)), dt), (phase_buf, dt)])
                + (buffer_bytes([((nb, prod(in_sp), c_in), dt)]) if _stacks(nb, groups) else 0),
                macs=macs,
                executed_macs=macs,
                path="col2im" + ("-cl" if c_out_g >= COL2IM_LAST_MIN_CHANNELS else ""),
                col2im=scatter,
                channels_last=c_out_g >= COL2IM_LAST_MIN_CHANNELS,
            )
        if algorithm == "col2im":
            raise ValueError(f"col2im needs {per_sample} bytes of columns per sample, over the budget {budget}")
    nb = n
    while nb > 1 and (nb * c_out * prod(out_sp) // prod(st)) * dt.itemsize > budget // 2:
        nb = (nb + 1) // 2
    phases: list[_Phase] = []
    single: list[ConvPlan | None] = []
    for combo in product(*axes):
        if any(a.count == 0 for a in combo):
            continue
        out = tuple(slice(a.start, None, s) for a, s in zip(combo, st, strict=True))
        phases.append(_Phase(out, tuple(a.taps for a in combo), tuple(a.padding for a in combo)))
        sub = None
        if all(a.ntaps for a in combo):
            spec = make_conv_spec(
                (nb, c_in, *in_sp),
                (c_out, c_in // groups, *(a.ntaps for a in combo)),
                1,
                phases[-1].padding,
                tuple(a.dilation for a in combo),
                groups,
                dt,
                allow_crop=True,
            )
            sub = _phase_plan(spec, budget // 2)
        single.append(sub)
    phase_groups = _group_phases(phases, single, budget // 2, dt)
    ws = buffer_bytes([(w_shape, dt)]) + max(_group_bytes(g, nb, dt) for g in phase_groups)
    executed = sum(g.plan.executed_macs // nb for g in phase_groups if g.plan) * n
    paths = sorted({("shared-" if g.shared else "") + g.plan.path for g in phase_groups if g.plan})
    return ConvTransposePlan(
        in_shape=tuple(x_shape),
        w_shape=tuple(w_shape),
        out_shape=(n, c_out, *out_sp),
        groups=groups,
        phase_groups=tuple(phase_groups),
        batch_block=nb,
        workspace_bytes=ws,
        macs=macs,
        executed_macs=executed,
        path=f"phases[{prod(st)}]:" + "+".join(paths) if paths else "bias",
    )


def _conv_layout(w: FloatArray, groups: int, ws: Workspace) -> FloatArray:
    """``(C_in, C_out/g, *k)`` -> ``(C_out, C_in/g, *k)`` (per-phase sub-kernels are views of it)."""
    c_in, c_out_g, *k = w.shape
    dst = ws.take((groups * c_out_g, c_in // groups, *k), w.dtype)
    grouped = w.reshape(groups, c_in // groups, c_out_g, *k).swapaxes(1, 2)
    np.copyto(dst.reshape(grouped.shape), grouped)
    return dst


@cache
def _shared_g(
    geo: WinogradGeometry, taps: tuple[tuple[tuple[int, ...], ...], ...], kernel: tuple[int, ...], dt: np.dtype[Any]
) -> FloatArray:
    """Stacked ``G`` transforms of all shared phases reading the full flipped kernel: ``(F*alpha^n, prod(k))``.

    ``taps[f][axis]`` lists the kernel indices of phase ``f``'s (flipped)
    sub-kernel; its ``G`` columns are placed there, so one GEMM with the
    contiguous conv-layout weights transforms every phase.
    """
    blocks_g = []
    for phase_taps in taps:
        per_axis = []
        for m, r, idx, k in zip(geo.m, geo.r, phase_taps, kernel, strict=True):
            g = winograd_matrices(m, r)[1]
            full = np.zeros((g.shape[0], k))
            full[:, list(idx)] = g
            per_axis.append(full)
        blocks_g.append(kron_all(per_axis))
    out = np.ascontiguousarray(np.concatenate(blocks_g), dtype=dt)
    out.setflags(write=False)
    return out


def _run_group(group: _PhaseGroup, x: FloatArray, wconv: FloatArray, targets: list[FloatArray], ws: Workspace) -> None:
    """Fill the group's phase views (``targets``) of ``y`` for the samples in ``x``."""
    plan = group.plan
    if plan is None:
        for t in targets:
            t.fill(0)
        return
    if group.shared:
        assert plan.winograd is not None
        kernel = wconv.shape[2:]
        taps = tuple(tuple(tuple(range(k)[sl]) for sl, k in zip(ph.taps, kernel, strict=True)) for ph in group.phases)
        kg = _shared_g(plan.winograd, taps, kernel, wconv.dtype)
        u = ws.take(weight_shape(plan.spec, plan.winograd), wconv.dtype)
        np.matmul(kg, wconv.reshape(-1, kg.shape[1]).T, out=u.reshape(kg.shape[0], -1))
        run_winograd(x, u, None, plan.spec, plan.winograd, plan.block, targets, ws)
        return
    index = (slice(None), slice(None), *group.phases[0].taps)
    wsub = wconv[index]
    if plan.writes_strided:
        execute_conv(plan, x, wsub, None, targets[0], ws)
        return
    tmp = ws.take(targets[0].shape, x.dtype)
    execute_conv(plan, x, wsub, None, tmp, ws)
    np.copyto(targets[0], tmp)


def _run_col2im(plan: ConvTransposePlan, x: FloatArray, w: FloatArray, y: FloatArray, ws: Workspace) -> None:
    """``cols[n, (o, t), p] = Σ_c w[c, o, t]·x[n, c, p]`` per group (one GEMM per sample and
    group), then each tap's ``(C_out, P)`` slab is added into a phase-major buffer
    ``buf[n, o, r_1..r_D, q_1..q_D]`` (contiguous rows; strided adds straight into ``y`` ran
    ~4x slower), and the ``prod(s)`` phases are copied into ``y[..., r::s]``."""
    assert plan.col2im is not None
    n, c_in, *in_sp = x.shape
    groups, axes = plan.groups, plan.col2im
    c_in_g, (c_out_g, *kernel) = c_in // groups, w.shape[1:]
    taps = prod(kernel)
    wt = w.reshape(groups, c_in_g, c_out_g * taps).transpose(0, 2, 1)
    if prod(in_sp) * n >= COL2IM_COPY_POSITIONS:  # a contiguous copy makes the GEMM ~1.4x faster
        wt = ws.take(wt.shape, x.dtype)
        np.copyto(wt, w.reshape(groups, c_in_g, c_out_g * taps).transpose(0, 2, 1))
    xg = x.reshape(n, groups, c_in_g, prod(in_sp))  # a view unless x is a non-contiguous slice
    strides = tuple(a.stride for a in axes)
    for n0 in range(0, n, plan.batch_block):
        n1 = min(n, n0 + plan.batch_block)
        with ws.scope():
            cols = ws.take((n1 - n0, groups, c_out_g * taps, prod(in_sp)), x.dtype)
            np.matmul(wt, xg[n0:n1], out=cols)
            grid = cols.reshape(n1 - n0, groups * c_out_g, *kernel, *in_sp)
            buf = ws.take((n1 - n0, groups * c_out_g, *strides, *(a.phase_len for a in axes)), x.dtype)
            buf.fill(0)
            for tap in product(*(range(k) for k in kernel)):
                where = [axes[a].taps[t] for a, t in enumerate(tap)]
                if any(src.stop == 0 for src, _, _ in where):
                    continue
                dst_key: tuple[Any, ...] = (slice(None), slice(None), *(r for _, r, _ in where), *(q for _, _, q in where))
                src_key: tuple[Any, ...] = (slice(None), slice(None), *tap, *(i for i, _, _ in where))
                dst = buf[dst_key]
                np.add(dst, grid[src_key], out=dst)
            for phase in product(*(range(s) for s in strides)):
                counts = [len(range(r, a.out_len, a.stride)) for r, a in zip(phase, axes, strict=True)]
                out_key: tuple[Any, ...] = (slice(n0, n1), slice(None), *(slice(r, None, a.stride) for r, a in zip(phase, axes, strict=True)))
                in_key: tuple[Any, ...] = (slice(None), slice(None), *phase, *(slice(0, c) for c in counts))
                np.copyto(y[out_key], buf[in_key])


def _col2im(
    plan: ConvTransposePlan,
    x: FloatArray,
    w: FloatArray,
    packed: FloatArray | None,
    y: FloatArray,
    b: FloatArray | None = None,
    epilogue: Epilogue | None = None,
) -> None:
    """The col2im path on ``x``'s samples (all, or a thread's share: every part reserves the plan's
    workspace in its own thread's arena), then the bias and the epilogue on its outputs."""
    with reserve(plan.workspace_bytes) as ws:
        if plan.channels_last:
            _run_col2im_last(plan, x, w, packed, y, ws)
        else:
            _run_col2im(plan, x, w, y, ws)
    finish_block(y, b, epilogue)


def _stacks(nb: int, groups: int) -> bool:
    """Whether channels-last col2im stacks the block's samples into one GEMM: the packed weights
    are then read once per block, not once per sample (DCGAN 512->256 k4/2 @4x4, batch 8: eight
    ``(16, 512) @ (512, 4096)`` products re-read 8 MiB of weights each)."""
    return nb > 1 and groups == 1


def pack_col2im(w: FloatArray, groups: int) -> FloatArray:
    """Weights ``(C_in, C_out/g, *k)`` packed for channels-last col2im:
    ``packed[g, c, t·C_out/g + o] = w[g·C_in/g + c, o, t]`` (make once, pass to :func:`conv_transpose`)."""
    c_in, c_out_g, *kernel = w.shape
    grouped = w.reshape(groups, c_in // groups, c_out_g, prod(kernel)).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(grouped).reshape(groups, c_in // groups, prod(kernel) * c_out_g)


def _run_col2im_last(
    plan: ConvTransposePlan, x: FloatArray, w: FloatArray, packed: FloatArray | None, y: FloatArray, ws: Workspace
) -> None:
    """Channels-last col2im: ``cols[n, g, p, (t, o)] = Σ_c x[n, g, c, p]·packed[g, c, (t, o)]`` (a
    GEMM on the transposed view of ``x``), each tap's ``(P, C_out/g)`` slab added into the
    phase-major buffer ``buf[n, r.., q.., g, o]`` (rows of ``C_out/g`` contiguous values), then
    every phase copied (transposed to channels-first) into ``y[..., r::s]``."""
    assert plan.col2im is not None
    n, c_in, *in_sp = x.shape
    groups, axes = plan.groups, plan.col2im
    c_in_g, (c_out_g, *kernel) = c_in // groups, w.shape[1:]
    taps = prod(kernel)
    if packed is not None and (packed.shape != (groups, c_in_g, taps * c_out_g) or packed.dtype != x.dtype):
        raise ValueError(f"packed weights {packed.shape} {packed.dtype} do not match {w.shape} {x.dtype} (use pack_col2im)")
    if packed is None:
        packed = ws.take((groups, c_in_g, taps * c_out_g), x.dtype)
        np.copyto(packed.reshape(groups, c_in_g, taps, c_out_g), w.reshape(groups, c_in_g, c_out_g, taps).transpose(0, 1, 3, 2))
    xt = x.reshape(n, groups, c_in_g, prod(in_sp)).transpose(0, 1, 3, 2)
    strides = tuple(a.stride for a in axes)
    nd = len(in_sp)
    for n0 in range(0, n, plan.batch_block):
        n1 = min(n, n0 + plan.batch_block)
        nb = n1 - n0
        with ws.scope():
            cols = ws.take((nb, groups, prod(in_sp), taps * c_out_g), x.dtype)
            if _stacks(nb, groups):
                rows = ws.take((nb, prod(in_sp), c_in), x.dtype)
                np.copyto(rows, xt[n0:n1, 0])
                np.matmul(rows.reshape(-1, c_in), packed[0], out=cols.reshape(-1, taps * c_out_g))
            else:
                np.matmul(xt[n0:n1], packed, out=cols)
            grid = cols.reshape(nb, groups, *in_sp, *kernel, c_out_g)
            buf = ws.take((nb, *strides, *(a.phase_len for a in axes), groups, c_out_g), x.dtype)
            buf.fill(0)
            # grid axes: n, g, i.., t.., o -> n, i.., g, o for a tap
            order = (0, *range(2, 2 + nd), 1, 2 + nd)
            for tap in product(*(range(k) for k in kernel)):
                where = [axes[a].taps[t] for a, t in enumerate(tap)]
                if any(src.stop == 0 for src, _, _ in where):
                    continue
                dst_key: tuple[Any, ...] = (slice(None), *(r for _, r, _ in where), *(q for _, _, q in where))
                src_key: tuple[Any, ...] = (slice(None), slice(None), *(i for i, _, _ in where), *tap)
                dst = buf[dst_key]
                np.add(dst, grid[src_key].transpose(order), out=dst)
            flat = buf.reshape(nb, *strides, *(a.phase_len for a in axes), groups * c_out_g)
            for phase in product(*(range(s) for s in strides)):
                counts = [len(range(r, a.out_len, a.stride)) for r, a in zip(phase, axes, strict=True)]
                out_key: tuple[Any, ...] = (slice(n0, n1), slice(None), *(slice(r, None, a.stride) for r, a in zip(phase, axes, strict=True)))
                in_key: tuple[Any, ...] = (slice(None), *phase, *(slice(0, c) for c in counts))
                np.copyto(y[out_key], np.moveaxis(flat[in_key], -1, 1))


def conv_transpose(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntSpec = 1,
    padding: PadSpec = 0,
    output_padding: IntSpec = 0,
    dilation: IntSpec = 1,
    groups: int = 1,
    out: FloatArray | None = None,
    *,
    algorithm: TransposeAlgorithm = "auto",
    packed: FloatArray | None = None,
) -> FloatArray:
    """Transposed convolution, ``torch.nn.functional.conv_transpose{1,2,3}d``.

    ``x``: (N, C_in, *S); ``w``: (C_in, C_out/groups, *k); ``padding``:
    (before, after) crop pairs per axis; ``output_padding`` adds rows at the
    end of each axis.  See the module docstring for the algorithm.  ``packed``: the weights
    from :func:`pack_col2im` (made once by a caller that runs the layer repeatedly; the
    channels-last col2im path otherwise packs them on every call).
    """
    xa = as_float_array(x)
    wa = as_float_array(w, xa.dtype)
    plan = plan_conv_transpose(xa.shape, wa.shape, stride, padding, output_padding, dilation, groups, xa.dtype, algorithm=algorithm)
    ba = None if b is None else as_float_array(b, xa.dtype)
    if ba is not None and ba.shape != (plan.out_shape[1],):
        raise ValueError(f"bias must have shape ({plan.out_shape[1]},), got {ba.shape}")
    return run_transpose_plan(plan, xa, wa, ba, packed, output_array(out, plan.out_shape, xa.dtype))


def run_transpose_plan(
    plan: ConvTransposePlan,
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None,
    packed: FloatArray | None,
    y: FloatArray | None = None,
    epilogue: Epilogue | None = None,
) -> FloatArray:
    """Run ``plan`` on arrays that match it (no checks: :func:`conv_transpose` validates; a caller
    that planned once from shapes, as ``convcalc run`` does, skips re-planning per call);
    ``epilogue`` (an element-wise stage, in place) follows the bias on each block of samples
    once all of its outputs are summed."""
    if y is None:
        y = np.empty((x.shape[0], *plan.out_shape[1:]), x.dtype)
    if plan.col2im is not None:  # every output is written: no fill
        ranges = parallel.whole(x.shape[0]) if plan.macs >= PARALLEL_MIN_MACS else [(0, x.shape[0])]
        tasks = [partial(_col2im, plan, x[lo:hi], w, packed, y[lo:hi], b, epilogue) for lo, hi in ranges]
        if len(tasks) > 1:
            parallel.run_blas_single(tasks)
        else:
            tasks[0]()
        if recording():
            record(KernelRecord("conv_transpose", plan.path, plan.macs, plan.executed_macs, plan.workspace_bytes))
        return y
    with reserve(plan.workspace_bytes) as ws:
        wconv = _conv_layout(w, plan.groups, ws)
        for n0 in range(0, x.shape[0], plan.batch_block):
            n1 = min(x.shape[0], n0 + plan.batch_block)
            for group in plan.phase_groups:
                targets: list[FloatArray] = []
                for ph in group.phases:
                    index = (slice(n0, n1), slice(None), *ph.out)
                    targets.append(y[index])
                with ws.scope():
                    _run_group(group, x[n0:n1], wconv, targets, ws)
            finish_block(y[n0:n1], b, epilogue)
    if recording():
        record(KernelRecord("conv_transpose", plan.path, plan.macs, plan.executed_macs, plan.workspace_bytes))
    return y
