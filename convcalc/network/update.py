"""``check --update``: write a network's current totals as its spec's top-level ``expect`` block.

The file is edited as text, never re-dumped through a YAML writer: the lines of the existing
``expect`` block (located with the line numbers the loader tracks, :mod:`convcalc.parse.located`)
are replaced, or a block is appended, so every other byte of the file (comments, layout, key
order, number spellings) stays as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

from convcalc.errors import Location, SpecError
from convcalc.network.result import NetResult, NetworkError
from convcalc.parse.located import LineDict

UPDATED = ("output_shape", "params", "macs")
"""The expectations ``--update`` writes (network totals per sample, the output in the spec's layout)."""

_EXPECT_KEY = re.compile(r"""^(expect|'expect'|"expect")[ \t]*:""")


def expect_lines(result: NetResult) -> list[str]:
    """The new ``expect`` block, one text line each."""
    totals = result.totals()
    shape = result.spec.to_layout(result.output_shape)
    return ["expect:", f"  output_shape: [{', '.join(map(str, shape))}]", f"  params: {totals.params}", f"  macs: {totals.macs}"]


def _block_end(lines: list[str], start: int, key_lines: dict[str, int]) -> int:
    """Index one past the last line of the block whose key is on line index ``start``: up to the
    next top-level key, less the blank lines and column-0 comments just before it (they belong to
    what follows)."""
    end = min((n - 1 for n in key_lines.values() if n - 1 > start), default=len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return end


def updated_text(text: str, data: LineDict, block: list[str], source: str) -> str:
    """``text`` with its top-level ``expect`` block replaced by ``block`` (appended when absent)."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    new = [line + newline for line in block]
    if "expect" not in data.lines:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        separator = [newline] if lines and lines[-1].strip() else []
        return "".join([*lines, *separator, *new])
    start = data.lines["expect"] - 1
    if not _EXPECT_KEY.match(lines[start]):
        raise SpecError(
            "the top-level 'expect' is not a block key at the start of its line, so it cannot be edited in place.",
            where=Location(source, start + 1),
            hint="Write the spec's top level in block style ('expect:' at column 0), or update the numbers by hand.",
        )
    return "".join([*lines[:start], *new, *lines[_block_end(lines, start, data.lines) :]])


def update_file(path: str) -> str:
    """Evaluate the spec at ``path`` and write its totals as its ``expect`` block; returns a line
    saying what was written. Bad input (or a spec that does not evaluate) raises, the file untouched."""
    from convcalc.network.evaluate import evaluate_network
    from convcalc.network.spec import load_network
    from convcalc.parse.yaml import load_text

    if path == "-":
        raise SpecError("--update needs a spec file, not standard input.", hint="Name the file: convcalc check --update FILE.")
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
    block = expect_lines(result)
    dropped = [key for key in (spec.expect or {}) if key not in UPDATED]
    file.write_bytes(updated_text(text, data, block, path).encode("utf-8"))
    note = f" (replaced: {', '.join(dropped)})" if dropped else ""
    return f"updated {path}: " + ", ".join(line.strip() for line in block[1:]) + note
