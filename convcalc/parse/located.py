"""Mappings that remember the YAML line of themselves and of each key (no yaml import here)."""

from __future__ import annotations

from collections.abc import Mapping


class LineDict(dict[str, object]):
    """A mapping from YAML that knows its own line and the line of each key."""

    line: int | None = None
    lines: dict[str, int]
    dynamic: bool = True
    """False when no string inside holds a ``$`` (set by the loader, so template substitution
    skips the mapping; a value shared through a YAML alias is walked once, when it is loaded)."""

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


class LineList(list[object]):
    """A sequence from YAML that knows its own line and the line of each item."""

    line: int | None = None
    item_lines: list[int]
    dynamic: bool = True
    """As :attr:`LineDict.dynamic`."""

    def __init__(self) -> None:
        super().__init__()
        self.item_lines = []


def line_of_item(data: object, index: int) -> int | None:
    """The line of item ``index`` of a YAML sequence, else None."""
    if isinstance(data, LineList) and 0 <= index < len(data.item_lines):
        return data.item_lines[index]
    return None


def is_dynamic(value: object) -> bool:
    """Whether substituting template expressions could change ``value`` (a ``$`` in some string)."""
    if isinstance(value, str):
        return "$" in value
    if isinstance(value, (LineDict, LineList)):
        return value.dynamic
    if isinstance(value, dict):
        return any(is_dynamic(v) for v in value.values())
    if isinstance(value, list):
        return any(is_dynamic(v) for v in value)
    return False


def type_name(value: object) -> str:
    """The plain type name of a loaded value for messages (``list`` for a :class:`LineList`)."""
    for base in (bool, int, float, str, list, dict):
        if isinstance(value, base):
            return base.__name__
    return type(value).__name__
