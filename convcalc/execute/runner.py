"""Run evaluated stages (a layer's or a network's) on seeded random tensors: prove the shapes,
time each stage and one end-to-end forward pass.

Plan, then allocate, then run: every stage's binding (:mod:`convcalc.execute.registry`) plans
it from shapes alone; :func:`convcalc.execute.memory.estimate` bounds the run's peak from
those plans and a run above ``Config.max_memory`` is refused with a
:class:`~convcalc.errors.LimitError` (exit 2) before one weight or input is made. Then the
weights are made, directly in the run's dtype, each stage is timed on its own
(:mod:`convcalc.execute.timing`), and finally the whole graph is timed as one forward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from convcalc.engine import StageResult
from convcalc.errors import LimitError
from convcalc.execute import fuse, memory, parallel, registry, timing
from convcalc.execute.peak import threads_limit
from convcalc.execute.registry import Array, Check, Context, Kernel, Plan, Shape, Weight


@dataclass(frozen=True)
class Config:
    """How to run: batch, dtype, seed; ``repeats`` timed calls per stage (``None``: adaptive,
    within ``budget_s`` seconds per stage) after ``warmup`` untimed ones; BLAS threads; checks;
    the memory budget in bytes; whether to time one end-to-end forward pass after the stages
    and whether that pass fuses (:mod:`convcalc.execute.fuse`)."""

    batch: int = 1
    dtype: str = "float32"
    seed: int = 0
    repeats: int | None = None
    warmup: int = 1
    threads: int | None = None
    verify: bool = False
    max_memory: int | None = None
    budget_s: float = 0.1
    end_to_end: bool = True
    fuse: bool = True


@dataclass
class StageRun:
    """Measured result of one stage."""

    name: str
    op: str
    predicted: Shape
    executed: tuple[int, ...]
    timing: timing.Measurement
    macs: int
    workspace_bytes: int
    check: Check | None = None

    @property
    def shape_ok(self) -> bool:
        return self.executed == self.predicted


@dataclass
class RunOutcome:
    """All stage runs of one layer or network, in order, the memory plan and the end-to-end pass."""

    memory: memory.MemoryPlan
    stages: list[StageRun] = field(default_factory=list)
    end_to_end: timing.Measurement | None = None
    fused: tuple[int, int, int] | None = None
    """Batch norms folded, steps run in place and activations run as convolution epilogues by
    the end-to-end pass (None: not fused)."""


def make_weights(weights: Sequence[Weight], dtype: np.dtype[Any], rng: np.random.Generator) -> tuple[Array, ...]:
    """Each :class:`Weight` as ``offset + scale · N(0, 1)``, drawn directly in ``dtype`` (no
    float64 intermediate) and scaled in place."""
    made = []
    for weight in weights:
        if weight.scale == 0:
            made.append(np.full(weight.shape, weight.offset, dtype))
            continue
        values = rng.standard_normal(weight.shape, dtype=dtype)
        if weight.scale != 1:
            values *= dtype.type(weight.scale)
        if weight.offset:
            values += dtype.type(weight.offset)
        made.append(values)
    return tuple(made)


class StagePlans(NamedTuple):
    """Every stage's plan, the steps of the end-to-end pass and the memory estimate."""

    plans: list[Plan]
    steps: list[fuse.FusedStep]
    memory: memory.MemoryPlan


def plan_stages(stages: Sequence[StageResult], source: tuple[str, Shape], cfg: Config) -> StagePlans:
    """Every stage's plan, the steps of the end-to-end pass and the run's memory estimate
    (nothing allocated)."""
    missing = sorted({s.op.op for s in stages} - registry.bound_ops())
    if missing:
        raise LimitError(f"the executor has no kernel for {', '.join(missing)}.")
    dtype = np.dtype(cfg.dtype)
    plans = []
    for stage in stages:
        ctx = Context(
            tuple((cfg.batch, *s) for s in stage.input_shapes), (cfg.batch, *stage.output), dtype, cfg.verify
        )
        plans.append(registry.binding(stage.op.op)(stage.op, ctx))
    names, inputs = [s.name for s in stages], [s.inputs for s in stages]
    steps = (
        fuse.plan_fusion(names, inputs, plans)
        if cfg.fuse
        else [fuse.FusedStep(i, s.inputs, s.name) for i, s in enumerate(stages)]
    )
    estimate = memory.estimate(
        [s.name for s in stages],
        [s.inputs for s in stages],
        [(cfg.batch, *s.output) for s in stages],
        plans,
        (source[0], (cfg.batch, *source[1])),
        dtype,
        cfg.threads or 1,
        fuse.folded_bytes(steps, plans, [s.output[0] for s in stages], dtype),
    )
    return StagePlans(plans, steps, estimate)


def _forward(steps: Sequence[fuse.FusedStep], kernels: Sequence[Kernel], source: tuple[str, Array]) -> Callable[[], Array]:
    """One pass over the (fused) graph returning its output, each tensor dropped after its
    last reader.

    With several threads (:mod:`convcalc.execute.parallel`) and at least two samples, the batch
    is split among the threads and each runs the whole graph on its samples with a one-thread
    BLAS (the kernels take fewer samples than they were planned for), the outputs joined at the
    end: a few long streams of NumPy calls instead of one split and join per layer, whose many
    short calls from two threads hand the GIL back and forth (batch 8, two threads, interleaved
    against the per-layer split: MobileNetV2 1.11-1.15x, ResNet-50 1.12x faster; against one
    thread: 1.5-1.6x and 1.65x). The parts' activations add up to the whole batch's and each thread uses its own workspace, as the memory
    estimate counts."""
    calls = [fuse.fused_step(step, kernels) for step in steps]
    last = memory.last_use([s.inputs for s in steps])

    def one(x: Array) -> Array:
        tensors = {source[0]: x}
        for index, (call, step) in enumerate(zip(calls, steps, strict=True)):
            tensors[step.output] = call([tensors[name] for name in step.inputs])
            for name in [n for n in tensors if last.get(n, -1) <= index and n != step.output]:
                del tensors[name]
        return tensors[steps[-1].output]

    def run() -> Array:
        x = source[1]
        ranges = parallel.whole(x.shape[0])
        if len(ranges) <= 1:
            return one(x)
        outputs: list[Array] = [x] * len(ranges)

        def part(index: int, lo: int, hi: int) -> None:
            outputs[index] = one(x[lo:hi])

        parallel.run_blas_single([functools.partial(part, i, lo, hi) for i, (lo, hi) in enumerate(ranges)])
        return np.concatenate(outputs, axis=0)

    return run


@dataclass(frozen=True)
class Prepared:
    """A graph ready to run: its plans and memory estimate, built kernels and the seeded input."""

    plans: list[Plan]
    memory: memory.MemoryPlan
    kernels: list[Kernel]
    x: Array
    output: Callable[[], Array]
    """One end-to-end pass over the (fused) graph, returning the network's output."""
    steps: list[fuse.FusedStep]

    def forward(self) -> None:
        """One end-to-end pass, its result dropped (so a timed pass never overlaps the last one's output)."""
        self.output()


def prepare(stages: Sequence[StageResult], source: tuple[str, Shape], cfg: Config) -> Prepared:
    """Plan, check the memory budget (a :class:`LimitError` before anything is allocated), then
    make the seeded input and weights and build every stage's kernel."""
    plans, steps, estimate = plan_stages(stages, source, cfg)
    if cfg.max_memory is not None:
        memory.refuse_above(estimate, cfg.max_memory, "--max-memory")
    dtype = np.dtype(cfg.dtype)
    x = np.random.default_rng(cfg.seed).standard_normal((cfg.batch, *source[1]), dtype=dtype)
    kernels = [
        plan.build(make_weights(plan.weights, dtype, np.random.default_rng((cfg.seed, index))))
        for index, plan in enumerate(plans)
    ]
    return Prepared(plans, estimate, kernels, x, _forward(steps, kernels, (source[0], x)), steps)


def run_stages(
    stages: Sequence[StageResult],
    source: tuple[str, Shape],
    cfg: Config,
    progress: Callable[[StageRun], None] | None = None,
) -> RunOutcome:
    """Execute ``stages`` (a graph reading ``source``) on seeded random data; see module docstring."""
    ready = prepare(stages, source, cfg)
    outcome = RunOutcome(ready.memory, fused=fuse.summary(ready.steps) if cfg.fuse else None)
    last = memory.last_use([s.inputs for s in stages])
    tensors: dict[str, Array] = {source[0]: ready.x}
    with threads_limit(cfg.threads), parallel.using(cfg.threads):
        for index, (stage, plan, kernel) in enumerate(zip(stages, ready.plans, ready.kernels, strict=True)):
            inputs = [tensors[name] for name in stage.inputs]
            out, measured = timing.measure(
                functools.partial(kernel.step, inputs), repeats=cfg.repeats, warmup=cfg.warmup, budget_s=cfg.budget_s
            )
            check = kernel.reference(inputs, out) if cfg.verify and kernel.reference else None
            run = StageRun(
                stage.name,
                stage.op.op,
                (cfg.batch, *stage.output),
                tuple(out.shape),
                measured,
                cfg.batch * stage.stats.macs,
                plan.workspace_bytes,
                check,
            )
            outcome.stages.append(run)
            if progress is not None:
                progress(run)
            tensors[stage.name] = out
            del out, inputs  # the last stage's inputs would outlive the loop into the end-to-end pass
            for name in [n for n in tensors if last.get(n, -1) <= index and n != stage.name]:
                del tensors[name]
        tensors.clear()
        if not cfg.end_to_end:
            return outcome
        budget = max(cfg.budget_s, 5 * sum(r.timing.median for r in outcome.stages))
        _, outcome.end_to_end = timing.measure(ready.forward, repeats=cfg.repeats, warmup=0, budget_s=min(budget, 10 * cfg.budget_s))
    return outcome

