"""Inverse questions: which padding keeps the size, which kernel/stride/padding/dilation map i to o.

Solutions are found by exhaustive integer search over bounded ranges using the forward
formulas of :mod:`convcalc.primitives`, so they are exact by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from convcalc.errors import ShapeError
from convcalc.primitives.conv import conv_out_size, effective_kernel, transposed_out_size
from convcalc.primitives.padding import resolve_conv_padding


@dataclass(frozen=True)
class Solution:
    """One configuration mapping ``size_in`` to ``size_out``."""

    kernel: int
    stride: int
    padding: tuple[int, int]
    dilation: int
    output_padding: int = 0


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF/Keras 'same' pair for one axis (out = ceil(i/s), odd unit at the end)."""
    pairs, _ = resolve_conv_padding("same", (size,), (kernel,), (stride,), (dilation,))
    return pairs[0]


def _or_zero(formula: Callable[..., int], *args: object) -> int:
    """The forward formula's size, or 0 where it refuses the configuration."""
    try:
        return formula(*args, "L")
    except ShapeError:
        return 0


def _range(value: int | None, limit: int, low: int = 1) -> range:
    return range(value, value + 1) if value is not None else range(low, limit + 1)


@dataclass(frozen=True)
class Search:
    """Fixed values (None: search) and the bounds of the search."""

    kernel: int | None = None
    stride: int | None = None
    padding: int | None = None
    dilation: int | None = None
    max_kernel: int = 11
    max_stride: int = 8
    max_dilation: int = 4

    def candidates(self) -> Iterator[tuple[int, int, int, int]]:
        """Every ``(kernel, stride, padding, dilation)`` with symmetric padding below the dilated kernel."""
        for k in _range(self.kernel, self.max_kernel):
            for d in _range(self.dilation, self.max_dilation if k > 1 else 1):
                for s in _range(self.stride, self.max_stride):
                    for p in _range(self.padding, effective_kernel(k, d) - 1, low=0):
                        yield k, s, p, d


def solve_conv(size_in: int, size_out: int, search: Search) -> Iterator[Solution]:
    """Symmetric-padding convolutions with ``floor((i + 2p - d(k-1) - 1)/s) + 1 == o``."""
    for k, s, p, d in search.candidates():
        if _or_zero(conv_out_size, size_in, k, s, (p, p), d) == size_out:
            yield Solution(k, s, (p, p), d)


def solve_transposed(size_in: int, size_out: int, search: Search) -> Iterator[Solution]:
    """Transposed convolutions with ``(i-1)s - 2p + d(k-1) + op + 1 == o`` and ``op < max(s, d)``:
    the output_padding that closes the gap, validated by the forward formula (the size with
    ``op = 0`` may be < 1 and still be rescued by ``op > 0``)."""
    for k, s, p, d in search.candidates():
        op = size_out - ((size_in - 1) * s - 2 * p + effective_kernel(k, d))
        if 0 <= op < max(s, d) and _or_zero(transposed_out_size, size_in, k, s, (p, p), d, op) == size_out:
            yield Solution(k, s, (p, p), d, op)


def check_sizes(size_in: int, size_out: int | None) -> None:
    """Sizes must be positive."""
    if size_in < 1 or (size_out is not None and size_out < 1):
        raise ShapeError("sizes must be >= 1.")
