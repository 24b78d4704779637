"""A small thread pool for the executor's own loops (NumPy releases the GIL inside its ufuncs
and BLAS calls, so threads run them on separate cores).

``with using(threads):`` sets how many threads the kernels may use (default 1: everything runs
inline, as before). Kernels then split work the BLAS does not split: element-wise layers over
their channels, convolutions over samples (batch >= threads) or, for depthwise, over channels
(a single sample's GEMMs are threaded by the BLAS; splitting its 0.2-8 MiB gathers among the
threads gained nothing: two threads copy 2-8 MiB no faster than one here, 24.5 vs 26.9 GB/s);
:func:`run` executes the parts, the caller's thread taking the first. Each worker has its own
scratch arena (:mod:`convcalc.execute.workspace` keeps one per thread), so a run's scratch
memory is ``threads`` times the largest workspace (:mod:`convcalc.execute.memory` counts it).
Work below :data:`MIN_ELEMENTS` stays on one thread: handing it over costs more than it saves.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar

MIN_ELEMENTS = 1 << 19
"""Smallest element count worth splitting (512 Ki values). Handing a part to the pool costs
~30-50 µs here: on two threads ReLU and the batch-norm affine of 100-200 Ki values got slower
(31 -> 74 µs), at 400-800 Ki the affine ran 1.9x faster."""

_THREADS: ContextVar[int] = ContextVar("convcalc_threads", default=1)
_POOL: list[tuple[int, ThreadPoolExecutor]] = []
_LOCK = threading.Lock()


def threads() -> int:
    """Threads the kernels may use in this context."""
    return _THREADS.get()


@contextmanager
def using(count: int | None) -> Iterator[None]:
    """Let the kernels inside the ``with`` block use ``count`` threads (None: 1)."""
    token = _THREADS.set(max(1, count or 1))
    try:
        yield
    finally:
        _THREADS.reset(token)


def _pool(workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        if not _POOL or _POOL[0][0] < workers:
            if _POOL:
                _POOL.pop()[1].shutdown(wait=False)
            _POOL.append((workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convcalc")))
        return _POOL[0][1]


def run(tasks: Sequence[Callable[[], object]]) -> None:
    """Run ``tasks`` concurrently (the first in the calling thread) and re-raise the first error."""
    if len(tasks) <= 1:
        for task in tasks:
            task()
        return
    futures = [_pool(len(tasks) - 1).submit(task) for task in tasks[1:]]
    try:
        with using(1):  # a part never splits again (the workers run with the default, 1)
            tasks[0]()
    finally:
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error


def parts(length: int, elements: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges splitting ``length`` items among the threads (one range when the
    work of ``elements`` values is too small to split, or one thread is allowed)."""
    count = min(threads(), length, max(1, elements // MIN_ELEMENTS))
    bounds = [length * i // count for i in range(count + 1)]
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def whole(length: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges splitting ``length`` heavy items (samples, channels of a convolution)
    among the threads, whatever their size."""
    return parts(length, length * MIN_ELEMENTS)


def run_blas_single(tasks: Sequence[Callable[[], object]]) -> None:
    """:func:`run` ``tasks`` with a one-thread BLAS (our threads split the work instead)."""
    with blas_single():
        run(tasks)


_CONTROLLER: list[object] = []


@contextmanager
def blas_single() -> Iterator[None]:
    """One BLAS thread inside the block (our own threads split the work instead; a no-op
    without threadpoolctl). Costs ~25 µs with the controller cached."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    controller = _CONTROLLER[0]
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):  # type: ignore[attr-defined]
        yield
