"""Run evaluated layers and networks on seeded random tensors: prove shapes, time the CPU.

The runner executes *primitives* (the stages the arithmetic engine produced), never named
kinds: every ``op`` name of :mod:`convcalc.ops` and :mod:`convcalc.netops` has one kernel
factory in :data:`FACTORIES` (a meta-test checks none is missing). A factory makes the stage's
seeded random weights and returns a :class:`Prepared` step: the callable to time, the bytes
of its weights and workspace, and (for conv, transposed conv and linear) a slow direct-loop
reference on a small crop of the output for ``--verify``.

Before anything runs, :func:`estimate_memory` bounds the peak: the live activations at each
stage (a tensor lives until its last reader has run), that stage's weights and its workspace.
A plan above ``max_memory`` is refused with a :class:`~convcalc.errors.LimitError`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from convcalc.engine import StageResult
from convcalc.errors import LimitError
from convcalc.execute import kernels as K
from convcalc.execute.peak import threads_limit
from convcalc.primitives.base import Op, Shape, numel

Array = NDArray[Any]
Step = Callable[[Sequence[Array]], Array]
Reference = Callable[[Sequence[Array], Array], "Check"]


@dataclass(frozen=True)
class Config:
    """How to run: batch, dtype, seed, repeats and warm-up runs, BLAS threads, checks."""

    batch: int = 1
    dtype: str = "float32"
    seed: int = 0
    repeats: int = 5
    warmup: int = 1
    threads: int | None = None
    verify: bool = False
    max_memory: int | None = None


@dataclass(frozen=True)
class Check:
    """A numerics check of a small output crop against a direct-loop reference."""

    max_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance


@dataclass
class Prepared:
    """One stage ready to run."""

    step: Step
    weight_bytes: int = 0
    workspace_bytes: int = 0
    reference: Reference | None = None


Factory = Callable[[Any, tuple[Shape, ...], Config, np.random.Generator], Prepared]
FACTORIES: dict[str, Factory] = {}


def factory(*ops: str) -> Callable[[Factory], Factory]:
    """Register the kernel factory of one or more primitive names (duplicates are refused)."""

    def register(fn: Factory) -> Factory:
        for name in ops:
            if name in FACTORIES:
                raise ValueError(f"kernel for {name!r} registered twice")
            FACTORIES[name] = fn
        return fn

    return register


def _random(rng: np.random.Generator, shape: Sequence[int], dtype: str, scale: float = 1.0) -> Array:
    return (rng.standard_normal(tuple(shape)) * scale).astype(dtype)


def _fan_in_scale(fan_in: int) -> float:
    """He-style scaling keeps activations O(1) through deep random networks."""
    return math.sqrt(2.0 / max(fan_in, 1))


def _tolerance(x: Array, w: Array, reduction: int, dtype: str) -> float:
    """Stated tolerance: ``eps · sqrt(reduction) · max|x| · max|w| · 8`` (float32 eps 1.2e-7)."""
    eps = float(np.finfo(dtype).eps)
    return 8 * eps * math.sqrt(max(reduction, 1)) * float(np.abs(x).max() or 1) * float(np.abs(w).max() or 1)


def _crop(sizes: Sequence[int], per_axis: int = 3) -> list[tuple[int, ...]]:
    """First, middle and last position per axis (their product): a small crop of the output."""
    picks = [sorted({0, size // 2, size - 1})[:per_axis] for size in sizes]
    out: list[tuple[int, ...]] = [()]
    for axis in picks:
        out = [(*prefix, i) for prefix in out for i in axis]
    return out


# ----------------------------------------------------------------------------------------------
# Convolutions
# ----------------------------------------------------------------------------------------------


@factory("conv")
def _conv(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    c_in_g = op.in_channels // op.groups
    w = _random(rng, (op.out_channels, c_in_g, *op.kernel_size), cfg.dtype, _fan_in_scale(c_in_g * numel(op.kernel_size)))
    b = _random(rng, (op.out_channels,), cfg.dtype, 0.1) if op.bias else None
    x_shape = (cfg.batch, *shapes[0])
    plan = K.plan_conv(x_shape, w.shape, op.stride, op.padding, op.dilation, op.groups, cfg.dtype)

    def step(xs: Sequence[Array]) -> Array:
        return K.conv(xs[0], w, b, op.stride, op.padding, op.dilation, op.groups)

    def reference(xs: Sequence[Array], y: Array) -> Check:
        """``y[n,o,p] = b[o] + Σ_{c,t} w[o,c,t]·x_pad[n, g(o)·C_in/g + c, p·s + t·d]`` at a crop of p."""
        x = xs[0]
        pads = [(0, 0), (0, 0), *op.padding]
        xp = np.pad(x.astype(np.float64), pads)
        c_out_g = op.out_channels // op.groups
        worst = 0.0
        for pos in _crop(y.shape[2:]):
            index = tuple(
                slice(p * s, p * s + d * (k - 1) + 1, d)
                for p, s, d, k in zip(pos, op.stride, op.dilation, op.kernel_size, strict=True)
            )
            for o in sorted({0, op.out_channels // 2, op.out_channels - 1}):
                g = o // c_out_g
                window_key: tuple[Any, ...] = (slice(None), slice(g * c_in_g, (g + 1) * c_in_g), *index)
                want = np.tensordot(xp[window_key], w[o].astype(np.float64), axes=w[o].ndim) + (0 if b is None else b[o])
                out_key: tuple[Any, ...] = (slice(None), o, *pos)
                worst = max(worst, float(np.abs(y[out_key] - want).max()))
        return Check(worst, _tolerance(x, w, c_in_g * numel(op.kernel_size), cfg.dtype))

    return Prepared(step, w.nbytes + (0 if b is None else b.nbytes), plan.workspace_bytes, reference)


@factory("conv_transpose")
def _conv_transpose(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    c_out_g = op.out_channels // op.groups
    w = _random(rng, (op.in_channels, c_out_g, *op.kernel_size), cfg.dtype, _fan_in_scale(op.in_channels // op.groups))
    b = _random(rng, (op.out_channels,), cfg.dtype, 0.1) if op.bias else None
    x_shape = (cfg.batch, *shapes[0])
    plan = K.plan_conv_transpose(x_shape, w.shape, op.stride, op.padding, op.output_padding, op.dilation, op.groups, cfg.dtype)

    def step(xs: Sequence[Array]) -> Array:
        return K.conv_transpose(xs[0], w, b, op.stride, op.padding, op.output_padding, op.dilation, op.groups)

    def reference(xs: Sequence[Array], y: Array) -> Check:
        """``y[o] = b + Σ x[i]·w[t]`` over taps with ``i·s + t·d - p_before = o`` (definition)."""
        x = xs[0].astype(np.float64)
        c_in_g = op.in_channels // op.groups
        worst = 0.0
        for pos in _crop(y.shape[2:]):
            want = np.zeros((y.shape[0], op.out_channels))
            for taps in np.ndindex(*op.kernel_size):
                src = []
                for o, t, s, d, (before, _), size in zip(pos, taps, op.stride, op.dilation, op.padding, x.shape[2:], strict=True):
                    offset = o + before - t * d
                    if offset % s or not 0 <= offset // s < size:
                        break
                    src.append(offset // s)
                else:
                    for g in range(op.groups):
                        x_key: tuple[Any, ...] = (slice(None), slice(g * c_in_g, (g + 1) * c_in_g), *src)
                        w_key: tuple[Any, ...] = (slice(g * c_in_g, (g + 1) * c_in_g), slice(None), *taps)
                        xi, wt = x[x_key], w[w_key].astype(np.float64)
                        want[:, g * c_out_g : (g + 1) * c_out_g] += xi @ wt
            if b is not None:
                want += b
            y_key: tuple[Any, ...] = (slice(None), slice(None), *pos)
            worst = max(worst, float(np.abs(y[y_key] - want).max()))
        reduction = c_in_g * math.prod(-(-k // s) for k, s in zip(op.kernel_size, op.stride, strict=True))
        return Check(worst, _tolerance(xs[0], w, reduction, cfg.dtype))

    return Prepared(step, w.nbytes + (0 if b is None else b.nbytes), plan.workspace_bytes, reference)


@factory("deform_sample")
def _deform_sample(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    """Bilinear sampling into the ``(C, k_h·H_out, k_w·W_out)`` layout of :class:`convcalc.ops.DeformSample`."""

    def step(xs: Sequence[Array]) -> Array:
        return deform_sample(xs[0], xs[1], op)

    return Prepared(step)


def deform_sample(x: Array, offsets: Array, op: Any) -> Array:
    """Sample ``x`` at every tap moved by its learned (dy, dx) offset (torchvision's rule: a
    sample is 0 outside ``(-1, H) x (-1, W)``, neighbours outside the image count as 0), times
    the sigmoid of the v2 mask; tap ``(i, j)`` of output ``(h, w)`` lands at
    ``(h·k_h + i, w·k_w + j)``."""
    n, c, height, width = x.shape
    kh, kw = op.kernel_size
    taps = kh * kw
    groups = op.offset_groups
    ho, wo = offsets.shape[2:]
    off = offsets[:, : 2 * groups * taps].reshape(n, groups, taps, 2, ho, wo)
    ti, tj = np.divmod(np.arange(taps), kw)
    base_h = (np.arange(ho) * op.stride[0] - op.padding[0][0])[None, :, None] + (ti * op.dilation[0])[:, None, None]
    base_w = (np.arange(wo) * op.stride[1] - op.padding[1][0])[None, None, :] + (tj * op.dilation[1])[:, None, None]
    hs = base_h + off[:, :, :, 0]
    ws = base_w + off[:, :, :, 1]
    h0, w0 = np.floor(hs), np.floor(ws)
    lh, lw = hs - h0, ws - w0
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    r0 = np.clip(h0, -1, height).astype(np.intp) + 1
    c0 = np.clip(w0, -1, width).astype(np.intp) + 1
    r1, c1 = np.minimum(r0 + 1, height + 1), np.minimum(c0 + 1, width + 1)
    inside = ((hs > -1) & (hs < height) & (ws > -1) & (ws < width)).astype(x.dtype)
    if op.modulated:
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


# ----------------------------------------------------------------------------------------------
# Merges and re-arrangements
# ----------------------------------------------------------------------------------------------


def _simple(fn: Callable[[Any, Sequence[Array]], Array]) -> Factory:
    def make(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
        return Prepared(lambda xs: fn(op, xs))

    return make


factory("add")(_simple(lambda op, xs: sum(xs[1:], xs[0].copy())))
factory("concat")(_simple(lambda op, xs: np.concatenate(xs, axis=1)))
factory("multiply")(_simple(lambda op, xs: math.prod(xs[1:], start=xs[0])))
factory("channel_shuffle")(_simple(lambda op, xs: K.channel_shuffle(xs[0], op.groups)))
factory("identity")(_simple(lambda op, xs: xs[0]))
factory("flatten")(_simple(lambda op, xs: xs[0].reshape(xs[0].shape[0], -1) if op.end_dim == -1 else _flatten(op, xs[0])))
factory("channel_slice")(_simple(lambda op, xs: xs[0][:, op.start : op.stop]))
factory("pad")(_simple(lambda op, xs: K.zero_pad(xs[0], op.padding)))
factory("pixel_shuffle")(
    _simple(lambda op, xs: K.pixel_unshuffle(xs[0], op.factor) if op.inverse else K.pixel_shuffle(xs[0], op.factor))
)


def _flatten(op: Any, x: Array) -> Array:
    """``torch.flatten(x, start_dim, end_dim)`` on the per-sample axes (1-based in the batch)."""
    start = op.start_dim if op.start_dim >= 0 else x.ndim + op.start_dim
    end = op.end_dim if op.end_dim >= 0 else x.ndim + op.end_dim
    return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])


# ----------------------------------------------------------------------------------------------
# Pooling, normalisation, activations, linear, resampling
# ----------------------------------------------------------------------------------------------


@factory("pool")
def _pool(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    if op.mode == "max":
        return Prepared(lambda xs: K.max_pool(xs[0], op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode))
    return Prepared(lambda xs: K.avg_pool(xs[0], op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad))


@factory("adaptive_pool")
def _adaptive_pool(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    sizes = tuple(size if size is not None else i for size, i in zip(op.output_size, shapes[0][1:], strict=True))
    pool = K.adaptive_max_pool if op.mode == "max" else K.adaptive_avg_pool

    def step(xs: Sequence[Array]) -> Array:
        y = pool(xs[0], sizes)
        return y if op.keepdims else y.reshape(y.shape[:2])

    return Prepared(step)


@factory("norm")
def _norm(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    channels = shapes[0][0]
    width = numel(op.normalized_shape) if op.normalized_shape is not None else channels
    weight = _random(rng, (width,), cfg.dtype, 0.1) + 1 if op.affine else None
    bias = _random(rng, (width,), cfg.dtype, 0.1) if op.affine and op.bias else None
    mean, var = np.zeros(channels, cfg.dtype), np.ones(channels, cfg.dtype)

    def step(xs: Sequence[Array]) -> Array:
        x = xs[0]
        if op.style == "batch":
            return K.batch_norm(x, mean, var, weight, bias)
        if op.style in ("group", "instance"):
            return K.group_norm(x, op.groups if op.style == "group" else channels, weight, bias)
        if op.normalized_shape is not None:
            normalized = K.layer_norm(x, op.normalized_shape, None, None)
            return _affine_trailing(normalized, weight, bias, op.normalized_shape)
        moved = np.moveaxis(x, 1, -1)
        return np.moveaxis(K.layer_norm(moved, (channels,), weight, bias), -1, 1)

    return Prepared(step, 2 * width * np.dtype(cfg.dtype).itemsize if op.affine else 0)


def _affine_trailing(x: Array, weight: Array | None, bias: Array | None, shape: Sequence[int]) -> Array:
    if weight is not None:
        x = x * weight.reshape(tuple(shape))
    if bias is not None:
        x = x + bias.reshape(tuple(shape))
    return x


def _prelu(x: Array, slope: Array) -> Array:
    shaped = slope.reshape((1, -1) + (1,) * (x.ndim - 2)) if slope.size > 1 else slope
    return np.where(x >= 0, x, x * shaped)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": K.relu,
    "relu6": K.relu6,
    "leaky_relu": K.leaky_relu,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": K.gelu,
    "silu": K.silu,
    "mish": lambda x: x * np.tanh(np.logaddexp(0, x)),
    "hardswish": K.hardswish,
    "hardsigmoid": K.hardsigmoid,
    "sigmoid": K.sigmoid,
    "tanh": K.tanh,
    "softmax": lambda x: K.softmax(x, axis=1),
    "log_softmax": lambda x: np.log(K.softmax(x, axis=1)),
}


@factory("activation")
def _activation(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    if op.fn == "prelu":
        slope = np.full(max(op.num_parameters, 1), 0.25, cfg.dtype)
        return Prepared(lambda xs: _prelu(xs[0], slope), slope.nbytes)
    return Prepared(lambda xs: ACTIVATIONS[op.fn](xs[0]))


@factory("linear")
def _linear(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    w = _random(rng, (op.out_features, op.in_features), cfg.dtype, _fan_in_scale(op.in_features))
    b = _random(rng, (op.out_features,), cfg.dtype, 0.1) if op.bias else None

    def step(xs: Sequence[Array]) -> Array:
        return np.moveaxis(K.linear(np.moveaxis(xs[0], 1, -1), w, b), -1, 1)

    def reference(xs: Sequence[Array], y: Array) -> Check:
        """``y[n, o, p] = b[o] + Σ_c w[o, c]·x[n, c, p]`` for a few outputs o."""
        x = xs[0].astype(np.float64)
        worst = 0.0
        for o in sorted({0, op.out_features // 2, op.out_features - 1}):
            want = np.tensordot(w[o].astype(np.float64), x, axes=([0], [1])) + (0 if b is None else b[o])
            worst = max(worst, float(np.abs(y[:, o] - want).max()))
        return Check(worst, _tolerance(xs[0], w, op.in_features, cfg.dtype))

    return Prepared(step, w.nbytes + (0 if b is None else b.nbytes), 0, reference)


@factory("embedding")
def _embedding(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    table = _random(rng, (op.num_embeddings, op.embedding_dim), cfg.dtype)

    def step(xs: Sequence[Array]) -> Array:
        ids = (np.abs(xs[0][:, 0]) * op.num_embeddings).astype(np.intp) % op.num_embeddings
        return np.moveaxis(table[ids], -1, 1)

    return Prepared(step, table.nbytes)


@factory("upsample")
def _upsample(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    size = tuple(op._out(shapes[0][1:]))  # the engine's own output sizes
    if op.mode == "nearest":
        return Prepared(lambda xs: K.upsample_nearest(xs[0], size=size))
    return Prepared(lambda xs: K.upsample_linear(xs[0], size=size, align_corners=op.align_corners))


@factory("lrn")
def _lrn(op: Any, shapes: tuple[Shape, ...], cfg: Config, rng: np.random.Generator) -> Prepared:
    def step(xs: Sequence[Array]) -> Array:
        """PyTorch ``local_response_norm``: ``x / (k + α/n · Σ_window x²)^β`` over channels."""
        x = xs[0]
        squares = np.pad(x * x, [(0, 0), (op.size // 2, (op.size - 1) // 2)] + [(0, 0)] * (x.ndim - 2))
        csum = np.cumsum(squares, axis=1)
        csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
        window = csum[:, op.size :] - csum[:, : -op.size]
        result: Array = x / (op.k + op.alpha / op.size * window) ** op.beta
        return result

    return Prepared(step)


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


@dataclass
class StageRun:
    """Measured result of one stage."""

    name: str
    op: str
    predicted: Shape
    executed: tuple[int, ...]
    times: list[float]
    macs: int
    workspace_bytes: int
    check: Check | None = None

    @property
    def shape_ok(self) -> bool:
        return self.executed == self.predicted


@dataclass
class MemoryPlan:
    """Estimated peak bytes and the stage where it occurs."""

    peak_bytes: int
    stage: str


@dataclass
class RunOutcome:
    """All stage runs of one layer or network, in order."""

    stages: list[StageRun] = field(default_factory=list)
    memory: MemoryPlan | None = None


def _last_use(stages: Sequence[StageResult]) -> dict[str, int]:
    last: dict[str, int] = {}
    for index, stage in enumerate(stages):
        for name in stage.inputs:
            last[name] = index
    return last


def _bytes(shape: Shape, cfg: Config) -> int:
    return cfg.batch * numel(shape) * np.dtype(cfg.dtype).itemsize


def estimate_memory(
    stages: Sequence[StageResult], source: tuple[str, Shape], cfg: Config, plan: Callable[[int], Prepared]
) -> MemoryPlan:
    """Peak of live activations + the running stage's weights and workspace (module docstring)."""
    last = _last_use(stages)
    live = {source[0]: _bytes(source[1], cfg)}
    peak = MemoryPlan(0, "")
    for index, stage in enumerate(stages):
        prepared = plan(index)
        live[stage.name] = _bytes(stage.output, cfg)
        total = sum(live.values()) + prepared.weight_bytes + prepared.workspace_bytes
        if total > peak.peak_bytes:
            peak = MemoryPlan(total, stage.name)
        for name in [n for n in live if last.get(n, -1) <= index and n != stage.name]:
            del live[name]
    return peak


def _time(step: Step, inputs: Sequence[Array], cfg: Config) -> tuple[Array, list[float]]:
    """``warmup`` untimed calls, then ``repeats`` (at least one) timed calls; the last output."""
    for _ in range(cfg.warmup):
        step(inputs)
    start = time.perf_counter()
    out = step(inputs)
    times = [time.perf_counter() - start]
    for _ in range(cfg.repeats - 1):
        start = time.perf_counter()
        out = step(inputs)
        times.append(time.perf_counter() - start)
    return out, times


def run_stages(
    stages: Sequence[StageResult],
    source: tuple[str, Shape],
    cfg: Config,
    progress: Callable[[StageRun], None] | None = None,
) -> RunOutcome:
    """Execute ``stages`` (a graph reading ``source``) on seeded random data; see module docstring."""
    missing = sorted({s.op.op for s in stages} - set(FACTORIES))
    if missing:
        raise LimitError(f"the executor has no kernel for {', '.join(missing)}.")

    def prepare(index: int) -> Prepared:
        stage = stages[index]
        rng = np.random.default_rng((cfg.seed, index))
        return FACTORIES[stage.op.op](stage.op, stage.input_shapes, cfg, rng)

    memory = estimate_memory(stages, source, cfg, prepare)
    if cfg.max_memory is not None and memory.peak_bytes > cfg.max_memory:
        raise LimitError(
            f"running this needs about {memory.peak_bytes / 2**20:,.1f} MiB (peak at '{memory.stage}'),"
            f" more than --max-memory {cfg.max_memory / 2**20:,.1f} MiB.",
            hint="Lower --batch or the input size, or raise --max-memory.",
        )
    outcome = RunOutcome(memory=memory)
    last = _last_use(stages)
    rng = np.random.default_rng(cfg.seed)
    tensors: dict[str, Array] = {source[0]: _random(rng, (cfg.batch, *source[1]), cfg.dtype)}
    with threads_limit(cfg.threads):
        for index, stage in enumerate(stages):
            prepared = prepare(index)
            inputs = [tensors[name] for name in stage.inputs]
            out, times = _time(prepared.step, inputs, cfg)
            check = prepared.reference(inputs, out) if cfg.verify and prepared.reference else None
            run = StageRun(
                stage.name,
                stage.op.op,
                (cfg.batch, *stage.output),
                tuple(out.shape),
                times,
                cfg.batch * stage.stats.macs,
                prepared.workspace_bytes,
                check,
            )
            outcome.stages.append(run)
            if progress is not None:
                progress(run)
            tensors[stage.name] = out
            for name in [n for n in tensors if last.get(n, -1) <= index and n != stage.name]:
                del tensors[name]
    return outcome


def median(times: Iterable[float]) -> float:
    """Median of the measured times (0 when none)."""
    values = list(times)
    return statistics.median(values) if values else 0.0


def kernel_ops() -> set[str]:
    """Primitive names that have a kernel (for the meta-test)."""
    return set(FACTORIES)


def missing_kernels(ops: Iterable[Op]) -> set[str]:
    """Primitive names among ``ops`` without a kernel."""
    return {op.op for op in ops} - set(FACTORIES)
