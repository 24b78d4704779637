"""Evaluate graphs of primitives: shapes, costs and receptive fields, stage by stage.

A layer is expanded by its kind into a small graph (:class:`convcalc.primitives.base.Stage` nodes whose
``inputs`` name earlier nodes or ``"in"``); a network is the same thing at a larger scale.
:func:`walk` is the one place where shapes and receptive fields are propagated.
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, cast

from convcalc import rf
from convcalc.errors import ConvcalcError, ShapeError
from convcalc.kinds import lookup
from convcalc.kinds.base import rank_mismatch
from convcalc.parse.layer import LayerSpec
from convcalc.primitives.base import Op, OpStats, Shape, Stage


class Tensor(NamedTuple):
    """A named tensor of the graph: its shape and the local receptive field of its units (None:
    unknown, or no local path); ``context``: a path through a global reduction reaches them;
    ``local``: a spatially local path does (False: they see global context only), :mod:`convcalc.rf`."""

    shape: Shape
    field: rf.Field | None
    context: bool = False
    local: bool = True


class StageResult(NamedTuple):
    """One evaluated node."""

    name: str
    label: str
    op: Op
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    stats: OpStats
    field: rf.Field | None
    aligned: bool = True
    context: bool = False
    local: bool = True

    @property
    def output(self) -> Shape:
        return self.stats.output

    @property
    def tensor(self) -> Tensor:
        return Tensor(self.output, self.field, self.context, self.local)


class Reach(NamedTuple):
    """What the units of a stage's output see: :class:`Tensor`'s field, alignment, context, local."""

    field: rf.Field | None
    aligned: bool = True
    context: bool = False
    local: bool = True


def reach(op: Op, stats: OpStats, sources: Sequence[Tensor]) -> Reach:
    """The field of a stage's output from its inputs (:mod:`convcalc.rf`): a global reduction
    leaves global context only; otherwise the field follows the inputs a local path reaches
    (a merge takes theirs, :func:`convcalc.rf.merge`) and the context mark is passed on."""
    if stats.global_reduction:
        return Reach(None, context=True, local=False)
    context = any(t.context for t in sources)
    local = [t for t in sources if t.local]
    if not local:
        return Reach(None, context=context, local=False)
    fields = [t.field for t in local]
    if any(f is None for f in fields):
        return Reach(None, context=context)
    known = [f for f in fields if f is not None]
    if op.merge:
        merged, aligned = rf.merge(known)
        return Reach(merged, aligned, context)
    if stats.rf is None:
        return Reach(None, context=context)
    return Reach(rf.apply(known[0], stats.rf), True, context)


def _analyse_op(op: Op, shapes: tuple[Shape, ...]) -> OpStats:
    return op.analyse(shapes)


_analyse = cast(Callable[[Op, tuple[Shape, ...]], OpStats], functools.lru_cache(maxsize=8192)(_analyse_op))
"""``op.analyse`` memoised: ops are frozen values, OpStats immutable, and a network applies the same
op to the same shapes many times (repeated blocks). Merges are not memoised: their error messages
name their inputs."""


def evaluate(stage: Stage, tensors: Mapping[str, Tensor]) -> StageResult:
    """Evaluate one node given the tensors it reads."""
    sources = [tensors[name] for name in stage.inputs]
    shapes = tuple(t.shape for t in sources)
    stats = stage.op.analyse(shapes, stage.inputs) if stage.op.merge else _analyse(stage.op, shapes)
    return StageResult(stage.name, stage.label or stage.op.describe(), stage.op, stage.inputs, shapes, stats, *reach(stage.op, stats, sources))


def walk(stages: Sequence[Stage], sources: Mapping[str, Tensor]) -> list[StageResult]:
    """Evaluate ``stages`` in order; each may read ``sources`` or any earlier stage."""
    tensors = dict(sources)
    results = []
    for stage in stages:
        result = evaluate(stage, tensors)
        tensors[stage.name] = result.tensor
        results.append(result)
    return results


def expand(spec: LayerSpec, shape: Shape) -> tuple[tuple[Stage, ...], tuple[str, ...]]:
    """A layer's primitive stages for an input of ``shape`` (checks the input's rank)."""
    kind = lookup(spec.kind)
    rank = len(shape) - 1
    if kind.rank is not None and kind.rank != rank:
        raise rank_mismatch(kind, shape)
    if rank < kind.min_rank:
        raise ShapeError(f"{kind.name} needs at least {kind.min_rank} spatial axis, got the shape {shape}.")
    built = kind.build(spec.params(rank), shape)
    return built.stages, built.notes


class LayerResult(NamedTuple):
    """A layer evaluated on one input: its stages (one for simple types) and notes."""

    spec: LayerSpec
    input_shape: Shape
    stages: tuple[StageResult, ...]
    notes: tuple[str, ...]

    @property
    def output_shape(self) -> Shape:
        return self.stages[-1].output

    @property
    def field(self) -> rf.Field | None:
        return self.stages[-1].field

    @property
    def aligned(self) -> bool:
        return all(s.aligned for s in self.stages)


def evaluate_layer(spec: LayerSpec, shape: Shape) -> LayerResult:
    """Evaluate one layer on ``shape``; the receptive field is relative to the layer's input."""
    try:
        stages, notes = expand(spec, shape)
        results = walk(stages, {"in": Tensor(shape, rf.identity_field(len(shape) - 1))})
    except ConvcalcError as err:
        raise err.with_context(layer=spec.name, where=spec.where) from None
    stage_notes = tuple(n for r in results for n in r.stats.notes)
    return LayerResult(spec, shape, tuple(results), notes + stage_notes)
