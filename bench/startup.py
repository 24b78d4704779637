"""Start-up cost of ``convcalc shape`` against ``python -c "import typer"``.

Runs every command in fresh processes, interleaved (each round runs all of them, in a rotating
order, so drift in machine load hits every command alike), after a few warm-up runs, and prints
the median, minimum and 90th percentile wall times and the ratio of medians to the typer import.
The target of the issue is a ratio of at most 1.5.

    python bench/startup.py                 # 30 rounds
    python bench/startup.py --runs 50 --check   # exit 1 if a ratio exceeds the target
    python bench/startup.py --importtime        # also list what convcalc's start-up imports, by cost

Use ``python -X importtime -m convcalc shape ...`` directly for the full import tree.

Byte-code: ``pip install .`` compiles every module to ``.pyc`` at install time (as typer's were),
but an editable install compiles on first import and, when ``PYTHONDONTWRITEBYTECODE`` is set
(it is on this workplace's machines), on *every* import, which alone costs ~25 ms here. The
script therefore byte-compiles convcalc first (``compileall``, what a regular install does) so
both sides are measured alike; ``--no-compile`` measures the editable, uncompiled case.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

SHAPE = ["shape", "conv2d", "--in", "3x224x224", "-o", "64", "-k", "7", "-s", "2", "-p", "3"]
TARGET = 1.5


def commands() -> dict[str, list[str]]:
    found = {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
        "python -m convcalc shape": [sys.executable, "-m", "convcalc", *SHAPE],
    }
    script = shutil.which("convcalc")
    if script:
        found["convcalc shape (console script)"] = [script, *SHAPE]
    return found


def run_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return elapsed


def measure(cmds: dict[str, list[str]], runs: int, warmup: int) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPROFILEIMPORTTIME", "CONVCALC_DEBUG")}
    names = list(cmds)
    for _ in range(warmup):
        for name in names:
            run_once(cmds[name], env)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]  # rotate: nobody always goes first
        for name in order:
            times[name].append(run_once(cmds[name], env))
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def importtime_report(top: int) -> str:
    """The most expensive imports (cumulative microseconds) of one ``convcalc shape`` start-up."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "convcalc", *SHAPE], capture_output=True, text=True, check=False
    )
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # not an import line, or the header
        self_us, cumulative_us, name = (part.strip() for part in parts)
        rows.append((int(cumulative_us), int(self_us), name))
    rows.sort(reverse=True)
    lines = [f"{'cumulative ms':>14} {'self ms':>8}  module"]
    lines += [f"{c / 1000:>14.1f} {s / 1000:>8.1f}  {n}" for c, s, n in rows[:top]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds first (default 3)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when a convcalc ratio exceeds {TARGET}")
    parser.add_argument("--importtime", action="store_true", help="also print the costliest imports of convcalc shape")
    parser.add_argument("--no-compile", action="store_true", help="do not byte-compile convcalc first (see module docstring)")
    args = parser.parse_args()
    if not args.no_compile:
        import compileall

        import convcalc

        compileall.compile_dir(os.path.dirname(convcalc.__file__), quiet=1)

    cmds = commands()
    times = measure(cmds, args.runs, args.warmup)
    base = statistics.median(times['python -c "import typer"'])
    print(
        f"start-up wall time, {args.runs} interleaved runs each (after {args.warmup} warm-up rounds); python {sys.version.split()[0]}"
    )
    print(f"{'command':<34} {'median ms':>10} {'min ms':>8} {'p90 ms':>8} {'/ typer':>8}")
    worst = 0.0
    for name, values in times.items():
        median = statistics.median(values)
        ratio = median / base
        if "convcalc" in name:
            worst = max(worst, ratio)
        print(
            f"{name:<34} {median * 1000:>10.1f} {min(values) * 1000:>8.1f} {percentile(values, 0.9) * 1000:>8.1f} {ratio:>8.2f}"
        )
    verdict = "OK" if worst <= TARGET else "OVER TARGET"
    print(f"worst convcalc / typer ratio: {worst:.2f} (target <= {TARGET}): {verdict}")
    if args.importtime:
        print()
        print(importtime_report(25))
    return 1 if args.check and worst > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
