"""Benchmark convcalc's NumPy kernels against torch.nn.functional, same process.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/executor.py
       [--threads N] [--batch 1 8] [--quick] [--json] [--layers resnet3x3 dcgan_t ...]

Both libraries run with the same thread count (torch.set_num_threads and
threadpoolctl for the BLAS NumPy uses) and are timed at their best: the min of
the repeats after a warm-up, and torch on ``--fresh`` fresh allocations of its
input and weight tensors (its speed on some layers is bimodal across tensor
allocations), keeping its best.  ratio = torch_time / convcalc_time (>= 1 means
convcalc is faster); GFLOP/s = 2 * direct-algorithm MACs / time for both.
``bw ms`` is the memory-bandwidth bound of the layer: its input + output +
weight bytes over this machine's copy bandwidth (measured once: bytes read +
written by ``np.copyto`` of 64 MiB); ``cc/bw`` is convcalc's time over it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convcalc.execute import kernels


@dataclass(frozen=True)
class Layer:
    """One benchmark layer: shapes and the conv hyper-parameters."""

    name: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    stride: int = 1
    padding: tuple[tuple[int, int], ...] | None = None
    dilation: int = 1
    groups: int = 1
    transposed: bool = False


LAYERS = [
    # held out from the kernels' tuning (issue 13): dense, grouped, transposed, depthwise
    Layer("dense_128@28", (128, 28, 28), (128, 128, 3, 3), padding=((1, 1), (1, 1))),
    Layer("grouped_256g32@14", (256, 14, 14), (256, 8, 3, 3), padding=((1, 1), (1, 1)), groups=32),
    Layer("tconv_256->128@16", (256, 16, 16), (256, 128, 4, 4), stride=2, padding=((1, 1), (1, 1)), transposed=True),
    Layer("dw_144@56", (144, 56, 56), (144, 1, 3, 3), padding=((1, 1), (1, 1)), groups=144),
    Layer("resnet3x3", (64, 56, 56), (64, 64, 3, 3), padding=((1, 1), (1, 1))),
    Layer("resnet_stem", (3, 224, 224), (64, 3, 7, 7), stride=2, padding=((3, 3), (3, 3))),
    Layer("pointwise", (32, 112, 112), (64, 32, 1, 1)),
    Layer("deeplab_d2", (256, 33, 33), (256, 256, 3, 3), padding=((2, 2), (2, 2)), dilation=2),
    Layer("c3d", (64, 16, 56, 56), (64, 64, 3, 3, 3), padding=((1, 1), (1, 1), (1, 1))),
    Layer("wavenet", (256, 16000), (256, 256, 3), padding=((8, 0),), dilation=4),
    Layer("dcgan_t", (128, 32, 32), (128, 64, 4, 4), stride=2, padding=((1, 1), (1, 1)), transposed=True),
    Layer("resnext_g32", (128, 28, 28), (128, 4, 3, 3), padding=((1, 1), (1, 1)), groups=32),
    Layer("mobilenet_dw", (32, 112, 112), (32, 1, 3, 3), padding=((1, 1), (1, 1)), groups=32),
    Layer("mobilenet_dw_s2", (96, 112, 112), (96, 1, 3, 3), stride=2, padding=((1, 1), (1, 1)), groups=96),
    Layer("resnet3x3_s2", (128, 56, 56), (128, 128, 3, 3), stride=2, padding=((1, 1), (1, 1))),
]


@dataclass
class Row:
    """One result line."""

    layer: str
    batch: int
    threads: int
    convcalc_ms: float
    torch_ms: float
    convcalc_gflops: float
    torch_gflops: float
    ratio: float
    path: str
    max_abs_err: float
    bound_ms: float


CLOCKS: dict[str, Callable[[], float]] = {
    "wall": time.perf_counter,
    "thread": time.thread_time,
    "process": time.process_time,
}


def _best_times(fns: list[Callable[[], Any]], repeats: int, clock: Callable[[], float], interleave: bool) -> list[float]:
    """Best (min) time of each function after a warm-up call. ``interleave``: runs alternate so
    drift hits all alike (one thread); else each function runs its repeats as one block after its
    warm-up (several threads: interleaved, torch's OpenMP threads still spin-wait on the cores when
    OpenBLAS's start, and the other way round, slowing both)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    order = [(fn, acc) for _ in range(repeats) for fn, acc in zip(fns, times, strict=True)]
    if not interleave:
        order = [(fn, acc) for fn, acc in zip(fns, times, strict=True) for _ in range(repeats + 1)]
    for fn, acc in order:
        t0 = clock()
        fn()
        acc.append(clock() - t0)
    return [min(t) for t in times]


def copy_bandwidth(nbytes: int = 64 << 20, repeats: int = 7) -> float:
    """Bytes per second moved by ``np.copyto`` (read + write counted), best of ``repeats``."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * nbytes / best


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _torch_fn(layer: Layer, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> Callable[[], torch.Tensor]:
    nd = x.ndim - 2
    pads = layer.padding or ((0, 0),) * nd
    op: Callable[..., torch.Tensor]
    if layer.transposed:
        op = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
        return lambda: op(x, w, b, stride=layer.stride, padding=pads[0][0], groups=layer.groups)
    op = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    if all(p == pads[0] for p in pads) and pads[0][0] == pads[0][1]:
        return lambda: op(x, w, b, layer.stride, pads[0][0], layer.dilation, layer.groups)
    flat = [v for p in reversed(pads) for v in p]
    return lambda: op(F.pad(x, flat), w, b, layer.stride, 0, layer.dilation, layer.groups)


def _convcalc_fn(layer: Layer, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Callable[[], np.ndarray]:
    nd = x.ndim - 2
    pads = layer.padding or ((0, 0),) * nd
    if layer.transposed:  # planned once and weights packed once, as `convcalc run` does
        tplan = kernels.plan_conv_transpose(x.shape, w.shape, layer.stride, pads, 0, 1, layer.groups, x.dtype)
        packed = kernels.pack_col2im(w, layer.groups) if tplan.channels_last else None
        return lambda: kernels.run_transpose_plan(tplan, x, w, b, packed)
    plan = kernels.plan_conv(x.shape, w.shape, layer.stride, pads, layer.dilation, layer.groups, x.dtype)
    packed_w = kernels.pack_conv(w, plan, b)  # Winograd's U, rowsum's matrices or [W | b] made once, as `convcalc run` does
    return lambda: kernels.run_plan(plan, x, w, b, packed_w)  # planned once from shapes, as `convcalc run` calls it


def bench_layer(
    layer: Layer, batch: int, threads: int, repeats: int, clock: Callable[[], float], fresh: int, bandwidth: float
) -> Row:
    """Time one layer in both libraries (torch on ``fresh`` allocations) and check they agree."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *layer.x), dtype=np.float32)
    w = rng.standard_normal(layer.w, dtype=np.float32)
    b = rng.standard_normal(layer.w[1] * layer.groups if layer.transposed else layer.w[0], dtype=np.float32)
    cfn = _convcalc_fn(layer, x, w, b)
    with kernels.kernel_stats() as stats:
        y = cfn()
    rec = stats.records[-1]
    t_c = math.inf
    t_t = math.inf
    for _ in range(fresh):
        tfn = _torch_fn(layer, torch.from_numpy(x.copy()), torch.from_numpy(w.copy()), torch.from_numpy(b.copy()))
        ref = tfn().numpy()
        c_best, t_best = _best_times([cfn, tfn], repeats, clock, interleave=threads == 1)
        t_c, t_t = min(t_c, c_best), min(t_t, t_best)
    err = float(np.abs(y - ref).max() / max(1.0, float(np.abs(ref).max())))
    moved = 4 * (x.size + y.size + w.size + b.size)
    return Row(
        layer=layer.name,
        batch=batch,
        threads=threads,
        convcalc_ms=t_c * 1e3,
        torch_ms=t_t * 1e3,
        convcalc_gflops=2 * rec.macs / t_c / 1e9,
        torch_gflops=2 * rec.macs / t_t / 1e9,
        ratio=t_t / t_c,
        path=rec.path,
        max_abs_err=err,
        bound_ms=moved / bandwidth * 1e3,
    )


def _repeats(layer: Layer, batch: int, quick: bool) -> int:
    heavy = layer.name in ("c3d", "wavenet")
    base = 5 if heavy else 21
    if batch > 1:
        base = max(5, base // 3)
    return max(3, base // 3) if quick else base


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--layers", nargs="+", default=[layer.name for layer in LAYERS])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--fresh", type=int, default=3, help="fresh torch allocations per layer (best kept)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall (default); thread = CPU time of this thread, robust on a shared machine (1 thread only); process",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with threadpool_limits(args.threads):
        blas = [
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} ({i.get('num_threads')} threads)"
            for i in threadpool_info()
        ]
        bandwidth = copy_bandwidth()
        for batch in args.batch:
            for layer in LAYERS:
                if layer.name in args.layers:
                    reps = _repeats(layer, batch, args.quick)
                    rows.append(bench_layer(layer, batch, args.threads, reps, CLOCKS[args.clock], args.fresh, bandwidth))
                    if not args.json:
                        _print_row(rows[-1], header=len(rows) == 1)
    if args.json:
        print(json.dumps({"blas": blas, "copy_bandwidth": bandwidth, "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(
            f"# clock {args.clock}, min of repeats, torch best of {args.fresh} allocations; threads {args.threads};"
            f" BLAS: {'; '.join(blas)}; torch {torch.__version__} ({torch.get_num_threads()} threads); numpy {np.__version__};"
            f" copy bandwidth {bandwidth / 1e9:.1f} GB/s; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}"
        )
    return 0


def _print_row(row: Row, header: bool) -> None:
    if header:
        print(
            f"{'layer':<18}{'N':>3}{'thr':>4}{'convcalc ms':>12}{'torch ms':>10}"
            f"{'cc GF/s':>9}{'t GF/s':>8}{'ratio':>7}{'bw ms':>7}{'cc/bw':>6}  path (rel err)"
        )
    print(
        f"{row.layer:<18}{row.batch:>3}{row.threads:>4}{row.convcalc_ms:>12.3f}{row.torch_ms:>10.3f}"
        f"{row.convcalc_gflops:>9.1f}{row.torch_gflops:>8.1f}{row.ratio:>7.2f}{row.bound_ms:>7.3f}"
        f"{row.convcalc_ms / row.bound_ms:>6.1f}  {row.path} ({row.max_abs_err:.1e})",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
