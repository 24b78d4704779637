"""Timing a call until the measurement is trustworthy, like ``torch.utils.benchmark``'s
``Timer.blocked_autorange`` (and its ``Measurement``: median, IQR, a noise warning).

A *sample* is the mean time of one call over a block of calls; the block size is chosen so a
block takes at least :data:`BLOCK_SECONDS` (timer overhead and resolution then stay below 1%).
Adaptive mode (``repeats=None``) draws samples until at least :data:`MIN_SAMPLES` are in and the
interquartile range is within :data:`STABLE_IQR` of the median, or the time budget is spent;
``repeats=N`` draws exactly N samples of one call each (the ``--repeats`` flag). ``warmup``
untimed calls come first either way.
A measurement is *noisy* when ``IQR / median`` > :data:`NOISY_IQR` (torch's ``Measurement``
warns from 10% too): another process took the CPU, and the numbers may move between runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

BLOCK_SECONDS = 1e-3
MIN_SAMPLES = 5
MAX_SAMPLES = 1000
STABLE_IQR = 0.03
NOISY_IQR = 0.10

T = TypeVar("T")


@dataclass(frozen=True)
class Measurement:
    """Per-call times (seconds) of the samples, and the block size behind each."""

    samples: tuple[float, ...]
    per_sample: int = 1

    @property
    def min(self) -> float:
        return min(self.samples, default=0.0)

    @property
    def max(self) -> float:
        return max(self.samples, default=0.0)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0

    @property
    def iqr(self) -> float:
        """Interquartile range with linear interpolation between samples (``statistics.quantiles``'
        inclusive method, as ``torch.quantile`` in ``torch.utils.benchmark``'s ``Measurement``; the
        exclusive method extrapolates beyond the extremes of a few samples); 0 below 2 samples."""
        if len(self.samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q3 - q1

    @property
    def noisy(self) -> bool:
        if len(self.samples) < 2 or self.min <= 0:
            return False
        return self.iqr > NOISY_IQR * self.median


def measure(call: Callable[[], T], *, repeats: int | None, warmup: int, budget_s: float) -> tuple[T, Measurement]:
    """Time ``call`` (module docstring); returns its last result and the measurement."""
    for _ in range(warmup):
        call()
    if repeats is not None:
        samples = []
        start = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - start)
        for _ in range(repeats - 1):
            start = time.perf_counter()
            result = call()
            samples.append(time.perf_counter() - start)
        return result, Measurement(tuple(samples))
    start = time.perf_counter()  # calibration: one call sizes the block
    result = call()
    once = time.perf_counter() - start
    block = max(1, min(1000, int(BLOCK_SECONDS / max(once, 1e-9))))
    samples = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < MAX_SAMPLES:
        start = time.perf_counter()
        for _ in range(block):
            result = call()
        samples.append((time.perf_counter() - start) / block)
        if len(samples) >= MIN_SAMPLES:
            current = Measurement(tuple(samples), block)
            if current.iqr <= STABLE_IQR * current.median or time.perf_counter() >= deadline:
                break
    return result, Measurement(tuple(samples), block)
