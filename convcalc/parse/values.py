"""Parse user values (flags or YAML scalars) into exact per-axis integers.

Accepted forms: ``3``, ``"3"``, ``"1x7"``, ``"1,7"``, ``[1, 7]``; padding additionally accepts
per-axis ``(before, after)`` pairs (``[[0, 1], [0, 1]]`` or ``"0:1x0:1"``) and the modes
``valid``, ``same``, ``full`` and ``causal``. Every size is bounded by :data:`MAX_DIM` so no
spec can ask for absurd tensors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Union

from convcalc.errors import LimitError, SpecError

MAX_DIM = 1 << 24
"""Largest accepted size of any single axis, kernel, stride or channel count (16,777,216)."""
MAX_DIGITS = 40
"""Most digits a written number may have (flags, ``--set``, YAML, expectations)."""
MAX_EXPONENT = 100
"""Largest decimal exponent of a written number (``1e-100``): an exact fraction of ``1e-100000000``
would need a hundred-million-digit integer (minutes), and more than 4,300 digits make Python's
``int()`` raise, so the text is checked before it is converted."""

PAD_MODES = ("valid", "same", "full", "causal")

Axes = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]
Padding = Union[str, Pairs]
"""A padding request: one of :data:`PAD_MODES`, or explicit ``(before, after)`` per axis."""

_SEP = re.compile(r"\s*[x×,*]\s*")


_EXPONENT = re.compile(r"[eE]\s*[+-]?\s*(\d+)")


def check_digits(text: str, field: str) -> None:
    """Refuse the text of a number with more than :data:`MAX_DIGITS` digits or an exponent beyond
    :data:`MAX_EXPONENT`, before converting it (its size would hide the work)."""
    digits = sum(char.isdigit() for char in text)
    if digits > MAX_DIGITS:
        raise LimitError(
            f"'{field}' is a number of {digits:,} digits; the limit is {MAX_DIGITS}.", hint="Write a smaller number."
        )
    exponent = _EXPONENT.search(text)
    if exponent is not None and int(exponent.group(1)) > MAX_EXPONENT:
        raise LimitError(
            f"'{field}' has the exponent {exponent.group(0)}; the limit is {MAX_EXPONENT}.", hint="Write a smaller number."
        )


def _int(value: object, field: str, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise SpecError(f"'{field}' must be an integer, got the boolean {value!r}.")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_DIGITS:  # an int from a flag or a computation: its text is not at hand
            raise LimitError(f"'{field}' is a number of more than {MAX_DIGITS} digits.", hint="Write a smaller number.")
        number = value
    elif isinstance(value, Fraction):  # an expression's exact result (``${c * 0.75}``)
        if value.denominator != 1:
            raise SpecError(
                f"'{field}' must be an integer, but its expression gives {value.numerator}/{value.denominator}.",
                hint="Sizes must end as whole numbers: round with // or make_divisible(v, 8).",
            )
        number = value.numerator
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(?:_\d+)*\s*", value)
    ):
        if isinstance(value, str):
            check_digits(value, field)
        number = int(value)
    else:
        raise SpecError(
            f"'{field}' must be an integer, got {value!r}.",
            hint="Write a whole number such as 3.",
        )
    if number < minimum:
        raise SpecError(f"'{field}' must be >= {minimum}, got {number}.")
    if number > MAX_DIM:
        raise LimitError(f"'{field}' = {number} exceeds the limit of {MAX_DIM:,}.")
    return number


def parse_int(value: object, field: str, *, minimum: int = 1) -> int:
    """One bounded integer ``>= minimum``."""
    return _int(value, field, minimum=minimum)


def _items(value: object) -> list[object]:
    if isinstance(value, str):
        text = value.strip().strip("()[]")
        if not text:
            return []
        return list(_SEP.split(text))
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def parse_axes(value: object, field: str, *, minimum: int = 1) -> Axes:
    """Per-axis integers: an int applies to every axis (returned as a 1-tuple)."""
    items = _items(value)
    if not items:
        raise SpecError(f"'{field}' is empty.", hint="Give an integer or per-axis values like 1x7.")
    return tuple(_int(item, field, minimum=minimum) for item in items)


def parse_shape(value: object, field: str = "input", min_sizes: int = 2) -> Axes:
    """A channels-first shape such as ``3x224x224`` (C, then 1 to 3 spatial sizes; ``min_sizes=1``
    also accepts a flat vector, e.g. ``25088`` for a linear layer)."""
    shape = parse_axes(value, field)
    if not min_sizes <= len(shape) <= 4:
        forms = "C, CxL, CxHxW or CxDxHxW" if min_sizes == 1 else "CxL, CxHxW or CxDxHxW"
        raise SpecError(
            f"'{field}' must have {min_sizes} to 4 sizes ({forms}), got {len(shape)}.",
            hint="Example: --in 3x224x224.",
        )
    return shape


def parse_padding(value: object, field: str = "padding") -> Padding:
    """A padding mode or explicit pairs: ``1``, ``1x2``, ``[[0,1],[1,2]]``, ``'0:1x1:2'``, ``same``."""
    if isinstance(value, str) and value.strip().lower() in PAD_MODES:
        return value.strip().lower()
    pairs: list[tuple[int, int]] = []
    for item in _items(value):
        if isinstance(item, str) and ":" in item:
            before, _, after = item.partition(":")
            pairs.append((_int(before, field, minimum=0), _int(after, field, minimum=0)))
        elif isinstance(item, Sequence) and not isinstance(item, str):
            if len(item) != 2:
                raise SpecError(
                    f"'{field}' pairs must be [before, after], got {list(item)!r}.",
                    hint="Example: padding: [[0, 1], [0, 1]].",
                )
            pairs.append((_int(item[0], field, minimum=0), _int(item[1], field, minimum=0)))
        else:
            size = _int(item, field, minimum=0)
            pairs.append((size, size))
    if not pairs:
        raise SpecError(f"'{field}' is empty.", hint=f"Give an integer, pairs or one of {', '.join(PAD_MODES)}.")
    return tuple(pairs)


def parse_bool(value: object, field: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0`` (YAML already maps most of these)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise SpecError(f"'{field}' must be true or false, got {value!r}.")


def broadcast(values: tuple[object, ...], rank: int, field: str) -> tuple[object, ...]:
    """Expand a 1-tuple to ``rank`` axes; refuse a tuple of the wrong length."""
    if len(values) == rank:
        return values
    if len(values) == 1:
        return values * rank
    raise SpecError(
        f"'{field}' has {len(values)} per-axis values but the layer has {rank} spatial axes.",
        hint=f"Give one value for every axis or {rank} values.",
    )


def broadcast_axes(values: Axes, rank: int, field: str) -> Axes:
    """:func:`broadcast` for integer axes."""
    return tuple(int(v) for v in broadcast(values, rank, field))  # type: ignore[call-overload]


def format_shape(shape: Sequence[int]) -> str:
    """``(3, 224, 224)`` -> ``3x224x224``."""
    return "x".join(str(size) for size in shape)


class Layout(str, Enum):
    """How a shape is written: ``channels_first`` (CxHxW, PyTorch) or ``channels_last`` (HxWxC, TF/Keras)."""

    channels_first = "channels_first"
    channels_last = "channels_last"


LAYOUTS = tuple(layout.value for layout in Layout)


def to_channels_first(shape: Sequence[int], layout: str) -> tuple[int, ...]:
    """A shape written in ``layout`` -> channels first (the channel axis moves from last to first)."""
    return (shape[-1], *shape[:-1]) if layout == Layout.channels_last and len(shape) > 1 else tuple(shape)


def from_channels_first(shape: Sequence[int], layout: str) -> tuple[int, ...]:
    """A channels-first shape -> as written in ``layout`` (inverse of :func:`to_channels_first`)."""
    return (*shape[1:], shape[0]) if layout == Layout.channels_last and len(shape) > 1 else tuple(shape)


@dataclass(frozen=True)
class Choice:
    """A closed set of string values (e.g. P3D variants)."""

    options: tuple[str, ...]

    def parse(self, value: object, field: str) -> str:
        text = str(value).strip()
        for option in self.options:
            if text.lower() == option.lower():
                return option
        raise SpecError(f"'{field}' must be one of {', '.join(self.options)}, got {value!r}.")
