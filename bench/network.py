"""How long ``convcalc`` takes to evaluate generated network specs of 1,000 to 20,000 layers.

Each spec is a ResNet-like network written the way specs are written: a stem, four stages of a
residual ``block`` template (conv-BN-ReLU-conv-BN, add, ReLU; the first block of stages 2-4
strides by 2 and gets a conv-BN projection shortcut chosen by a ``when`` expression), a head
(global average pool to a vector, linear) and, to land exactly on the target layer count, up to
six dropout rows. Specs are written to a temporary directory, then measured:

* **in-process**: :func:`convcalc.network.evaluate_file` (read, parse, evaluate), the median of
  ``--runs`` runs after one warm-up run, wall clock (``time.perf_counter``) and CPU time of the
  process (``time.process_time``, steadier when other jobs share the machine). The analysis cache
  of :mod:`convcalc.engine` is cleared before every run, so each run does the full work.
* **end to end**: ``python -m convcalc net SPEC --format json`` in a fresh process (start-up,
  evaluation and rendering the JSON document to ``/dev/null``), median wall time of ``--runs``.
  The start-up row is the same command on a 1-layer spec; ``e2e - start-up`` is what the
  layers cost.

The table shows µs per layer: it stays flat when the time grows linearly with the layer count.

    python bench/network.py                        # 1,000 / 5,000 / 10,000 / 20,000 layers, 5 runs
    python bench/network.py --runs 9 --sizes 10000 40000
    python bench/network.py --no-subprocess        # in-process only
    python bench/network.py --check                # exit 1 unless 10,000 layers < 1 s in-process
                                                   #   and the largest size's µs/layer <= 2x the smallest's
    python bench/network.py --json                 # the numbers as JSON
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from convcalc import engine
from convcalc.network.evaluate import evaluate_file

SIZES = (1_000, 5_000, 10_000, 20_000)
TARGET_SECONDS = 1.0
"""The issue's target: a 10,000-layer spec evaluates well under one second."""
TARGET_LAYERS = 10_000
STAGES = (16, 32, 64, 128)
FIXED = 3 + 2 * (len(STAGES) - 1) + 2
"""Rows outside the 7-row blocks: stem (3), the projections of stages 2-4 (2 each), head (2)."""
PER_BLOCK = 7


SPEC = """\
name: generated_{layers}
description: a generated residual network of exactly {layers:,} layers (bench/network.py)
input: 16x32x32
defaults:
  bias: false
  linear: {{bias: true}}
define:
  block:
    params: {{channels: required, stride: 1}}
    layers:
      - residual:
          - {{type: conv2d, name: conv1, out_channels: $channels, kernel_size: 3, stride: $stride, padding: 1}}
          - {{type: batchnorm2d, name: bn1}}
          - {{type: relu, name: relu1}}
          - {{type: conv2d, name: conv2, out_channels: $channels, kernel_size: 3, padding: 1}}
          - {{type: batchnorm2d, name: bn2}}
        shortcut:
          name: downsample
          when: $stride != 1 or $in_channels != $channels
          layers:
            - {{type: conv2d, out_channels: $channels, kernel_size: 1, stride: $stride}}
            - batchnorm2d
      - {{type: relu, name: relu}}
layers:
  - {{type: conv2d, name: conv1, out_channels: {first}, kernel_size: 3, padding: 1}}
  - {{type: batchnorm2d, name: bn1}}
  - {{type: relu, name: relu}}
{stages}  - {{type: global_avgpool, name: avgpool, keepdims: false}}
  - {{type: linear, name: fc, out_features: 10}}
{filler}expect:
  output_shape: [10]
"""


def generate(layers: int) -> str:
    """A spec of exactly ``layers`` rows (at least :data:`FIXED` + one block per stage)."""
    blocks, filler = divmod(layers - FIXED, PER_BLOCK)
    if blocks < len(STAGES):
        raise ValueError(f"at least {FIXED + PER_BLOCK * len(STAGES)} layers")
    per_stage = [blocks // len(STAGES) + (1 if i < blocks % len(STAGES) else 0) for i in range(len(STAGES))]
    stages = "".join(
        f"  - {{type: block, name: layer{i + 1}, repeat: {count}, channels: {channels}"
        + (", first: {stride: 2}" if i else "")
        + "}\n"
        for i, (count, channels) in enumerate(zip(per_stage, STAGES, strict=True))
    )
    rows = "".join(f"  - {{type: dropout, name: pad{i}}}\n" for i in range(filler))
    return SPEC.format(layers=layers, first=STAGES[0], stages=stages, filler=rows)


def median_time(run: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process over ``runs`` calls after a warm-up
    call (CPU time is steadier on a shared machine; it excludes child processes)."""
    run()
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def in_process(path: Path, layers: int) -> Callable[[], object]:
    def run() -> object:
        engine._analyse.cache_clear()  # type: ignore[attr-defined]  # every run does the full work
        result = evaluate_file(str(path))
        if len(result.rows) != layers or not all(e.ok for e in result.expectations):
            raise SystemExit(f"{path}: {len(result.rows)} rows (wanted {layers}) or a failed expectation")
        return result

    return run


def end_to_end(path: Path) -> Callable[[], object]:
    argv = [sys.executable, "-m", "convcalc", "net", str(path), "--format", "json"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPROFILEIMPORTTIME", "CONVCALC_DEBUG")}

    def run() -> object:
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        return done

    return run


def check_json(path: Path, layers: int) -> None:
    """Once per size, outside the timing: the JSON document has every layer."""
    argv = [sys.executable, "-m", "convcalc", "net", str(path), "--format", "json"]
    document = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    if document["totals"]["layers"] != layers or len(document["layers"]) != layers:
        raise SystemExit(f"{path}: the JSON document has {len(document['layers'])} layers, wanted {layers}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="layer counts (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement (median; default 5)")
    parser.add_argument("--no-subprocess", action="store_true", help="skip the end-to-end `convcalc net` runs")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target or linear growth does not hold")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the generated specs (their directory is printed)")
    args = parser.parse_args(argv)

    directory = Path(tempfile.mkdtemp(prefix="convcalc-bench-"))
    rows: list[dict[str, float]] = []
    startup = None
    try:
        if not args.no_subprocess:
            tiny = directory / "tiny.yaml"
            tiny.write_text("input: 3x8x8\nlayers: [relu]\n")
            startup = median_time(end_to_end(tiny), args.runs)[0]
        for layers in sorted(args.sizes):
            path = directory / f"net_{layers}.yaml"
            path.write_text(generate(layers))
            gc.collect()
            wall, cpu = median_time(in_process(path, layers), args.runs)
            row = {"layers": layers, "yaml_bytes": path.stat().st_size, "in_process_s": wall, "in_process_cpu_s": cpu}
            if not args.no_subprocess:
                check_json(path, layers)
                row["end_to_end_s"] = median_time(end_to_end(path), args.runs)[0]
            rows.append(row)
            if not args.json:
                print(f"  measured {layers:,} layers", file=sys.stderr)
    finally:
        if args.keep:
            print(f"specs kept in {directory}", file=sys.stderr)
        else:
            for file in directory.iterdir():
                file.unlink()
            directory.rmdir()

    if args.json:
        print(json.dumps({"runs": args.runs, "startup_s": startup, "rows": rows}, indent=2))
    else:
        print(table(rows, startup, args.runs))
    return verdict(rows) if args.check else 0


def table(rows: list[dict[str, float]], startup: float | None, runs: int) -> str:
    head = ["layers", "in-process", "µs/layer", "CPU µs/layer"]
    if startup is not None:
        head += ["convcalc net --format json", "µs/layer", "e2e - start-up µs/layer"]
    lines = []
    for row in rows:
        n = row["layers"]
        cells = [
            f"{n:,.0f}",
            f"{row['in_process_s']:.3f} s",
            f"{row['in_process_s'] / n * 1e6:.1f}",
            f"{row['in_process_cpu_s'] / n * 1e6:.1f}",
        ]
        if startup is not None:
            e2e = row["end_to_end_s"]
            cells += [f"{e2e:.3f} s", f"{e2e / n * 1e6:.1f}", f"{(e2e - startup) / n * 1e6:.1f}"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) for cells in lines]
    notes = [
        f"medians of {runs} runs after a warm-up; in-process = evaluate_file (read, parse, evaluate), wall clock"
        " and CPU time of the process"
    ]
    if startup is not None:
        notes.append("end to end = wall clock of a fresh process, JSON written to /dev/null")
        notes.append(f"start-up (convcalc net --format json on a 1-layer spec): {startup:.3f} s")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = last["in_process_s"] / first["in_process_s"]
        notes.append(f"in-process: {last['layers'] / first['layers']:.0f}x the layers took {growth:.1f}x the time")
    return "\n".join([*out, "", *notes])


def verdict(rows: list[dict[str, float]]) -> int:
    ok = True
    for row in rows:
        if row["layers"] == TARGET_LAYERS and row["in_process_s"] >= TARGET_SECONDS:
            print(f"FAIL: {TARGET_LAYERS:,} layers took {row['in_process_s']:.3f} s (target < {TARGET_SECONDS} s)")
            ok = False
    if len(rows) > 1:
        small, large = (rows[0]["in_process_s"] / rows[0]["layers"], rows[-1]["in_process_s"] / rows[-1]["layers"])
        if large > 2 * small:
            print(f"FAIL: µs/layer grew from {small * 1e6:.1f} to {large * 1e6:.1f} (more than 2x: not linear)")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
