"""The output formats and the one table printer: text, JSON, CSV or Markdown.

The text printer is a small aligned-column printer (no rich: single-layer commands never pay for
importing it, and it lays out a 10,000-row network in milliseconds). Numbers are scaled for
people only in :mod:`convcalc.render.units`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from convcalc.errors import SpecError
from convcalc.parse.values import Layout, format_shape, from_channels_first
from convcalc.render.units import human


class Format(str, Enum):
    """Output formats of every report (layers, networks, run); ``check`` has its own (:class:`convcalc.render.check.CheckFormat`).

    ``html`` is a network report only (:mod:`convcalc.render.html`): a table of one layer has no
    page to fill, so :data:`TABLE_FORMATS` (what :func:`render` takes) leaves it out."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"


Cell = str | int


@dataclass
class Table:
    """Headers, rows of cells, and text lines to print before/after (title, notes)."""

    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str = ""
    notes: list[str] = field(default_factory=list)


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = (), rule: bool = False) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the columns in ``right`` are
    right-aligned; ``rule`` puts a line of dashes under the headers. Linear in the number of cells."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    right = set(right)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(headers), *(["  ".join("-" * w for w in widths)] if rule else []), *(line(row) for row in rows)]


def text(table: Table) -> str:
    """Aligned plain-text table; numbers (columns of ints) right-aligned and scaled (:func:`~convcalc.render.units.human`)."""
    cells = [[human(c) if isinstance(c, int) else c for c in row] for row in table.rows]
    numeric = [i for i in range(len(table.headers)) if table.rows and all(isinstance(row[i], int) for row in table.rows)]
    out = [table.title] if table.title else []
    out.extend(aligned(table.headers, cells, numeric, rule=True))
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

TABLE_FORMATS: tuple[Format, ...] = tuple(f for f in Format if f is Format.json or f in RENDERERS)
"""The formats of a :class:`Table` report (single layers, tools, run): JSON and the :data:`RENDERERS`."""


def table_format(fmt: Format) -> Format:
    """``fmt`` if a :class:`Table` report has it (:data:`TABLE_FORMATS`); a network-only format is bad input (exit 2)."""
    if fmt not in TABLE_FORMATS:
        raise SpecError(
            f"{fmt.value} is a format of network reports only.",
            hint=f"Use {', '.join(f.value for f in TABLE_FORMATS)} here, or 'convcalc net SPEC --format {fmt.value} -o FILE'.",
        )
    return fmt


def render(fmt: Format, table: Table, data: object) -> str:
    """``data`` for JSON, ``table`` for the others (:func:`table_format` refuses the rest)."""
    return to_json(data) if table_format(fmt) is Format.json else RENDERERS[fmt](table)


def shape_text(shape: Sequence[int], layout: str = Layout.channels_first) -> str:
    """A channels-first shape as the user writes it in ``layout``: ``3x224x224`` or ``224x224x3``."""
    return format_shape(from_channels_first(shape, layout))
