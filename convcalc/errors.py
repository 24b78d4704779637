"""The one exception hierarchy of convcalc.

Domain modules raise these; only :mod:`convcalc.cli` turns them into a message and an
exit code (2 for bad input, 1 for a failed check).
"""

from collections.abc import Iterable
from typing import NamedTuple

SUGGEST_CUTOFF = 0.5
"""How close (difflib ratio) a known name must be to an unknown one to be suggested."""


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
