"""Exact products that carry their own explanation, so no formula is written twice.

``product("MACs", [("H_out·W_out", 25), ("C_out", 128), ...])`` returns the integer value and
the line ``MACs = H_out·W_out × C_out × ... = 25 × 128 × ... = 86,400`` that ``--explain``
prints. The value is computed from the same terms the text shows.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

Term = tuple[str, int]


class Product(NamedTuple):
    """A named product of integer terms."""

    label: str
    terms: tuple[Term, ...]

    @property
    def value(self) -> int:
        return math.prod(value for _, value in self.terms)

    def explain(self) -> str:
        if not self.terms:
            return f"{self.label} = 0"
        names = " × ".join(name for name, _ in self.terms)
        values = " × ".join(f"{value:,}" for _, value in self.terms)
        return f"{self.label} = {names} = {values} = {self.value:,}"


def product(label: str, terms: Sequence[Term]) -> Product:
    """Build a :class:`Product` (see module docstring)."""
    return Product(label, tuple(terms))


def positions(sizes: Sequence[int], prefix: str) -> Term:
    """The number of spatial positions as one term, e.g. ``("H_out·W_out", 25)``."""
    return ("·".join(f"{n}_{prefix}" for n in axis_names(len(sizes))), math.prod(sizes))


def kernel_term(kernel: Sequence[int]) -> Term:
    """``("k_h·k_w", 9)`` for a 3x3 kernel."""
    if len(kernel) == 1:
        return ("k", kernel[0])
    return ("·".join(f"k_{n.lower()}" for n in axis_names(len(kernel))), math.prod(kernel))


AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def axis_names(rank: int) -> tuple[str, ...]:
    """Conventional names of the spatial axes for ``rank`` 1..3."""
    return AXIS_NAMES.get(rank, tuple(f"x{i}" for i in range(rank)))
