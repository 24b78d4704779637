"""One record of what layers cost and what they see, for single layers and network rows alike.

:class:`Costs` sums the :class:`~convcalc.primitives.base.OpStats` of some stages (exact integers,
units named); a receptive field is a per-axis :data:`convcalc.rf.Field` plus one status from
:data:`FIELD_STATUSES`, rendered the same way everywhere. ``batch`` scales MACs, FLOPs, bias
additions, other operations and activations, never parameters. Shapes are channels-first lists
without the batch axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from convcalc import rf
from convcalc.engine import LayerResult, StageResult
from convcalc.formula import axis_names
from convcalc.primitives.base import Op, OpStats, numel
from convcalc.primitives.conv import DeformSample

EXACT = "exact"
"""The field is known per axis: exact integers, or exact fractions on a grid refined by upsampling
(then a phase-independent bound, see :mod:`convcalc.primitives.resample`)."""
NO_AXES = "no spatial axes"
"""The tensor has no spatial axis (after flatten or global pooling + flatten): nothing to track."""
DATA_DEPENDENT = "data-dependent"
"""The sampling positions come from the data (deformable convolution's offsets)."""
NOT_TRACKED = "not tracked"
"""convcalc does not track it (non-integer resampling ratios, uneven adaptive windows; the op's note says which)."""
GLOBAL_ONLY = "global context"
"""No spatially local path reaches the units: they see the whole input through a global reduction
only (a global pooling, and what is computed from it alone, e.g. upsampled back), :mod:`convcalc.rf`."""
FIELD_STATUSES = (EXACT, NO_AXES, DATA_DEPENDENT, NOT_TRACKED, GLOBAL_ONLY)
"""The receptive-field vocabulary of every report. Independently of the status, a field carries
the *global context* flag (:data:`GLOBAL_MARK`): a path through a global reduction also reaches
its units; with :data:`EXACT` the field shown is the spatially local one."""
GLOBAL_MARK = "+g"
"""How tables mark a field that also sees global context (JSON: ``"global_context": true``)."""
GLOBAL_LEGEND = (
    f"{GLOBAL_MARK} global context: a path through a global pooling also reaches these units (a gate, an image-pooling"
    " branch); the field shown follows the spatially local paths only (Araujo et al. 2019)."
)


def field_status(output: Sequence[int], field: rf.Field | None, op: Op, inputs: Iterable[str], local: bool = True) -> str:
    """The status of the field of a tensor made by ``op`` from inputs with statuses ``inputs``
    (``local``: a spatially local path reaches it): an unknown field inherits the reason of its
    first unknown input, else is data-dependent (deformable sampling) or not tracked."""
    if len(output) == 1:
        return NO_AXES
    if field is not None:
        return EXACT
    if not local:
        return GLOBAL_ONLY
    unknown = [status for status in inputs if status not in (EXACT, NO_AXES, GLOBAL_ONLY)]
    if unknown:
        return unknown[0]
    return DATA_DEPENDENT if isinstance(op, DeformSample) else NOT_TRACKED


def global_context(status: str, context: bool) -> bool:
    """Whether a field is reported with the global-context flag (never without spatial axes)."""
    return context and status != NO_AXES


def stage_statuses(stages: Sequence[StageResult]) -> dict[str, str]:
    """The field status of every stage of one layer (the layer's own input is known: exact)."""
    statuses: dict[str, str] = {}
    for stage in stages:
        inputs = (statuses.get(name, EXACT) for name in stage.inputs)
        statuses[stage.name] = field_status(stage.output, stage.field, stage.op, inputs, stage.local)
    return statuses


class Costs(NamedTuple):
    """Summed costs of some stages: weights and biases once, the rest per sample x ``batch``."""

    weights: int = 0
    biases: int = 0
    macs: int = 0
    bias_adds: int = 0
    other_ops: int = 0
    moved: int = 0

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs (one multiply and one add per MAC); bias additions are separate."""
        return 2 * self.macs

    def to_dict(self) -> dict[str, int]:
        return {
            "params": self.params,
            "weights": self.weights,
            "biases": self.biases,
            "macs": self.macs,
            "flops": self.flops,
            "bias_adds": self.bias_adds,
            "other_ops": self.other_ops,
            "moved": self.moved,
        }


def sum_costs(parts: Iterable[Costs | OpStats], batch: int = 1) -> Costs:
    """Add up costs (or primitives' stats); per-sample counts are multiplied by ``batch``."""
    items = list(parts)
    return Costs(
        weights=sum(p.weights for p in items),
        biases=sum(p.biases for p in items),
        macs=batch * sum(p.macs for p in items),
        bias_adds=batch * sum(p.bias_adds for p in items),
        other_ops=batch * sum(p.other_ops for p in items),
        moved=batch * sum(p.moved for p in items),
    )


def costs(stages: Sequence[StageResult], batch: int = 1) -> Costs:
    """The costs of some evaluated stages for ``batch`` samples."""
    return sum_costs((s.stats for s in stages), batch)


class CostFields:
    """``params``, ``macs``, ... of a record that holds a per-sample :class:`Costs` as ``costs``."""

    __slots__ = ()
    if TYPE_CHECKING:  # a field of the record, or a property computing it

        @property
        def costs(self) -> Costs: ...

    @property
    def params(self) -> int:
        return self.costs.params

    @property
    def macs(self) -> int:
        return self.costs.macs

    @property
    def flops(self) -> int:
        return self.costs.flops

    @property
    def other_ops(self) -> int:
        return self.costs.other_ops

    @property
    def bias_adds(self) -> int:
        return self.costs.bias_adds

    @property
    def moved(self) -> int:
        return self.costs.moved


def field_to_dict(field: rf.Field | None, status: str, context: bool = False) -> list[dict[str, int | str | bool]] | str:
    """Per-axis receptive field (size, effective stride, start/centre, effective padding, and
    ``"global_context": true`` when a path through a global reduction also reaches the unit);
    ``[]`` without spatial axes; else the status (``data-dependent``, ``not tracked``, ``global context``)."""
    if status == NO_AXES:
        return []
    if field is None:
        return status
    mark: dict[str, bool] = {"global_context": True} if context else {}
    return [
        {
            "axis": name,
            "size": rf.to_json(axis.size),
            "stride": rf.to_json(axis.jump),
            "start": rf.to_json(axis.start),
            "padding": rf.to_json(axis.padding),
            **mark,
        }
        for name, axis in zip(axis_names(len(field)), field, strict=True)
    ]


def stage_to_dict(stage: StageResult, batch: int, status: str) -> dict[str, object]:
    return {
        "name": stage.name,
        "op": stage.op.op,
        "description": stage.label,
        "inputs": list(stage.inputs),
        "input_shape": list(stage.input_shapes[0]),
        "output_shape": list(stage.output),
        **costs([stage], batch).to_dict(),
        "activation": batch * numel(stage.output),
        "receptive_field": field_to_dict(stage.field, status, stage.context),
    }


def layer_to_dict(result: LayerResult, batch: int = 1) -> dict[str, object]:
    """The stable JSON contract of single-layer commands."""
    total = costs(result.stages, batch)
    statuses: Mapping[str, str] = stage_statuses(result.stages)
    return {
        "type": result.spec.kind,
        "name": result.spec.name,
        "batch": batch,
        "input_shape": list(result.input_shape),
        "output_shape": list(result.output_shape),
        **total.to_dict(),
        "activation": batch * numel(result.output_shape),
        "receptive_field": field_to_dict(result.field, statuses[result.stages[-1].name], result.stages[-1].context),
        "stages": [stage_to_dict(s, batch, statuses[s.name]) for s in result.stages],
        "notes": list(result.notes),
    }
