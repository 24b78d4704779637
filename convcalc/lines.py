"""Mappings that remember the YAML line of themselves and of each key (no yaml import here)."""

from __future__ import annotations

from collections.abc import Mapping


class LineDict(dict[str, object]):
    """A mapping from YAML that knows its own line and the line of each key."""

    line: int | None = None
    lines: dict[str, int]

    def __init__(self) -> None:
        super().__init__()
        self.lines = {}


def line_of(data: Mapping[str, object], key: str | None = None) -> int | None:
    """The line of ``data`` (or of its ``key``) when it came from YAML, else None."""
    if not isinstance(data, LineDict):
        return None
    if key is not None and key in data.lines:
        return data.lines[key]
    return data.line
