"""Run every peer counter on the PyTorch modules ``convcalc export`` writes and compare with ``totals.peers``.

    python bench/peers.py                      # every shipped spec
    python bench/peers.py specs/resnet50.yaml --max-macs 5e9

Needs torch and the peers (test dependencies, never runtime dependencies of convcalc)::

    pip install -e '.[test]'        # or '.[peers]' beside an installed torch

Prints one row per spec and tool: convcalc's prediction (``totals.peers``), the tool's own number,
and whether they are equal, then the agreement table (Markdown). Exit code 1 when any differs.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import sys
import time

from convcalc.errors import ConvcalcError
from convcalc.interop.peer_tools import RUNNERS, load_module, run
from convcalc.interop.peers import PEERS, network_peer_totals
from convcalc.interop.torch_export import export_pytorch
from convcalc.network.evaluate import evaluate_file


def measure(path: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """The spec's name and, per peer, ``(predicted, measured)`` at batch 1."""
    result = evaluate_file(path, batch=1)
    predicted = network_peer_totals(result)  # eval mode, as build() returns the module
    module = load_module(export_pytorch(result), result.name)
    return result.name, {name: (predicted[name], run(name, module.build(), module.INPUT_SHAPE)) for name in RUNNERS}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("specs", nargs="*", default=sorted(glob.glob("specs/*.yaml")))
    parser.add_argument("--max-macs", type=float, default=float("inf"), help="skip specs with more MACs")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    assert list(RUNNERS) == list(PEERS)
    missing = [package for package, _ in RUNNERS.values() if importlib.util.find_spec(package) is None]
    if missing:
        print(f"missing peers: {', '.join(sorted(set(missing)))} (see the module docstring)", file=sys.stderr)
        return 2
    table: list[tuple[str, dict[str, tuple[int, int]]]] = []
    print(f"{'spec':<22} {'tool':<19} {'convcalc predicts':>20} {'tool reports':>20}  agree")
    for path in args.specs:
        try:
            macs = evaluate_file(path).totals().macs
        except ConvcalcError as err:
            print(f"{path}: skipped (convcalc cannot evaluate it: {err})")
            continue
        if macs > args.max_macs:
            print(f"{path}: skipped ({macs:,} MACs > --max-macs)")
            continue
        start = time.perf_counter()
        try:
            name, rows = measure(path)
        except ImportError as err:
            print(f"{path}: skipped ({err})")
            continue
        table.append((name, rows))
        for tool, (predicted, measured) in rows.items():
            verdict = "exact" if predicted == measured else "DIFFERS"
            print(f"{name:<22} {tool:<19} {predicted:>20,} {measured:>20,}  {verdict}")
        print(f"# {path}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        sys.stdout.flush()
    print("\n| spec | " + " | ".join(PEERS) + " |")
    print("| --- |" + " ---: |" * len(PEERS))
    for name, rows in table:
        cells = [f"{m:,}" if p == m else f"{m:,} (predicted {p:,})" for p, m in rows.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    agree = sum(p == m for _, rows in table for p, m in rows.values())
    total = sum(len(rows) for _, rows in table)
    print(f"\n{agree} of {total} totals exact")
    return 0 if agree == total else 1


if __name__ == "__main__":
    sys.exit(main())
