"""Workspace budget and a reusable per-thread scratch arena.

Every kernel that needs scratch memory (padded input slabs, im2col columns,
Winograd tiles, ...) plans its buffers up front, asks :func:`reserve` for the
total, and carves the buffers out of one cached byte arena.  The arena is kept
between calls (a fresh allocation per call cost up to 1.9x in a prototype) and
only grows, so the memory a thread holds for scratch is the largest single
reservation, which the planners keep within :func:`get_workspace_budget`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from math import prod
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

DEFAULT_WORKSPACE_BUDGET = 64 << 20
"""Default scratch budget per kernel call, in bytes (64 MiB)."""

_ALIGN = 64
_BUDGET: ContextVar[int] = ContextVar("convcalc_workspace_budget", default=DEFAULT_WORKSPACE_BUDGET)
_LOCAL = threading.local()


def get_workspace_budget() -> int:
    """Return the scratch budget (bytes) that planners must stay within."""
    return _BUDGET.get()


def set_workspace_budget(nbytes: int) -> None:
    """Set the scratch budget (bytes) for the current context."""
    if nbytes <= 0:
        raise ValueError(f"workspace budget must be positive, got {nbytes}")
    _BUDGET.set(int(nbytes))


@contextmanager
def workspace_budget(nbytes: int) -> Iterator[None]:
    """Temporarily use ``nbytes`` as the scratch budget."""
    if nbytes <= 0:
        raise ValueError(f"workspace budget must be positive, got {nbytes}")
    token = _BUDGET.set(int(nbytes))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def buffer_bytes(shapes: Sequence[tuple[tuple[int, ...], DTypeLike]]) -> int:
    """Arena bytes needed to hold buffers of the given ``(shape, dtype)``."""
    return sum(_aligned(prod(shape) * np.dtype(dt).itemsize) for shape, dt in shapes)


class Workspace:
    """A reserved slice of the arena handing out aligned typed buffers."""

    def __init__(self, arena: NDArray[np.uint8], start: int, stop: int, misalign: int) -> None:
        self._arena = arena
        self._offset = start
        self._stop = stop
        self._misalign = misalign  # the arena's address modulo the alignment (asking costs µs)

    def take(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        """Return an uninitialised C-contiguous buffer of ``shape``/``dtype``."""
        dt = np.dtype(dtype)
        nbytes = prod(shape) * dt.itemsize
        start = self._offset + (-(self._misalign + self._offset)) % _ALIGN
        if start + nbytes > self._stop:
            raise RuntimeError("workspace plan too small (internal error)")
        self._offset = start + _aligned(nbytes)
        return self._arena[start : start + nbytes].view(dt).reshape(shape)

    @contextmanager
    def scope(self) -> Iterator[Workspace]:
        """Give back everything taken inside the ``with`` block on exit."""
        saved = self._offset
        try:
            yield self
        finally:
            self._offset = saved


class reserve:
    """Reserve ``nbytes`` of this thread's arena for the ``with`` block.

    Kernels reserve once at their entry point and pass the :class:`Workspace`
    down (a transposed convolution runs its convolutions inside its own
    reservation), so the arena never grows while its buffers are live. (A class, not a
    generator: every convolution call enters one, and this costs a few µs less.)
    """

    def __init__(self, nbytes: int) -> None:
        self._nbytes = nbytes
        self._start = 0

    def __enter__(self) -> Workspace:
        arena: NDArray[np.uint8] | None = getattr(_LOCAL, "arena", None)
        self._start = start = getattr(_LOCAL, "offset", 0)
        stop = start + _aligned(self._nbytes) + _ALIGN
        if arena is None or arena.size < stop:
            # drop the old arena first: old and new alive together would exceed the estimate's
            # "largest workspace per thread" (DCGAN, batch 3: by 3.3 MB)
            _LOCAL.arena = arena = None
            arena = np.empty(stop, np.uint8)
            _LOCAL.arena, _LOCAL.misalign = arena, arena.ctypes.data % _ALIGN
        _LOCAL.offset = stop
        return Workspace(arena, start, stop, _LOCAL.misalign)

    def __exit__(self, *exc: object) -> None:
        _LOCAL.offset = self._start


def release_workspace() -> None:
    """Free this thread's cached arena (it is re-created on demand)."""
    _LOCAL.arena = np.empty(0, np.uint8)
    _LOCAL.misalign = 0
    _LOCAL.offset = 0
