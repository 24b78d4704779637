"""Plain-data reports of evaluated layers: exact integers, units named, ready for any renderer.

``batch`` scales MACs, FLOPs, bias additions, other operations and activations, never
parameters. Shapes are channels-first lists without the batch axis.
"""

from collections.abc import Sequence
from typing import NamedTuple

from convcalc import rf
from convcalc.engine import LayerResult, StageResult
from convcalc.formula import axis_names
from convcalc.primitives.base import numel

DATA_DEPENDENT = "data-dependent"


class Costs(NamedTuple):
    """Summed costs of some stages, for ``batch`` samples."""

    weights: int
    biases: int
    macs: int
    bias_adds: int
    other_ops: int
    moved: int

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


def costs(stages: Sequence[StageResult], batch: int = 1) -> Costs:
    """Sum the stages' costs; per-sample counts are multiplied by ``batch``."""
    return Costs(
        weights=sum(s.stats.weights for s in stages),
        biases=sum(s.stats.biases for s in stages),
        macs=batch * sum(s.stats.macs for s in stages),
        bias_adds=batch * sum(s.stats.bias_adds for s in stages),
        other_ops=batch * sum(s.stats.other_ops for s in stages),
        moved=batch * sum(s.stats.moved for s in stages),
    )


def field_to_dict(field: rf.Field | None) -> list[dict[str, int | str]] | str:
    """Per-axis receptive field (size, effective stride, start/centre, effective padding), or ``data-dependent``."""
    if field is None:
        return DATA_DEPENDENT
    return [
        {
            "axis": name,
            "size": rf.to_json(axis.size),
            "stride": rf.to_json(axis.jump),
            "start": rf.to_json(axis.start),
            "padding": rf.to_json(axis.padding),
        }
        for name, axis in zip(axis_names(len(field)), field, strict=True)
    ]


def stage_to_dict(stage: StageResult, batch: int) -> dict[str, object]:
    return {
        "name": stage.name,
        "op": stage.op.op,
        "description": stage.label,
        "inputs": list(stage.inputs),
        "input_shape": list(stage.input_shapes[0]),
        "output_shape": list(stage.output),
        **costs([stage], batch).to_dict(),
        "activation": batch * numel(stage.output),
        "receptive_field": field_to_dict(stage.field),
    }


def layer_to_dict(result: LayerResult, batch: int = 1) -> dict[str, object]:
    """The stable JSON contract of single-layer commands."""
    total = costs(result.stages, batch)
    return {
        "type": result.spec.kind,
        "name": result.spec.name,
        "batch": batch,
        "input_shape": list(result.input_shape),
        "output_shape": list(result.output_shape),
        **total.to_dict(),
        "activation": batch * numel(result.output_shape),
        "receptive_field": field_to_dict(result.field),
        "stages": [stage_to_dict(s, batch) for s in result.stages],
        "notes": list(result.notes),
    }
