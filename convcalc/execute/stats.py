"""Multiply-accumulate accounting for the convolution kernels.

Usage::

    with kernel_stats() as stats:
        y = conv(x, w, ...)
    stats.macs, stats.records[0].path

``macs`` is the work of the direct algorithm, the closed formulas the
arithmetic engine predicts: ``out_positions * C_out * C_in/groups * prod(k)``
per sample for a convolution, ``in_positions * C_in * C_out/groups * prod(k)``
per sample for a transposed convolution (counted per *input* position, crop
included), and for a deformable convolution the main convolution's MACs plus,
separately, ``sampling_macs`` = 4 per bilinearly sampled value (+1 for the v2
mask multiply) with ``N * C_in * kh*kw * H_out*W_out`` sampled values.

``executed_macs`` is what the chosen algorithm's matrix products and tap loops
really issued (Winograd element-wise products in the transform domain,
padded tiles, zero taps of phase-padded kernels...), so the ratio
``macs / executed_macs`` shows the arithmetic saved or wasted by the path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KernelRecord:
    """One kernel call: the op, the algorithm path and its arithmetic."""

    op: str
    path: str
    macs: int
    executed_macs: int
    workspace_bytes: int
    sampling_macs: int = 0


@dataclass
class KernelStats:
    """Records of every counted kernel call made inside :func:`kernel_stats`."""

    records: list[KernelRecord] = field(default_factory=list)

    @property
    def macs(self) -> int:
        """Total direct-algorithm MACs (closed formulas)."""
        return sum(r.macs for r in self.records)

    @property
    def executed_macs(self) -> int:
        """Total MACs issued by the chosen algorithms."""
        return sum(r.executed_macs for r in self.records)

    @property
    def sampling_macs(self) -> int:
        """Total bilinear-sampling MACs of deformable convolutions."""
        return sum(r.sampling_macs for r in self.records)

    @property
    def peak_workspace_bytes(self) -> int:
        """Largest scratch reservation of any recorded call."""
        return max((r.workspace_bytes for r in self.records), default=0)


_ACTIVE: ContextVar[KernelStats | None] = ContextVar("convcalc_kernel_stats", default=None)


@contextmanager
def kernel_stats() -> Iterator[KernelStats]:
    """Collect a :class:`KernelRecord` for each counted kernel call."""
    stats = KernelStats()
    token = _ACTIVE.set(stats)
    try:
        yield stats
    finally:
        _ACTIVE.reset(token)


def recording() -> bool:
    """Whether a :func:`kernel_stats` block is collecting (hot callers build no record otherwise)."""
    return _ACTIVE.get() is not None


def record(rec: KernelRecord) -> None:
    """Append ``rec`` to the active :class:`KernelStats`, if any."""
    stats = _ACTIVE.get()
    if stats is not None:
        stats.records.append(rec)
