"""Whole networks: convcalc's end-to-end forward pass against torch eager, same process.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/executor_networks.py
       [--threads 1 2] [--batch 1 8] [--nets resnet50 mobilenet_v2 dcgan_generator]
       [--repeats 7] [--fresh 2] [--clock wall|process] [--json]

convcalc runs the shipped spec (``specs/NAME.yaml``) through :func:`convcalc.execute.runner.prepare`
(the stages ``convcalc run`` executes, weights made once) and times ``forward()``, one pass over
the graph. torch runs the same network built from ``torch.nn`` by the test suite's builders
(``tests/test_library_*.py``; the suite checks every layer's shape against the spec) in eval
mode under ``torch.inference_mode()``. Both are timed at their best: the min of ``--repeats``
passes after two warm-up passes; torch on ``--fresh`` fresh models and inputs, keeping its best.
convcalc's pass folds batch norms into the convolutions and runs activations in place
(:mod:`convcalc.execute.fuse`); torch eager does not, so torch is also timed after
``torch.fx.experimental.optimization.fuse`` (torch's own conv-BN folding; it leaves the batch
norms after transposed convolutions) — the "fused" columns.
Threads: ``torch.set_num_threads`` and threadpoolctl (the BLAS NumPy uses) set alike.
ratio = torch_time / convcalc_time (>= 1: convcalc faster), against eager and against fused torch.
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
from threadpoolctl import threadpool_info, threadpool_limits
from torch import nn
from torch.fx.experimental.optimization import fuse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convcalc.execute import parallel  # noqa: E402
from convcalc.execute.runner import Config, prepare  # noqa: E402
from convcalc.network.evaluate import INPUT_TENSOR, evaluate_network  # noqa: E402
from convcalc.network.spec import load_network  # noqa: E402
from tests.test_library_imagenet import BUILDERS  # noqa: E402
from tests.test_library_other import dcgan_generator  # noqa: E402

NETS: dict[str, Callable[[], nn.Module]] = {
    "resnet50": BUILDERS["resnet50"][0],
    "mobilenet_v2": BUILDERS["mobilenet_v2"][0],
    "dcgan_generator": dcgan_generator,
}
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "process": time.process_time}


@dataclass
class Row:
    """One network at one batch size and thread count."""

    net: str
    batch: int
    threads: int
    convcalc_ms: float
    convcalc_median_ms: float
    torch_ms: float
    torch_median_ms: float
    ratio: float
    torch_fused_ms: float
    ratio_fused: float


def _times(fn: Callable[[], Any], repeats: int, clock: Callable[[], float]) -> list[float]:
    fn()
    fn()
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def bench(name: str, batch: int, threads: int, repeats: int, fresh: int, clock: Callable[[], float]) -> Row:
    """Time one network in both libraries."""
    spec = load_network(str(ROOT / "specs" / f"{name}.yaml"))
    result = evaluate_network(spec, batch=batch)
    stages = [stage for row in result.rows for stage in row.stages]
    ready = prepare(stages, (INPUT_TENSOR, spec.input_shape), Config(batch=batch, threads=threads))
    with parallel.using(threads):  # convcalc's own pool, as `convcalc run --threads N` does
        ours = _times(ready.forward, repeats, clock)
    del ready
    theirs: list[float] = []
    best = best_fused = math.inf
    for _ in range(fresh):
        model = NETS[name]().eval()
        fused = fuse(model)
        x = torch.randn(batch, *spec.input_shape)
        with torch.inference_mode():
            run = _times(lambda m=model, t=x: m(t), repeats, clock)
            best_fused = min(best_fused, *_times(lambda m=fused, t=x: m(t), repeats, clock))
        if min(run) < best:
            best, theirs = min(run), run
    return Row(
        name,
        batch,
        threads,
        min(ours) * 1e3,
        float(np.median(ours)) * 1e3,
        best * 1e3,
        float(np.median(theirs)) * 1e3,
        best / min(ours),
        best_fused * 1e3,
        best_fused / min(ours),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--fresh", type=int, default=2, help="fresh torch models per measurement (best kept)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    blas = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in threadpool_info()]
            for batch in args.batch:
                for name in args.nets:
                    rows.append(bench(name, batch, threads, args.repeats, args.fresh, CLOCKS[args.clock]))
                    if not args.json:
                        _print(rows[-1], header=len(rows) == 1)
    if args.json:
        print(json.dumps({"blas": blas, "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(
            f"# clock {args.clock}, min of {args.repeats} passes (median beside), torch best of {args.fresh} fresh models;"
            f" BLAS: {'; '.join(blas)}; torch {torch.__version__}; numpy {np.__version__};"
            f" OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}"
        )
    return 0


def _print(row: Row, header: bool) -> None:
    if header:
        print(
            f"{'network':<16}{'N':>3}{'thr':>4}{'convcalc ms':>12}{'(median)':>10}{'torch ms':>10}{'(median)':>10}{'ratio':>7}"
            f"{'fused ms':>10}{'ratio':>7}"
        )
    print(
        f"{row.net:<16}{row.batch:>3}{row.threads:>4}{row.convcalc_ms:>12.2f}{row.convcalc_median_ms:>10.2f}"
        f"{row.torch_ms:>10.2f}{row.torch_median_ms:>10.2f}{row.ratio:>7.2f}{row.torch_fused_ms:>10.2f}{row.ratio_fused:>7.2f}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
