"""``convcalc check SPEC --against MODEL.onnx``: the spec that documents a design against the model
that ships, layer by layer.

Rows are matched by name (``by_order``: by position, for graphs without module names) and
compared on their type (the primitive operations they expand to, so ``depthwise2d`` and a grouped
``conv2d`` agree), output shape, parameters, MACs and receptive field (a dilation changes no count); then the totals (params, MACs) and the network's
output shape. Layers that do not run in the evaluation mode (``training_only`` auxiliary heads in
``eval``) have no node in an exported inference graph: they are not compared, nor are their
parameters in the total. Every comparison is an :class:`~convcalc.network.result.Expectation` of one
:class:`~convcalc.network.check.CheckResult`, so the ``check`` renderers (text, GitHub annotations,
JUnit XML) and exit codes apply unchanged: 0 agree, 1 differ, 2 bad input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from convcalc.errors import ConvcalcError, Location
from convcalc.network.check import CheckResult
from convcalc.network.evaluate import evaluate_network
from convcalc.network.library import resolve
from convcalc.network.result import EVAL, Expectation, LayerRow, NetResult, NetworkError
from convcalc.network.spec import load_network, override

MAX_DIVERGENCES = 20
"""Divergent layers listed before the rest are summed up in one line."""


def family(row: LayerRow) -> tuple[tuple[str, object], ...]:
    """What a row computes: its primitive ops with their variety (activation fn, norm style, pool mode)."""
    return tuple(
        (s.op.op, getattr(s.op, "fn", None) or getattr(s.op, "style", None) or getattr(s.op, "mode", None)) for s in row.stages
    )


def _no_op(row: LayerRow) -> bool:
    """Dropout and identity rows: nothing at inference, so an exported graph has no node for them."""
    return all(s.op.op == "identity" for s in row.stages)


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape) if shape else "()"


def compare_rows(spec_row: LayerRow, model_row: LayerRow) -> list[str]:
    """The differences between two rows, one phrase each (empty: they agree)."""
    out = []
    if family(spec_row) != family(model_row):
        out.append(f"type: spec {spec_row.type}, model {model_row.type}")
    if spec_row.output_shape != model_row.output_shape:
        out.append(f"output shape: spec {_shape(spec_row.output_shape)}, model {_shape(model_row.output_shape)}")
    if spec_row.params != model_row.params:
        out.append(f"params: spec {spec_row.params:,}, model {model_row.params:,}")
    if spec_row.macs != model_row.macs:
        out.append(f"MACs: spec {spec_row.macs:,}, model {model_row.macs:,}")
    ours, theirs = _field(spec_row), _field(model_row)
    if ours and theirs and ours != theirs:
        out.append(f"receptive field: spec {ours}, model {theirs}")
    return out


def _field(row: LayerRow) -> str:
    """The receptive field size per axis (``7x7``), or '' when it is not an exact field."""
    from convcalc import rf

    return "x".join(rf.fmt(a.size) for a in row.field) if row.field else ""


def against(
    spec_path: str,
    model: object,
    *,
    by_order: bool = False,
    allow_unknown: bool = False,
    in_shape: str | None = None,
    values: Mapping[str, object] | None = None,
    mode: str = EVAL,
) -> CheckResult:
    """Check ``spec_path``'s own expectations (a file or a library name; ``in_shape``/``values`` as
    :func:`~convcalc.network.spec.override`) and compare it with ``model`` (an .onnx path or ModelProto)."""
    from convcalc.interop.onnx import import_model

    model_name = str(model) if not hasattr(model, "graph") else "<ModelProto>"
    try:
        spec = override(load_network(resolve(spec_path)[0]), in_shape, values)
    except ConvcalcError as err:
        return CheckResult(spec_path, spec_path, error=err)
    label = f"{spec.name} vs {model_name}"
    try:
        result = evaluate_network(spec, mode=mode)
    except NetworkError as err:
        return CheckResult(spec_path, label, tuple(err.partial.expectations), err.cause)
    try:
        imported = import_model(model, allow_unknown=allow_unknown, default_shape=spec.input_shape)
    except ConvcalcError as err:
        return CheckResult(spec_path, label, tuple(result.expectations), err)
    checks = list(result.expectations) + compare_networks(result, imported.result, imported.nodes, by_order)
    return CheckResult(spec_path, label, tuple(checks))


def compare_networks(spec: NetResult, model: NetResult, nodes: dict[str, str], by_order: bool = False) -> list[Expectation]:
    """Layer-by-layer and total comparisons (the first :data:`MAX_DIVERGENCES` divergent layers listed)."""
    source = spec.spec.source
    checks: list[Expectation] = []
    # an exported inference graph has no node (nor weights) for what does not run in this mode (auxiliary heads)
    spec_rows = [row for row in spec.rows if spec.runs(row)]
    absent_params = sum(row.params for row in spec.rows if not spec.runs(row))
    failures = 0

    def add(what: str, problems: list[str], where: Location | None, layer: str | None, passed: str) -> None:
        nonlocal failures
        if problems:
            failures += 1
            if failures > MAX_DIVERGENCES:
                return
        message = f"{what}: " + ("; ".join(problems) if problems else passed)
        checks.append(Expectation(what, not problems, message, where, layer))

    def node_of(row: LayerRow) -> str:
        node = nodes.get(row.name)
        return f" (ONNX node '{node}')" if node else ""

    if by_order:
        pairs = list(zip(spec_rows, model.rows, strict=False))
        if len(spec_rows) != len(model.rows):
            add(
                "layer count",
                [f"spec {len(spec_rows)} layers, model {len(model.rows)}"],
                Location(source),
                None,
                "",
            )
    else:
        by_name = {row.name: row for row in model.rows}
        pairs = [(row, by_name[row.name]) for row in spec_rows if row.name in by_name]
        for row in spec_rows:
            if row.name not in by_name and not _no_op(row):  # exporters drop dropout/identity at inference
                add(f"layer '{row.name}'", ["in the spec but not in the model"], row.where, row.name, "")
        names = {row.name for row in spec.rows}
        for row in model.rows:
            if row.name not in names and not _no_op(row):
                add(f"model layer '{row.name}'", [f"in the model{node_of(row)} but not in the spec"], Location(source), row.name, "")
    for spec_row, model_row in pairs:
        label = spec_row.name if spec_row.name == model_row.name else f"{spec_row.name}' / model '{model_row.name}"
        problems = compare_rows(spec_row, model_row)
        if problems:
            problems[-1] += node_of(model_row)
        add(f"layer '{label}'", problems, spec_row.where, spec_row.name, f"{spec_row.type} {_shape(spec_row.output_shape)} agrees")
    ours, theirs = spec.totals(), model.totals()
    without = f" (without the {absent_params:,} params of training-only layers, absent from an inference graph)" if absent_params else ""
    for key, a, b in (("params", ours.params - absent_params, theirs.params), ("macs", ours.macs, theirs.macs)):
        note = without if key == "params" else ""
        add(f"total {key}", [] if a == b else [f"spec {a:,}{note}, model {b:,}"], spec.spec.where, None, f"{a:,} agree{note}")
    a_out, b_out = _shape(spec.output_shape), _shape(model.output_shape)
    add("output shape", [] if a_out == b_out else [f"spec {a_out}, model {b_out}"], spec.spec.where, None, f"{a_out} agrees")
    if failures > MAX_DIVERGENCES:
        more = failures - MAX_DIVERGENCES
        checks.append(Expectation("more divergences", False, f"... and {more} more divergence(s)", Location(source), None))
    return checks


__all__ = ["MAX_DIVERGENCES", "against", "compare_networks", "compare_rows", "family"]

