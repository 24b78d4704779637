"""The one exception hierarchy of convcalc.

Domain modules raise these; only :mod:`convcalc.cli` turns them into a message and an
exit code (2 for bad input, 1 for a failed check).
"""

import re
from collections.abc import Iterable
from typing import NamedTuple

SUGGEST_CUTOFF = 0.5
"""How close (difflib ratio) a known name must be to an unknown one to be suggested."""


CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters that steer a terminal or reorder text (escape sequences, newlines, bidi overrides)."""


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with every :data:`CONTROL` character (except those in ``keep``) written as ``\\xNN``/``\\uNNNN``."""
    return CONTROL.sub(lambda m: m.group() if m.group() in keep else repr(m.group())[1:-1], text)


def check_printable(text: str, what: str) -> None:
    """Refuse a name that would carry control characters into tables, CSV or Markdown."""
    if CONTROL.search(text):
        raise SpecError(
            f"{what} '{escape_controls(text)}' contains control characters.",
            hint="Names may not contain escape sequences, newlines or tabs.",
        )


class Location(NamedTuple):
    """Where a value came from: a file (or ``<stdin>``/``<flags>``) and a 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


class ConvcalcError(Exception):
    """Base class: a one-paragraph message naming what is wrong and how to fix it."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        layer: str | None = None,
        where: Location | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.layer = layer
        self.where = where
        self.hint = hint

    def with_context(self, *, layer: str | None = None, where: Location | None = None) -> "ConvcalcError":
        """Fill in the layer name / location if they are not known yet (returns ``self``)."""
        if self.layer is None:
            self.layer = layer
        if self.where is None:
            self.where = where
        return self

    def __str__(self) -> str:
        parts = []
        if self.where is not None:
            parts.append(f"{self.where}:")
        if self.layer is not None:
            parts.append(f"layer '{self.layer}':")
        parts.append(self.message)
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class SpecError(ConvcalcError):
    """A spec or flag is malformed: unknown type or field, wrong value type, bad YAML."""


class ShapeError(ConvcalcError):
    """A well-formed spec describes an impossible layer (output < 1, groups mismatch ...)."""


class LimitError(ConvcalcError):
    """A spec exceeds a documented size limit (layers, repeats, tensor elements, nesting)."""


class CheckFailure(ConvcalcError):
    """An expectation written in a spec does not hold (exit code 1)."""

    exit_code = 1


def close_names(word: str, options: Iterable[str], n: int = 1) -> list[str]:
    """The ``n`` known names closest to an unknown ``word`` (for "did you mean")."""
    import difflib  # only on the error path

    return difflib.get_close_matches(word, list(options), n=n, cutoff=SUGGEST_CUTOFF)


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` (the closest known name) or an empty string."""
    close = close_names(word, options)
    return f" Did you mean '{close[0]}'?" if close else ""
