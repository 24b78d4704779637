"""``check --update``: write a network's current totals as its spec's top-level ``expect`` block.

The file is edited as text, never re-dumped through a YAML writer: the lines of the existing
``expect`` block (located with the line numbers the loader tracks, :mod:`convcalc.parse.located`)
are replaced, or a block is appended, so every other byte of the file (comments, layout, key
order, number spellings) stays as it was.
"""

from __future__ import annotations

import re
from collections.abc import Set
from pathlib import Path

from convcalc.errors import Location, SpecError
from convcalc.network.result import NetResult, NetworkError
from convcalc.parse.located import LineDict

WRITTEN = ("output_shape", "params", "macs")
"""The expectations ``--update`` always writes (network totals per sample; the output shape in the
spec's layout). ``flops`` is updated too when the spec states it; other keys (``max_*`` budgets,
``receptive_field``) are kept as written."""

_EXPECT_KEY = re.compile(r"""^(expect|'expect'|"expect")[ \t]*:""")
_VALUE_LINE = re.compile(
    r"^(?P<head>[ \t]+(?P<key>[A-Za-z_]+)[ \t]*:[ \t]*)(?P<value>[^#\r\n]*?)(?P<tail>[ \t]+#[^\r\n]*)?(?P<end>\r?\n)?$"
)
"""One ``  key: value  # comment`` line of a block mapping."""


def current_values(result: NetResult) -> dict[str, str]:
    """The values ``--update`` may write, as YAML text."""
    totals = result.totals()
    shape = result.spec.to_layout(result.output_shape)
    return {
        "output_shape": f"[{', '.join(map(str, shape))}]",
        "params": str(totals.params),
        "macs": str(totals.macs),
        "flops": str(totals.flops),
    }


def _block_end(lines: list[str], start: int, key_lines: dict[str, int]) -> int:
    """Index one past the last line of the block whose key is on line index ``start``: up to the
    next top-level key, less the blank lines and column-0 comments just before it (they belong to
    what follows)."""
    end = min((n - 1 for n in key_lines.values() if n - 1 > start), default=len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return end


def _edit_block(
    block: list[str], start: int, expect: object, values: dict[str, str], holding: Set[str], newline: str
) -> list[str] | None:
    """``block`` (the lines of ``expect:`` and its entries, the first at file line index ``start``)
    with the value of each written key that does not hold replaced where it stands (its comment
    kept; one that holds keeps its spelling, e.g. ``25_557_032``) and the missing ones appended; None when the block is not one ``key: value`` line per such key (flow style,
    multi-line values): the caller then rewrites the whole block."""
    if not isinstance(expect, LineDict) or block[0].split(":", 1)[1].split("#", 1)[0].strip():
        return None
    out = list(block)
    indent = "  "
    for key in [k for k in expect if k in values and k not in holding]:
        index = expect.lines.get(key, 0) - 1 - start
        match = _VALUE_LINE.match(out[index]) if 0 < index < len(out) else None
        if match is None or match["key"] != key or not match["value"].strip():
            return None
        out[index] = match["head"] + values[key] + (match["tail"] or "") + (match["end"] or "")
        indent = out[index][: len(out[index]) - len(out[index].lstrip())]
    if not out[-1].endswith(("\n", "\r")):
        out[-1] += newline
    return out + [f"{indent}{key}: {values[key]}{newline}" for key in WRITTEN if key not in expect]


def updated_text(
    text: str, data: LineDict, values: dict[str, str], source: str, holding: Set[str] = frozenset()
) -> str:
    """``text`` with the top-level ``expect`` block updated to ``values`` in place (appended when
    absent); the expectations in ``holding`` already hold and keep their text."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    fresh = [f"expect:{newline}", *(f"  {key}: {values[key]}{newline}" for key in WRITTEN)]
    if "expect" not in data.lines:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        separator = [newline] if lines and lines[-1].strip() else []
        return "".join([*lines, *separator, *fresh])
    start = data.lines["expect"] - 1
    if not _EXPECT_KEY.match(lines[start]):
        raise SpecError(
            "the top-level 'expect' is not a block key at the start of its line, so it cannot be edited in place.",
            where=Location(source, start + 1),
            hint="Write the spec's top level in block style ('expect:' at column 0), or update the numbers by hand.",
        )
    end = _block_end(lines, start, data.lines)
    edited = _edit_block(lines[start:end], start, data["expect"], values, holding, newline)
    return "".join([*lines[:start], *(fresh if edited is None else edited), *lines[end:]])


def update_file(path: str) -> str:
    """Evaluate the spec at ``path`` and write its totals as its ``expect`` block; returns a line
    saying what was written. Bad input (or a spec that does not evaluate) raises, the file untouched."""
    from convcalc.network.evaluate import evaluate_network
    from convcalc.network.library import resolve
    from convcalc.network.spec import load_network
    from convcalc.parse.yaml import load_text

    if path == "-":
        raise SpecError("--update needs a spec file, not standard input.", hint="Name the file: convcalc check --update FILE.")
    path = resolve(path)[0]  # a library name updates its file
    spec = load_network(path)
    try:
        result = evaluate_network(spec)
    except NetworkError as err:
        raise err.cause from None
    file = Path(path)
    text = file.read_bytes().decode("utf-8")  # bytes as they are: no newline translation
    data = load_text(text, path)
    if not isinstance(data, LineDict):
        raise SpecError(f"{path} is not a mapping at the top level.", where=Location(path, 1))
    values = current_values(result)
    holding = {e.what for e in result.expectations if e.ok}
    file.write_bytes(updated_text(text, data, values, path, holding).encode("utf-8"))
    written = [key for key in values if key in WRITTEN or key in (spec.expect or {})]
    return f"updated {path}: " + ", ".join(f"{key} {values[key]}" for key in written)
