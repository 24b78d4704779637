"""Measure (and cache) this machine's NumPy matmul peak, the yardstick for executor efficiency.

``peak_gflops(threads, dtype)`` times ``C = A @ B`` for square matrices (2·n³ FLOPs), takes the
best median over a few sizes, and caches the result per CPU model, NumPy version, dtype and
thread count in ``$XDG_CACHE_HOME/convcalc/peak.json`` (``~/.cache`` by default).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import cast

import numpy as np

SIZES = (512, 1024, 1536)


def threads_limit(threads: int | None) -> AbstractContextManager[object]:
    """Limit BLAS threads with threadpoolctl when installed (a no-op otherwise)."""
    if threads is None:
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # documented: set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS instead
        return nullcontext()
    return cast("AbstractContextManager[object]", threadpool_limits(limits=threads))


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convcalc" / "peak.json"


def _key(threads: int | None, dtype: str) -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}|numpy {np.__version__}|{dtype}|threads {threads or 'default'}"


def measure(threads: int | None, dtype: str = "float32", repeats: int = 7) -> float:
    """Best median GFLOP/s of square matmuls over :data:`SIZES`."""
    rng = np.random.default_rng(0)
    best = 0.0
    with threads_limit(threads):
        for n in SIZES:
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            out = np.empty((n, n), dtype=dtype)
            np.matmul(a, b, out=out)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                np.matmul(a, b, out=out)
                times.append(time.perf_counter() - start)
            best = max(best, 2 * n**3 / statistics.median(times) / 1e9)
    return best


def peak_gflops(threads: int | None, dtype: str = "float32", *, refresh: bool = False) -> float:
    """The cached peak, measured on first use (or when ``refresh``)."""
    path = _cache_file()
    key = _key(threads, dtype)
    cache: dict[str, float] = {}
    if path.is_file():
        try:
            cache = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, OSError, AttributeError):
            cache = {}
    if refresh or key not in cache:
        cache[key] = measure(threads, dtype)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cache, indent=2))
        except OSError:
            pass  # an unwritable cache only costs a re-measurement next time
    return cache[key]
