"""``convcalc net SPEC --format html -o REPORT.html``: one self-contained report file.

No network access and no external resource: the style sheet, the charts (inline SVG) and a few
lines of script (expand/collapse all; open every block before printing) are in the file. The
table folds by top-level block with native ``<details>`` elements, so it works without script.
Light and dark mode follow ``prefers-color-scheme``; print uses the light colours.

Sections: totals; the shape flow through the top-level blocks; MACs and parameters per block;
receptive-field size and effective stride against depth; the layer table; expectations; notes.
Every number in the table is exact (the charts round only their labels). ``--depth N`` folds the
rows inside each block as the other formats do. The SVG writer is :mod:`convcalc.draw.svg`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from html import escape

from convcalc import rf
from convcalc.draw.svg import Svg
from convcalc.network.result import LayerRow, NetResult
from convcalc.render.network import io_text, legend_lines, name_text, rf_cells
from convcalc.render.table import shape_text
from convcalc.render.units import compact, size_text
from convcalc.report import EXACT

CSS = """
:root{--bg:#ffffff;--fg:#1b2733;--muted:#5b6b7b;--line:#d8dee6;--card:#f5f8fb;--mac:#2b6aa3;--par:#d0742c;
--rf:#2b6aa3;--stride:#1f8f88;--bad:#b42318;--good:#1f7a3a;--head:#eef3f8}
@media (prefers-color-scheme: dark){:root{--bg:#11161c;--fg:#e4e9ef;--muted:#9aa8b6;--line:#2c3643;--card:#18202a;
--mac:#6fa8dc;--par:#f0a060;--rf:#6fa8dc;--stride:#5cc8bf;--bad:#ff8a80;--good:#7ed69a;--head:#1c2530}}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.sub{color:var(--muted);margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:18px}.card span{color:var(--muted);font-size:12px}
.scroll{overflow-x:auto}
svg text{fill:var(--fg);font-size:11px}svg .muted{fill:var(--muted)}
svg .grid{stroke:var(--line);stroke-width:1}svg .mac{fill:var(--mac)}svg .par{fill:var(--par)}
svg .rfline{stroke:var(--rf);fill:none;stroke-width:2}svg .stline{stroke:var(--stride);fill:none;stroke-width:2;stroke-dasharray:5 3}
svg .end{fill:var(--rf)}svg .blockbox{fill:var(--card);stroke:var(--mac);stroke-width:1.2}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:var(--head);position:sticky;top:0}td.n{text-align:right}
table{table-layout:fixed}col.c0{width:16%}col.c1{width:12%}col.c2{width:20%}col.c3{width:8.5%}col.c4{width:10.5%}col.c5,col.c6{width:9%}col.c7{width:8.5%}col.c8{width:7%}
td{overflow:hidden;text-overflow:ellipsis}
details{margin:2px 0}
summary{cursor:pointer;list-style:none;background:var(--card);font-weight:600}
summary::-webkit-details-marker{display:none}
summary td:first-child::before{content:"▸ ";color:var(--muted)}details[open]>summary td:first-child::before{content:"▾ "}
details>table td:first-child{padding-left:22px}
.bad{color:var(--bad)}.good{color:var(--good)}
button{background:var(--card);color:var(--fg);border:1px solid var(--line);border-radius:6px;padding:4px 10px;cursor:pointer}
ul.notes li{margin:2px 0}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;vertical-align:-1px;margin-right:4px}
@media print{:root{--bg:#fff;--fg:#000;--muted:#444;--line:#ccc;--card:#f6f6f6;--head:#eee}
button{display:none}body{padding:0}details{break-inside:avoid}h2{break-after:avoid}th{position:static}}
"""

SCRIPT = """
function setAll(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});}
window.addEventListener('beforeprint',function(){setAll(true);});
"""

COLUMNS = ("layer", "type", "input → output", "params", "MACs", "other ops", "activations", "RF", "stride")
NUMERIC = {3, 4, 5, 6}


def _cells(result: NetResult, row: LayerRow) -> list[str]:
    batch = result.batch
    size, stride, _, _ = rf_cells(row)
    return [
        name_text(row),
        row.type,
        io_text(result, row),
        f"{row.params:,}",
        f"{batch * row.macs:,}",
        f"{batch * row.other_ops:,}",
        f"{batch * result.activations(row):,}",
        size,
        stride,
    ]


def _tr(cells: Sequence[str], tag: str = "td") -> str:
    """A table row; number cells right-aligned, every cell titled (a narrow column may clip it)."""
    return "<tr>" + "".join(
        f'<{tag} class="n" title="{escape(c)}">{escape(c)}</{tag}>'
        if i in NUMERIC and tag == "td"
        else f'<{tag} title="{escape(c)}">{escape(c)}</{tag}>'
        for i, c in enumerate(cells)
    ) + "</tr>"


def blocks(result: NetResult, depth: int | None = None) -> list[tuple[LayerRow, list[LayerRow]]]:
    """Each top-level row or block (folded to depth 1) with the rows inside it (blocks nested
    deeper than ``depth`` folded into one row; None: every layer)."""
    folded = result.fold(1)
    out: list[tuple[LayerRow, list[LayerRow]]] = []
    rows = iter(result.fold(depth))
    pending = next(rows, None)
    for block in folded:
        inside = []
        while pending is not None and (pending.name == block.name or pending.name.startswith(block.name + ".")):
            inside.append(pending)
            pending = next(rows, None)
        out.append((block, inside))
    return out


def table_html(result: NetResult, depth: int | None = None) -> str:
    """The layer table: consecutive top-level layers share a table; a block is a folded
    ``<details>`` whose summary is the block's row (summed costs) and whose body lists its rows
    (folded below ``depth``)."""
    head = "<table><colgroup>" + "".join(f'<col class="c{i}">' for i in range(len(COLUMNS))) + "</colgroup>"
    head += "<thead>" + _tr(COLUMNS, "th") + "</thead>"
    parts: list[str] = []
    loose: list[str] = []

    def flush() -> None:
        if loose:
            parts.append(head + "<tbody>" + "".join(loose) + "</tbody></table>")
            loose.clear()

    layers = Counter(row.name.partition(".")[0] for row in result.rows)
    for block, inside in blocks(result, depth):
        if len(inside) == 1 and inside[0].name == block.name:
            loose.append(_tr(_cells(result, block)))
            continue
        flush()
        cells = _cells(result, block)
        cells[1] = f"{cells[1]} ({layers[block.name]:,} layers)"
        summary = "<table><colgroup>" + "".join(f'<col class="c{i}">' for i in range(len(COLUMNS))) + "</colgroup>"
        summary += "<tbody>" + _tr(cells) + "</tbody></table>"
        body = "".join(_tr(_cells(result, row)) for row in inside)
        parts.append(f"<details><summary>{summary}</summary>{head}<tbody>{body}</tbody></table></details>")
    flush()
    return "\n".join(parts)


def bars_svg(result: NetResult, limit: int = 24) -> str:
    """MACs and parameters per top-level block, as two horizontal bars per block (the largest
    block fills its bar; each label gives the block's share of the total)."""
    folded = [b for b, _ in blocks(result)]
    totals = result.totals()
    shown = [b for b in folded if b.macs or b.params][:limit]
    rest = folded[len(shown) :] if len(folded) > limit else []
    rows = [(b.name, b.macs, b.params) for b in shown]
    if rest:
        rows.append((f"({len(rest)} more)", sum(b.macs for b in rest), sum(b.params for b in rest)))
    label_w, bar_w, row_h = 150, 300, 26
    top_macs = max((m for _, m, _ in rows), default=0) or 1
    top_params = max((p for _, _, p in rows), default=0) or 1
    svg = Svg()
    svg.text(label_w, 12, "MACs", class_="muted")
    svg.text(label_w + bar_w + 90, 12, "params", class_="muted")
    for i, (name, macs, params) in enumerate(rows):
        y = 20 + i * row_h
        svg.text(label_w - 8, y + 14, name[:22], text_anchor="end")
        for offset, value, total, top, cls in (
            (label_w, macs, totals.macs, top_macs, "mac"),
            (label_w + bar_w + 90, params, totals.params, top_params, "par"),
        ):
            share = value / total if total else 0.0
            length = bar_w * value / top  # the largest block fills the bar; the label gives its share
            svg.rect(offset, y + 3, max(length, 0.5), 16, tip=f"{name}: {value:,} ({share:.1%})", class_=cls)
            svg.text(offset + length + 4, y + 15, f"{compact(value)} · {share:.0%}", class_="muted")
    width, height = label_w + 2 * bar_w + 200, 28 + len(rows) * row_h
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">{svg.fragment()}</svg>'


def rf_points(result: NetResult) -> list[tuple[int, float, float, str]]:
    """(depth, largest field size, largest effective stride, layer) for every exact spatial field."""
    points = []
    for depth, row in enumerate(result.rows, start=1):
        if row.field and row.rf_status == EXACT:
            points.append((depth, float(max(a.size for a in row.field)), float(max(a.jump for a in row.field)), row.name))
    return points


def rf_svg(result: NetResult) -> str:
    """Receptive-field size and effective stride against depth (layer index), log2 y axis."""
    points = rf_points(result)
    if not points:
        return "<p>No layer has an exact spatial receptive field.</p>"
    width, height, left, bottom = 760, 280, 50, 30
    top_value = max(*(p[1] for p in points), *(p[2] for p in points), 2.0)
    levels = math.ceil(math.log2(top_value))
    plot_w, plot_h = width - left - 20, height - bottom - 20
    last = max(p[0] for p in points)

    def xy(depth: int, value: float) -> tuple[float, float]:
        return left + plot_w * (depth - 1) / max(last - 1, 1), 20 + plot_h * (1 - math.log2(max(value, 1)) / levels)

    svg = Svg()
    for level in range(levels + 1):
        _, y = xy(1, 2.0**level)
        svg.line(left, y, left + plot_w, y, class_="grid")
        svg.text(left - 6, y + 4, f"{2**level:,}", text_anchor="end", class_="muted")
    svg.text(left + plot_w / 2, height - 4, f"depth (layer 1 to {last:,})", text_anchor="middle", class_="muted")
    step = max(1, len(points) // 1500)  # keep the polyline small for very deep networks
    sampled = points[::step] + ([points[-1]] if (len(points) - 1) % step else [])
    for cls, values in (("rfline", [(p[0], p[1]) for p in sampled]), ("stline", [(p[0], p[2]) for p in sampled])):
        coords = " ".join("{:.1f},{:.1f}".format(*xy(depth, value)) for depth, value in values)
        svg.add("polyline", points=coords, class_=cls)
    final = points[-1]
    x, y = xy(final[0], final[1])
    svg.add("circle", cx=x, cy=y, r=3.5, class_="end")
    svg.text(x - 6, y - 8, f"{final[3]}: field {final[1]:g}, stride {final[2]:g}", text_anchor="end")
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">{svg.fragment()}</svg>'


def flow_svg(result: NetResult) -> str:
    """The shape flow: the input and each top-level block's output as a box (height ~ spatial
    size, width ~ log2 channels) with its shape."""
    stages = [("input", result.input_shape)] + [(b.name, b.output_shape) for b, _ in blocks(result)]
    if len(stages) > 80:
        stages = [*stages[:79], stages[-1]]
    largest = max((math.prod(s[1:]) if len(s) > 1 else 1) for _, s in stages)
    svg = Svg()
    x = 40.0  # room for the first label, centred on a narrow box
    for i, (name, shape) in enumerate(stages):
        spatial = math.prod(shape[1:]) if len(shape) > 1 else 1
        h = 14 + 90 * math.sqrt(spatial / largest)
        w = 8 + 6 * math.log2(max(shape[0], 1))
        svg.rect(x, 120 - h / 2, w, h, tip=f"{name}: {shape_text(shape, result.spec.layout)}", class_="blockbox", rx=2)
        svg.text(x + w / 2, 185 + 14 * (i % 2), shape_text(shape, result.spec.layout), text_anchor="middle", class_="muted")
        svg.text(x + w / 2, 20 + 14 * (i % 2), name[:18], text_anchor="middle")
        x += max(w, 84) + 6
    width = x + 10
    return f'<svg width="{width:.0f}" height="215" viewBox="0 0 {width:.0f} 215" role="img">{svg.fragment()}</svg>'


def _cards(result: NetResult) -> str:
    totals, batch = result.totals(), result.batch
    spatial = [row for row in result.rows if row.field and row.rf_status == EXACT]
    field = "—"
    if spatial:
        last = spatial[-1]
        field = "x".join(rf.fmt(a.size) for a in last.field or ()) + f" ({last.name})"
    per = f" (batch {batch})" if batch != 1 else ""
    cards = [
        ("params", f"{totals.params:,}"),
        (f"MACs{per}", f"{batch * totals.macs:,}"),
        (f"FLOPs{per} = 2 × MACs", f"{batch * totals.flops:,}"),
        (f"other ops{per}", f"{batch * totals.other_ops:,}"),
        (f"activations{per}", f"{batch * totals.activations:,} ({size_text(4 * batch * totals.activations)} fp32)"),
        ("layers", f"{totals.layers:,}"),
        ("receptive field of the last spatial layer", field),
    ]
    return '<div class="cards">' + "".join(f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in cards) + "</div>"


def _checks(result: NetResult) -> str:
    if not result.expectations:
        return ""
    items = "".join(
        f'<li class="{"good" if e.ok else "bad"}">{"✓" if e.ok else "✗"} {escape(e.message)}</li>' for e in result.expectations
    )
    held = sum(e.ok for e in result.expectations)
    return f"<h2>Expectations: {held} of {len(result.expectations)} hold</h2><ul class=notes>{items}</ul>"


def render_html(result: NetResult, depth: int | None = None) -> str:
    """The report (module docstring); the table folds at the top level and unfolds on click."""
    notes = result.warning_summary()
    notes_html = f"<h2>Notes</h2><ul class=notes>{''.join(f'<li>{escape(n)}</li>' for n in notes)}</ul>" if notes else ""
    title = escape(result.name)
    legend_rf = (
        '<p class="legend"><span><i class="sw" style="background:var(--rf)"></i>receptive-field size (largest axis, pixels)</span>'
        '<span><i class="sw" style="background:var(--stride)"></i>effective stride (dashed)</span><span>one point per layer: a shortcut or branch layer has its own, smaller field</span></p>'
    )
    legend = legend_lines(result, result.rows)
    legend_html = f"<ul class=notes>{''.join(f'<li>{escape(line)}</li>' for line in legend)}</ul>" if legend else ""
    stopped = "" if result.complete else '<p class="bad">Stopped at the failing layer: the report covers the layers before it.</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>{title} — convcalc report</title><style>{CSS}</style></head>
<body>
<h1>{title}</h1>
<p class="sub">input {escape(shape_text(result.input_shape, result.spec.layout))} → output {escape(shape_text(result.output_shape, result.spec.layout))}
· {escape(result.spec.source)} · exact counts by convcalc (MACs = multiply-accumulates of convolutions and linear layers)</p>
{stopped}{_cards(result)}
<h2>Shape flow</h2><div class="scroll">{flow_svg(result)}</div>
<h2>Where the MACs and parameters go (per top-level block)</h2><div class="scroll">{bars_svg(result)}</div>
<h2>Receptive field and effective stride against depth</h2>{legend_rf}<div class="scroll">{rf_svg(result)}</div>
<h2>Layers</h2><p><button onclick="setAll(true)">expand all</button> <button onclick="setAll(false)">collapse all</button></p>
<div class="scroll">{table_html(result, depth)}</div>{legend_html}
{_checks(result)}{notes_html}
<script>{SCRIPT}</script>
</body></html>
"""
