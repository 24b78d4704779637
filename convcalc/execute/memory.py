"""The memory a run needs, known before anything is allocated, and the memory it may use.

:func:`estimate` bounds the peak bytes of :func:`convcalc.execute.runner.run_stages` from the
stages' :class:`~convcalc.execute.registry.Plan` s alone:

``peak = Σ weights + threads · max workspace + max over stages i of (live_i + 2·out_i + temporaries_i)``

* every stage's weights: they are all made before the first stage runs, so the end-to-end
  forward pass can run after the per-layer timings; and ``folded_bytes``, the second copy of
  the weights into which the end-to-end pass folds batch norms (:mod:`convcalc.execute.fuse`);
* the largest workspace, once per thread (``--threads``): each thread keeps its own scratch
  arena between calls and it only grows;
* ``live_i``: the activations alive while stage ``i`` runs (the network's input, kept for the
  end-to-end pass, and every other tensor until its last reader has run);
* ``2·out_i``: stage ``i``'s output twice (the previous timed call's result is still referenced
  while the next one is computed);
* ``temporaries_i``: what one call allocates besides its output, declared by its binding
  (and the float64 copies of a ``--verify`` reference).

:func:`default_budget` is what the process may still allocate: the least of the memory
available now, the cgroup's limit minus its usage, and the ``RLIMIT_AS``/``RLIMIT_DATA``
limits minus what the process already maps; ``--max-memory`` replaces it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from convcalc.errors import LimitError, SpecError
from convcalc.execute.registry import Plan, Shape

BUDGET_FRACTION = 0.8
"""Share of the available memory a run may plan to use by default."""


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated peak bytes, its parts, and the stage where the peak occurs."""

    peak_bytes: int
    stage: str
    weight_bytes: int
    workspace_bytes: int


def last_use(inputs: Sequence[tuple[str, ...]]) -> dict[str, int]:
    """Index of the last stage reading each tensor name."""
    last: dict[str, int] = {}
    for index, names in enumerate(inputs):
        for name in names:
            last[name] = index
    return last


def estimate(
    names: Sequence[str],
    inputs: Sequence[tuple[str, ...]],
    outputs: Sequence[Shape],
    plans: Sequence[Plan],
    source: tuple[str, Shape],
    dtype: np.dtype[Any],
    threads: int = 1,
    folded_bytes: int = 0,
) -> MemoryPlan:
    """Peak bytes of running the stages (module docstring); shapes include the batch."""
    last = last_use(inputs)
    source_bytes = math.prod(source[1]) * dtype.itemsize
    live: dict[str, int] = {}
    weights = sum(p.weight_bytes(dtype) for p in plans) + folded_bytes
    workspace = threads * max((p.workspace_bytes for p in plans), default=0)
    peak, where = 0, ""
    for index, (name, shape, plan) in enumerate(zip(names, outputs, plans, strict=True)):
        out = math.prod(shape) * dtype.itemsize
        total = source_bytes + sum(live.values()) + 2 * out + plan.temporary_bytes
        if total > peak:
            peak, where = total, name
        live[name] = out
        for gone in [n for n in live if last.get(n, -1) <= index and n != name]:
            del live[gone]
    return MemoryPlan(weights + workspace + peak, where, weights, workspace)


def refuse_above(plan: MemoryPlan, budget: int, source: str) -> None:
    """Raise a :class:`LimitError` (exit 2) when ``plan`` needs more than ``budget`` bytes."""
    if plan.peak_bytes > budget:
        raise LimitError(
            f"running this needs about {plan.peak_bytes / 2**20:,.1f} MiB (weights {plan.weight_bytes / 2**20:,.1f} MiB,"
            f" peak at '{plan.stage}'), more than {source} {budget / 2**20:,.1f} MiB.",
            hint="Lower --batch or the input size, or raise --max-memory.",
        )


UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
MAX_BYTES = 2**60
"""Larger sizes than this (1 EiB) are refused as input errors."""


def parse_bytes(text: str) -> int:
    """``512M``, ``4G``, ``4GiB``, ``1.5g``, ``1000000`` -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d{1,20}(?:\.\d{1,20})?)\s*([kmgtp]?)(?:i?b)?\s*", text.lower())
    if not match:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise SpecError(f"--max-memory must be a size such as 512M or 4G (at most 20 digits), got {shown!r}.")
    try:
        value = int(Decimal(match.group(1)) * UNITS[match.group(2)])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimal numbers
        raise SpecError(f"--max-memory: {text!r} is not a number.") from None
    if not 0 < value <= MAX_BYTES:
        raise SpecError(f"--max-memory must be between 1 byte and 1 EiB, got {text!r}.")
    return value


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _cgroup_dirs() -> list[tuple[Path, str, str]]:
    """Candidate cgroup directories of this process, innermost first, with the names of their
    limit and usage files: cgroup v2 (``0::/path``: ``memory.max``, ``memory.current``) and v1
    (``N:memory:/path``: ``memory.limit_in_bytes``, ``memory.usage_in_bytes``). In a cgroup
    namespace the process's own group is the mount's root, so the roots are candidates too."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return []
    found: list[tuple[Path, str, str]] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            root, files = Path("/sys/fs/cgroup"), ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            root, files = Path("/sys/fs/cgroup/memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        inner = root / path.lstrip("/")
        found += [(d, *files) for d in (inner, *inner.parents) if d.is_relative_to(root)]
    return found


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" = no limit


def _cgroup_headroom() -> int | None:
    """Limit minus usage of the innermost cgroup with a memory limit (None when there is none)."""
    for directory, limit_file, usage_file in _cgroup_dirs():
        limit = _read_int(directory / limit_file)
        if limit is not None:
            return max(limit - (_read_int(directory / usage_file) or 0), 0)
    return None


def _status_bytes(field: str) -> int:
    """A ``/proc/self/status`` size (``VmSize``, ``VmData``) in bytes (0 when unknown)."""
    try:
        text = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def _rlimit_headroom() -> int | None:
    """``RLIMIT_AS - VmSize`` and ``RLIMIT_DATA - VmData``, whichever is smaller."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    room: list[int] = []
    for limit, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY:
            room.append(max(soft - _status_bytes(field), 0))
    return min(room) if room else None


def available_bytes() -> int:
    """What this process can still allocate: the least of ``MemAvailable``, the cgroup's
    headroom and the rlimit headroom (physical memory when none is known)."""
    known = [v for v in (_meminfo_available(), _cgroup_headroom(), _rlimit_headroom()) if v is not None]
    if known:
        return min(known)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_budget() -> int:
    """:data:`BUDGET_FRACTION` of :func:`available_bytes`."""
    return int(available_bytes() * BUDGET_FRACTION)
