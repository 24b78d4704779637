"""Build the tables of the single-layer commands from evaluated layers.

A *view* picks the columns: ``shape``, ``params``, ``flops``, ``rf`` or ``layer`` (all).
Composite layers get one row per stage and a total row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

from convcalc import rf
from convcalc.engine import LayerResult, StageResult
from convcalc.formula import axis_names
from convcalc.kinds import Kind
from convcalc.primitives.base import numel
from convcalc.render.table import Cell, Table, shape_text
from convcalc.report import GLOBAL_LEGEND, GLOBAL_MARK, Costs, costs, global_context, stage_statuses


def rf_summary(field: rf.Field | None, status: str, context: bool = False) -> str:
    """``7x7 /2`` (size per axis, effective stride per axis; ``+g`` when global context also
    reaches the unit, :data:`convcalc.report.GLOBAL_MARK`), or the status of an unknown field (or
    of a field without spatial axes: a flat vector)."""
    if field is None or not field:
        return status
    sizes = "x".join(rf.fmt(a.size) for a in field)
    jumps = "x".join(rf.fmt(a.jump) if a.jump.denominator == 1 else f"({rf.fmt(a.jump)})" for a in field)
    return f"{sizes} /{jumps}" + (f" {GLOBAL_MARK}" if global_context(status, context) else "")


Column = tuple[str, Callable[[StageResult, Costs, str], Cell], Callable[[LayerResult, Costs, str], Cell]]
"""Header, the cell of a stage row and the cell of the total row (from the result, its costs and field status)."""


def _cols(layout: str) -> dict[str, Column]:
    return {
        "input": ("input", lambda s, c, f: shape_text(s.input_shapes[0], layout), lambda r, c, f: shape_text(r.input_shape, layout)),
        "output": ("output", lambda s, c, f: shape_text(s.output, layout), lambda r, c, f: shape_text(r.output_shape, layout)),
        "weights": ("weights", lambda s, c, f: c.weights, lambda r, c, f: c.weights),
        "biases": ("biases", lambda s, c, f: c.biases, lambda r, c, f: c.biases),
        "params": ("params", lambda s, c, f: c.params, lambda r, c, f: c.params),
        "macs": ("MACs", lambda s, c, f: c.macs, lambda r, c, f: c.macs),
        "flops": ("FLOPs", lambda s, c, f: c.flops, lambda r, c, f: c.flops),
        "bias_adds": ("bias adds", lambda s, c, f: c.bias_adds, lambda r, c, f: c.bias_adds),
        "other": ("other ops", lambda s, c, f: c.other_ops + c.moved, lambda r, c, f: c.other_ops + c.moved),
        "rf": (
            "receptive field",
            lambda s, c, f: rf_summary(s.field, f, s.context),
            lambda r, c, f: rf_summary(r.field, f, r.stages[-1].context),
        ),
    }


VIEWS: dict[str, tuple[str, ...]] = {
    "shape": ("input", "output", "rf"),
    "params": ("output", "weights", "biases", "params"),
    "flops": ("output", "macs", "flops", "bias_adds", "other"),
    "layer": ("input", "output", "params", "macs", "flops", "rf"),
}


def title(result: LayerResult, batch: int, layout: str) -> str:
    batch_text = f" (batch {batch}: MACs and activations x{batch})" if batch != 1 else ""
    return f"{result.spec.kind} '{result.spec.name}': {shape_text(result.input_shape, layout)} -> {shape_text(result.output_shape, layout)}{batch_text}"


def layer_table(result: LayerResult, view: str, batch: int, layout: str, explain: bool) -> Table:
    """The table for one view; ``rf`` has its own per-axis layout."""
    if view == "rf":
        table = rf_table(result)
    else:
        cols = _cols(layout)
        names = VIEWS[view]
        statuses = stage_statuses(result.stages)
        table = Table(["stage", "operation", *(cols[n][0] for n in names)])
        for stage in result.stages:
            cost = costs([stage], batch)
            table.rows.append([stage.name, stage.label, *(cols[n][1](stage, cost, statuses[stage.name]) for n in names)])
        if len(result.stages) > 1:
            total = costs(result.stages, batch)
            status = statuses[result.stages[-1].name]
            table.rows.append(["total", "", *(cols[n][2](result, total, status) for n in names)])
    table.title = title(result, batch, layout)
    table.notes = [f"note: {n}" for n in result.notes]
    if not result.aligned:
        table.notes.append("note: merged branches have different effective strides or centres (fields not aligned).")
    if any(s.context for s in result.stages if s.field is not None):
        table.notes.append(GLOBAL_LEGEND)
    if view in ("layer", "flops"):
        table.notes.append(
            f"activation (output elements) = {batch * numel(result.output_shape):,}; FLOPs = 2 x MACs, bias adds separate."
        )
    if explain:
        table.notes.extend(explain_lines(result.stages))
    return table


def explain_lines(stages: Sequence[StageResult]) -> list[str]:
    """Every formula with its numbers substituted, stage by stage."""
    lines = []
    for stage in stages:
        lines.append(f"[{stage.name}] {stage.label}")
        lines.extend(f"    {line}" for line in stage.stats.explain)
    return lines


def rf_table(result: LayerResult) -> Table:
    """Per stage and axis: the step (kernel, stride, padding, grid refinement) and the cumulative field."""
    table = Table(["stage", "axis", "kernel", "stride", "pad", "upsample", "RF size", "eff. stride", "centre", "eff. padding"])
    statuses = stage_statuses(result.stages)
    for stage in result.stages:
        names = axis_names(len(stage.output) - 1)
        steps = stage.stats.rf
        for i, name in enumerate(names):
            step = (
                ["", "", "", ""]
                if steps is None
                else [str(steps[i].kernel), str(steps[i].stride), rf.fmt(Fraction(steps[i].pad)), str(steps[i].upsample)]
            )
            if stage.field is None:
                table.rows.append([stage.name, name, *step, statuses[stage.name], "", "", ""])
                continue
            axis = stage.field[i]
            size = rf.fmt(axis.size) + (f" {GLOBAL_MARK}" if stage.context else "")
            table.rows.append([stage.name, name, *step, size, rf.fmt(axis.jump), rf.fmt(axis.start), rf.fmt(axis.padding)])
    return table


def types_table(kinds: Sequence[Kind], formulas: bool) -> Table:
    """Every kind with its aliases and fields (and formulas)."""
    table = Table(["type", "aliases", "fields", "what it is"], drop=(1, 2), fold=3)
    for kind in kinds:
        fields = ", ".join(f.name + ("*" if f.required else "") for f in kind.fields)
        table.rows.append([kind.name, ", ".join(kind.aliases), fields, kind.summary])
        if formulas:
            table.rows.extend(["", "", "", f"  {line}"] for line in (*kind.formulas, f"source: {kind.source}"))
    table.notes = ["* required field; in_channels defaults to the input's channels. Short flags: -k -s -p -d -g."]
    return table
