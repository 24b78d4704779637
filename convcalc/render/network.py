"""Render evaluated networks: table, JSON, CSV, Markdown, and (in :mod:`convcalc.render.html`) HTML.

Numbers stay exact integers everywhere except the compact table cells (``26.7M``). ``batch``
scales MACs, FLOPs, other operations and activations, never parameters. Tables are aligned here,
without rich: laying out a 10,000-row network with rich took seconds, this takes milliseconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from convcalc import rf
from convcalc.interop.peers import network_peer_totals
from convcalc.network.result import TRAIN, LayerRow, NetResult
from convcalc.render.table import Format, aligned, fit_width, fold_lines, shape_text, to_json
from convcalc.render.units import compact, size_text
from convcalc.report import EXACT, GLOBAL_LEGEND, GLOBAL_MARK, NO_AXES, CostFields, field_to_dict

CONVENTIONS = {
    "macs": "multiply-accumulates of convolutions and linear layers (torchvision's 'GFLOPS' count these)",
    "flops": "2 x macs",
    "other_ops": "normalisation, pooling, activation, element-wise and resampling operations (never in macs)",
    "moved": "elements copied by data movement (concatenation, shuffles, padding, nearest upsampling)",
    "activations": "output elements of each layer, summed",
    "batch": "macs, flops, other_ops, bias_adds and activations are multiplied by batch; params are not",
}
BAR_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉"

# ==============================================================================================
# Cells
# ==============================================================================================


def rf_cells(row: LayerRow) -> tuple[str, str, str, str]:
    """Receptive field size, effective stride, effective padding and centre of the first unit,
    per axis (``7x7``, ``2x2``, ``3x3``, ``1/2x1/2``); the size marked ``+g`` when global context
    also reaches the unit (:data:`convcalc.report.GLOBAL_MARK`)."""
    if row.field is None or row.rf_status != EXACT:
        text = "-" if row.rf_status == NO_AXES else row.rf_status
        return text, "", "", ""
    return (
        "x".join(rf.fmt(a.size) for a in row.field) + (f" {GLOBAL_MARK}" if row.global_context else ""),
        "x".join(rf.fmt(a.jump) for a in row.field),
        "x".join(rf.fmt(a.padding) for a in row.field),
        "x".join(rf.fmt(a.start) for a in row.field),
    )


def io_text(result: NetResult, row: LayerRow) -> str:
    inputs = " + ".join(shape_text(s, result.spec.layout) for s in row.input_shapes)
    return f"{inputs} -> {shape_text(row.output_shape, result.spec.layout)}"


# ==============================================================================================
# JSON (the stable contract)
# ==============================================================================================


def field_json(row: LayerRow) -> object:
    """Per-axis ``{axis, size, stride, start, padding}`` (fractions as ``"7/2"``; plus
    ``"global_context": true`` when marked), ``[]`` without spatial axes, or the status string
    (``"data-dependent"``, ``"not tracked"``, ``"global context"``)."""
    return field_to_dict(row.field, row.rf_status, row.global_context)


def counts_json(record: CostFields, activations: int, batch: int) -> dict[str, int]:
    """The counts of a row or of the totals for ``batch`` samples (params are not scaled)."""
    return {
        "params": record.params,
        "macs": batch * record.macs,
        "flops": batch * record.flops,
        "other_ops": batch * record.other_ops,
        "bias_adds": batch * record.bias_adds,
        "moved": batch * record.moved,
        "activations": batch * activations,
    }


def row_json(result: NetResult, row: LayerRow) -> dict[str, object]:
    batch = result.batch
    return {
        "name": row.name,
        "type": row.type,
        "input_shape": list(result.spec.to_layout(row.input_shapes[0])),
        "input_shapes": [list(result.spec.to_layout(s)) for s in row.input_shapes],
        "output_shape": list(result.spec.to_layout(row.output_shape)),
        **counts_json(row, result.activations(row), batch),
        "receptive_field": field_json(row),
        **({"training_only": True} if row.training_only else {}),
        "notes": list(row.notes),
        "line": row.where.line if row.where else None,
    }


def net_to_dict(result: NetResult, depth: int | None = None) -> dict[str, object]:
    """The JSON contract of ``convcalc net``: ``name``, ``input_shape``, ``output_shape``,
    ``totals`` {``params``, ``macs``, ``flops``, ...} and ``layers`` [{``name``, ``type``,
    ``input_shape``, ``output_shape``, ``params``, ``macs``, ``receptive_field``, ...}], plus the
    type breakdown, the heaviest layers, expectations and notes. ``depth`` folds blocks."""
    totals = result.totals()
    batch = result.batch
    return {
        "name": result.name,
        "file": result.spec.source,
        "complete": result.complete,
        "batch": batch,
        "mode": result.mode,
        "layout": result.spec.layout,
        "input_shape": list(result.spec.to_layout(result.input_shape)),
        "output_shape": list(result.spec.to_layout(result.output_shape)),
        "totals": {
            **counts_json(totals, totals.activations, batch),
            "layers": totals.layers,
            "peers": network_peer_totals(result),
        },
        "conventions": CONVENTIONS,
        "depth": depth,
        "layers": [row_json(result, row) for row in result.fold(depth)],
        "breakdown": [
            {"type": s.type, "count": s.count, "params": s.params, "macs": batch * s.macs, "other_ops": batch * s.other_ops}
            for s in result.breakdown()
        ],
        "heaviest": [{"name": r.name, "type": r.type, "macs": batch * r.macs, "params": r.params} for r in result.heaviest()],
        "expectations": [
            {"what": e.what, "ok": e.ok, "skipped": e.skipped, "message": e.message, "line": e.where.line if e.where else None}
            for e in result.expectations
        ],
        "warnings": result.warnings(),
    }


def render_json(result: NetResult, depth: int | None = None) -> str:
    return to_json(net_to_dict(result, depth))


# ==============================================================================================
# CSV and Markdown
# ==============================================================================================

COLUMNS = (
    "layer",
    "type",
    "input -> output",
    "params",
    "MACs",
    "FLOPs",
    "other ops",
    "activations",
    "RF",
    "stride",
    "eff. pad",
    "centre",
)


TRAINING_MARK = "[train]"
"""How tables mark the rows of a ``training_only`` item (JSON: ``"training_only": true``)."""


def name_text(row: LayerRow) -> str:
    """The row's name, marked :data:`TRAINING_MARK` when it belongs to a training-only item."""
    return f"{row.name} {TRAINING_MARK}" if row.training_only else row.name


def _cells(result: NetResult, row: LayerRow) -> list[str | int]:
    batch = result.batch
    return [
        name_text(row),
        row.type,
        io_text(result, row),
        row.params,
        batch * row.macs,
        batch * row.flops,
        batch * row.other_ops,
        batch * result.activations(row),
        *rf_cells(row),
    ]


NARROW_DROP = tuple(COLUMNS.index(c) for c in ("centre", "eff. pad", "stride", "other ops", "activations", "FLOPs", "type"))
"""Columns a terminal too narrow for the layer table hides first (then ``input -> output`` folds)."""

CSV_COLUMNS = (
    "name", "type", "input_shape", "output_shape", "params", "macs", "flops", "other_ops", "activations",
    "rf_size", "rf_stride", "rf_padding", "rf_centre", "rf_global_context", "training_only", "notes",
)  # fmt: skip


def render_csv(result: NetResult, depth: int | None = None) -> str:
    """One row per layer, exact integers; shapes as ``3x224x224``; ``rf_global_context`` says
    whether the ``+g`` mark of ``rf_size`` is there (:data:`convcalc.report.GLOBAL_LEGEND`),
    ``training_only`` whether the row is the table's ``[train]`` one."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    batch = result.batch
    for row in result.fold(depth):
        writer.writerow(
            [
                row.name,
                row.type,
                " + ".join(shape_text(s, result.spec.layout) for s in row.input_shapes),
                shape_text(row.output_shape, result.spec.layout),
                row.params,
                batch * row.macs,
                batch * row.flops,
                batch * row.other_ops,
                batch * result.activations(row),
                *rf_cells(row),
                "true" if row.global_context else "false",
                "true" if row.training_only else "false",
                " | ".join(row.notes),
            ]
        )
    return buffer.getvalue().rstrip("\n")


def render_markdown(result: NetResult, depth: int | None = None) -> str:
    """GitHub-flavoured Markdown: the layer table, totals, breakdown by type, notes."""
    right = {3, 4, 5, 6, 7}
    out = [f"### {result.name}", ""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "|".join("---:" if i in right else "---" for i in range(len(COLUMNS))) + "|")
    rows = result.fold(depth)
    for row in rows:
        out.append("| " + " | ".join(f"{c:,}" if isinstance(c, int) else str(c) for c in _cells(result, row)) + " |")
    legend = legend_lines(result, rows)
    out += [*(["", *legend] if legend else []), "", *[f"- {line}" for line in _total_lines(result)]]
    out += ["", "| type | layers | params | MACs |", "|---|---:|---:|---:|"]
    out += [f"| {s.type} | {s.count} | {s.params:,} | {result.batch * s.macs:,} |" for s in result.breakdown()]
    notes = result.warning_summary()
    if notes:
        out += ["", f"Notes{_collapsed(result, notes)}:", "", *[f"- {n}" for n in notes]]
    return "\n".join(out)


def legend_lines(result: NetResult, rows: list[LayerRow]) -> list[str]:
    """The lines explaining the marks of the shown rows, if any."""
    lines = [GLOBAL_LEGEND] if any(r.global_context for r in rows) else []
    if any(r.training_only for r in rows):
        counted = "counted (--mode train)" if result.mode == TRAIN else "only counted with --mode train"
        lines.append(f"{TRAINING_MARK} training only: the params count; the MACs, other ops and activations are {counted}.")
    return lines


def _collapsed(result: NetResult, summary: list[str]) -> str:
    """A hint after the notes heading when repeated notes were collapsed into one line."""
    return " (repeats collapsed; --format json lists each)" if len(summary) < sum(len(r.notes) for r in result.rows) else ""


def _total_lines(result: NetResult) -> list[str]:
    totals = result.totals()
    batch = result.batch
    per = f" (batch {batch})" if batch != 1 else ""
    return [
        f"input {shape_text(result.input_shape, result.spec.layout)} -> output {shape_text(result.output_shape, result.spec.layout)}",
        f"params: {totals.params:,}",
        f"MACs{per}: {batch * totals.macs:,}  (FLOPs = 2 x MACs = {batch * totals.flops:,})",
        f"other ops{per}: {batch * totals.other_ops:,}  (norm/pool/activation/element-wise)",
        f"bias additions{per}: {batch * totals.bias_adds:,}",
        f"activations{per}: {batch * totals.activations:,} elements ({size_text(4 * batch * totals.activations)} as float32)",
        f"layers: {totals.layers:,}",
        *_mode_lines(result),
    ]


def _mode_lines(result: NetResult) -> list[str]:
    """What the mode left out, when the network has training-only rows."""
    training = [r for r in result.rows if r.training_only]
    if not training:
        return []
    if result.mode == TRAIN:
        return [f"mode: train (the {len(training):,} training-only layers are counted)"]
    return [f"mode: eval (the {len(training):,} training-only layers count their params only; --mode train adds their work)"]


# ==============================================================================================
# Text table, breakdown and bar chart
# ==============================================================================================


def bar(share: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``share`` (0..1) in ``width`` cells, with eighth-cell resolution."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def chart_lines(result: NetResult, limit: int = 12) -> list[str]:
    """Where the MACs and the parameters go, per top-level block: the largest ``limit`` blocks
    holding at least 0.1% of either, the rest summed in one line."""
    totals = result.totals()

    def visible(row: LayerRow) -> bool:
        return row.macs * 1000 >= totals.macs > 0 or row.params * 1000 >= totals.params > 0

    ranked = sorted(result.fold(1), key=lambda r: (-r.macs, -r.params))
    shown = [r for r in ranked if visible(r)][:limit]
    picked = {id(r) for r in shown}
    rest = [r for r in ranked if id(r) not in picked]
    rows = [(r.name, r.macs, r.params) for r in shown]
    if rest:
        rows.append((f"({len(rest)} more)", sum(r.macs for r in rest), sum(r.params for r in rest)))
    width = max([len(name) for name, _, _ in rows] + [5])
    lines = [f"{'block'.ljust(width)}  {'MACs'.ljust(BAR_WIDTH + 7)}  params"]
    for name, macs, params in rows:
        mac_share = macs / totals.macs if totals.macs else 0.0
        param_share = params / totals.params if totals.params else 0.0
        lines.append(f"{name.ljust(width)}  {bar(mac_share)} {mac_share:6.1%}  {bar(param_share)} {param_share:6.1%}")
    return lines


def _layer_lines(result: NetResult, depth: int | None) -> list[str]:
    title = result.name + ("" if result.complete else "  (stopped at the failing layer)")
    shown = result.fold(depth)
    rows = [[compact(c) if isinstance(c, int) else c for c in _cells(result, row)] for row in shown]
    return [title, *aligned(COLUMNS, rows, right=range(3, 8), width=fit_width(), drop=NARROW_DROP, fold=2), *legend_lines(result, shown)]


def _breakdown_lines(result: NetResult) -> list[str]:
    batch = result.batch
    rows = [
        [share.type, str(share.count), f"{share.params:,}", f"{batch * share.macs:,}", f"{batch * share.other_ops:,}"]
        for share in result.breakdown()
    ]
    return ["by layer type", *aligned(("type", "layers", "params", "MACs", "other ops"), rows, right=range(1, 5))]


def _heaviest_lines(result: NetResult) -> list[str]:
    total = result.totals().macs or 1
    rows = result.heaviest()
    lines = [f"  {r.name} ({r.type}): {result.batch * r.macs:,} ({r.macs / total:.1%})" for r in rows]
    return ["heaviest layers (MACs):", *lines] if rows else []


def _check_lines(result: NetResult) -> list[str]:
    if not result.expectations:
        return []
    failed, skipped = result.failed, result.skipped
    checked = len(result.expectations) - len(skipped)
    head = f"expectations: {checked - len(failed)} of {checked} hold" + (f", {len(skipped)} skipped" if skipped else "")
    note = [f"  skipped: the spec states them for its own input and variables (not {result.spec.overridden})"] if skipped else []
    return [head, *(f"  {e.where}: {e.message}" for e in failed), *note]


def render_table(result: NetResult, depth: int | None = None) -> str:
    """The per-layer table, totals, type breakdown, heaviest layers, bar chart, expectations, notes."""
    sections = [_layer_lines(result, depth), _total_lines(result)]
    if result.complete and result.rows:
        sections += [_breakdown_lines(result), _heaviest_lines(result), chart_lines(result)]
    notes = result.warning_summary()
    sections += [_check_lines(result), [f"notes{_collapsed(result, notes)}:", *(f"  {note}" for note in notes)] if notes else []]
    width = fit_width()
    return "\n\n".join("\n".join(fold_lines(section, width, "    ")) for section in sections if section)


def render_html(result: NetResult, depth: int | None = None) -> str:
    """A self-contained HTML report (:func:`convcalc.render.html.render_html`, imported for this format only)."""
    from convcalc.render import html

    return html.render_html(result, depth)


NET_RENDERERS: dict[Format, Callable[[NetResult, int | None], str]] = {
    Format.table: render_table,
    Format.json: render_json,
    Format.csv: render_csv,
    Format.markdown: render_markdown,
    Format.html: render_html,
}


def render_network(result: NetResult, fmt: Format | str = Format.table, depth: int | None = None) -> str:
    """Render in one :class:`~convcalc.render.table.Format`."""
    return NET_RENDERERS[Format(fmt)](result, depth)
