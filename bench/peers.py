"""Run every peer counter on the PyTorch modules ``convcalc export`` writes and compare with ``totals.peers``.

    python bench/peers.py                  # every shipped spec
    python bench/peers.py specs/resnet50.yaml --max-macs 5e9

Needs torch and the peers (never runtime dependencies of convcalc)::

    pip install --no-deps torchinfo fvcore ptflops thop torchscan iopath yacs tabulate termcolor portalocker tqdm

Prints one row per spec and tool: convcalc's prediction, the tool's own number, and whether they
are equal. Exit code 1 when any prediction differs from the tool.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.util
import io
import sys
import time
import warnings
from collections.abc import Callable
from types import ModuleType

import torch
from torch import nn

from convcalc.interop.peers import PEERS, peer_totals
from convcalc.interop.torch_export import export_pytorch
from convcalc.network import evaluate_file


def load(source: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, name, "exec"), module.__dict__)
    return module


def quiet(fn: Callable[[], int]) -> int:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return fn()


def run_torchinfo(model: nn.Module, shape: tuple[int, ...]) -> int:
    import torchinfo

    return int(torchinfo.summary(model, input_size=(1, *shape), verbose=0).total_mult_adds)


def run_fvcore(model: nn.Module, shape: tuple[int, ...]) -> int:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, torch.zeros(1, *shape))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total())


def run_ptflops(model: nn.Module, shape: tuple[int, ...], backend: str) -> int:
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, shape, as_strings=False, print_per_layer_stat=False, backend=backend)
    return int(macs)


def run_thop(model: nn.Module, shape: tuple[int, ...]) -> int:
    import thop

    macs, _ = thop.profile(model, inputs=(torch.zeros(1, *shape),), verbose=False)
    return int(macs)


def run_torchscan(model: nn.Module, shape: tuple[int, ...]) -> int:
    from torchscan import crawl_module

    macs = crawl_module(model, shape)["totals"]["macs"]
    return int(macs["known_value"])  # a partial total (unsupported modules) has value None


def run_flop_counter(model: nn.Module, shape: tuple[int, ...]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return int(counter.get_total_flops())


RUNNERS: dict[str, Callable[[nn.Module, tuple[int, ...]], int]] = {
    "torchinfo": run_torchinfo,
    "fvcore": run_fvcore,
    "ptflops": lambda m, s: run_ptflops(m, s, "pytorch"),
    "ptflops_aten": lambda m, s: run_ptflops(m, s, "aten"),
    "thop": run_thop,
    "torchscan": run_torchscan,
    "torch_flop_counter": run_flop_counter,
}


def measure(path: str) -> list[tuple[str, str, int, int]]:
    """``(spec, tool, predicted, measured)`` for every peer (batch 1)."""
    result = evaluate_file(path, batch=1)
    predicted = peer_totals([(row.type, row.stages) for row in result.rows], 1)
    source = export_pytorch(result)
    module = load(source, result.name)
    rows = []
    for tool, runner in RUNNERS.items():
        model = module.build()
        with torch.no_grad():
            measured = quiet(lambda r=runner, m=model: r(m, module.INPUT_SHAPE))
        rows.append((result.name, tool, predicted[tool], measured))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=sorted(glob.glob("specs/*.yaml")))
    parser.add_argument("--max-macs", type=float, default=float("inf"), help="skip specs with more MACs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    assert list(RUNNERS) == list(PEERS)
    failures = 0
    print(f"{'spec':<22} {'tool':<19} {'convcalc predicts':>20} {'tool reports':>20}  agree")
    for path in args.specs:
        macs = evaluate_file(path).totals().macs
        if macs > args.max_macs:
            print(f"{path}: skipped ({macs:,} MACs > --max-macs)")
            continue
        start = time.perf_counter()
        try:
            rows = measure(path)
        except ImportError as err:
            print(f"{path}: skipped ({err})")
            continue
        for spec, tool, predicted, measured in rows:
            ok = predicted == measured
            failures += not ok
            print(f"{spec:<22} {tool:<19} {predicted:>20,} {measured:>20,}  {'exact' if ok else 'DIFFERS'}")
        print(f"# {path}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        sys.stdout.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
