"""Render reports as text tables, JSON, CSV or Markdown (the only place that scales to K/M/G).

The text renderer is a small aligned-column printer, so single-layer commands never pay for
importing rich; the network renderer uses rich.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from convcalc.parse.values import format_shape


class Format(str, Enum):
    """Output formats of the single-layer commands."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


Cell = str | int


@dataclass
class Table:
    """Headers, rows of cells, and text lines to print before/after (title, notes)."""

    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str = ""
    notes: list[str] = field(default_factory=list)


def human(value: int) -> str:
    """``1,228,800 (1.23 M)``; exact below a million."""
    if abs(value) < 1_000_000:
        return f"{value:,}"
    for scale, suffix in ((10**12, "T"), (10**9, "G"), (10**6, "M")):
        if abs(value) >= scale:
            return f"{value:,} ({value / scale:.3g} {suffix})"
    return f"{value:,}"


def _cell_text(cell: Cell) -> str:
    return human(cell) if isinstance(cell, int) else cell


def text(table: Table) -> str:
    """Aligned plain-text table; numbers right-aligned."""
    cells = [[_cell_text(c) for c in row] for row in table.rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(table.headers)]
    numeric = [all(isinstance(row[i], int) for row in table.rows) and table.rows for i in range(len(table.headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [table.title] if table.title else []
    out.append(line(table.headers))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in cells)
    out.extend(table.notes)
    return "\n".join(out)


def markdown(table: Table) -> str:
    """GitHub-flavoured Markdown table (exact integers)."""
    out = [f"**{table.title}**", ""] if table.title else []
    out.append("| " + " | ".join(table.headers) + " |")
    out.append(
        "|"
        + "|".join("---:" if table.rows and isinstance(table.rows[0][i], int) else "---" for i in range(len(table.headers)))
        + "|"
    )
    out.extend("| " + " | ".join(str(c) for c in row) + " |" for row in table.rows)
    if table.notes:
        out.append("")
        out.extend(f"- {n}" for n in table.notes)
    return "\n".join(out)


def csv_text(table: Table) -> str:
    """CSV with a header row (exact integers, no notes)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.headers)
    writer.writerows(table.rows)
    return buffer.getvalue().rstrip("\n")


def to_json(data: object) -> str:
    """Stable JSON (keys in insertion order, 2-space indent)."""
    import json

    return json.dumps(data, indent=2, ensure_ascii=False)


RENDERERS: dict[Format, Callable[[Table], str]] = {Format.table: text, Format.csv: csv_text, Format.markdown: markdown}


def render(fmt: Format, table: Table, data: object) -> str:
    """``data`` for JSON, ``table`` for the others."""
    return to_json(data) if fmt is Format.json else RENDERERS[fmt](table)


def shape_text(shape: Sequence[int]) -> str:
    """``3x224x224``."""
    return format_shape(shape)
