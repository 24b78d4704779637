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
    """Headers, rows of cells, and text lines to print before/after (title, notes).

    ``drop`` (column indices, least needed first) and ``fold`` (a text column that may wrap onto
    continuation lines) say how the text printer narrows the table to fit a terminal
    (:func:`fit_width`); other formats ignore them."""

    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str = ""
    notes: list[str] = field(default_factory=list)
    drop: tuple[int, ...] = ()
    fold: int | None = None


MIN_FOLD = 12
"""Narrowest a folded column gets; below it the table stays wider than the terminal."""


def fit_width() -> int | None:
    """The width text tables must fit: ``$COLUMNS`` when set, else the terminal's when standard
    output is one, else None (no limit: a pipe or file gets the full table)."""
    import os
    import sys

    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        import shutil

        return shutil.get_terminal_size().columns
    return None


def _fold_cell(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def aligned(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Iterable[int] = (),
    rule: bool = False,
    *,
    width: int | None = None,
    drop: Sequence[int] = (),
    fold: int | None = None,
) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the columns in ``right`` are
    right-aligned; ``rule`` puts a line of dashes under the headers. Linear in the number of cells.

    With a ``width``, a table wider than it first hides the columns in ``drop`` (in that order)
    until it fits, then wraps column ``fold`` onto continuation lines; a last line names the hidden
    columns. Without one (or when the table fits) every column is printed as it is."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    shown = list(range(len(headers)))
    limit = width if width is not None else sum(widths) + 2 * len(widths)

    def total() -> int:
        return sum(widths[i] for i in shown) + 2 * (len(shown) - 1)

    for column in drop:
        if total() <= limit:
            break
        shown.remove(column)
    folding = fold if fold is not None and fold in shown and total() > limit else None
    if folding is not None:
        widths[folding] = max(MIN_FOLD, widths[folding] - (total() - limit))
    right = set(right)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cells[i].rjust(widths[i]) if i in right else cells[i].ljust(widths[i]) for i in shown).rstrip()

    out = [line(headers), *(["  ".join("-" * widths[i] for i in shown)] if rule else [])]
    for row in rows:
        if folding is None or len(row[folding]) <= widths[folding]:
            out.append(line(row))
            continue
        parts = _fold_cell(row[folding], widths[folding])
        out.extend(line([part if i == folding else (row[i] if n == 0 else "") for i in range(len(row))]) for n, part in enumerate(parts))
    hidden = [headers[i] for i in range(len(headers)) if i not in shown]
    if hidden:
        out.extend(fold_lines([f"(hidden to fit {limit} columns: {', '.join(hidden)}; --format csv has every column)"], width))
    return out


def fold_lines(lines: Iterable[str], width: int | None, indent: str = "  ") -> list[str]:
    """Lines longer than ``width`` wrapped, continuation lines indented (notes under a table)."""
    out: list[str] = []
    for text_line in lines:
        if width is None or len(text_line) <= width:
            out.append(text_line)
        else:
            import textwrap

            out.extend(textwrap.wrap(text_line, width, subsequent_indent=indent, break_on_hyphens=False))
    return out


def text(table: Table) -> str:
    """Aligned plain-text table; numbers (columns of ints) right-aligned and scaled (:func:`~convcalc.render.units.human`);
    narrowed to the terminal (:func:`fit_width`) as the table's ``drop``/``fold`` allow."""
    cells = [[human(c) if isinstance(c, int) else c for c in row] for row in table.rows]
    numeric = [i for i in range(len(table.headers)) if table.rows and all(isinstance(row[i], int) for row in table.rows)]
    width = fit_width()
    out = fold_lines([table.title], width) if table.title else []
    out.extend(aligned(table.headers, cells, numeric, rule=True, width=width, drop=table.drop, fold=table.fold))
    out.extend(fold_lines(table.notes, width))
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
