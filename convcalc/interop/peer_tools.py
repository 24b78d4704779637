"""Run the peer counters themselves on a torch module (for ``bench/peers.py`` and the tests).

The peers (torchinfo, fvcore, ptflops, thop, torchscan) and torch are never runtime dependencies:
everything is imported inside the runners. Each runner returns exactly the total the tool prints
for an input of shape ``(1, *shape)``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from collections.abc import Callable
from typing import Any

Runner = Callable[[Any, tuple[int, ...]], int]


def _zeros(shape: tuple[int, ...]) -> Any:
    torch = importlib.import_module("torch")
    return torch.zeros(1, *shape)


def run_torchinfo(model: Any, shape: tuple[int, ...]) -> int:
    """``torchinfo.summary(...).total_mult_adds``."""
    torchinfo = importlib.import_module("torchinfo")
    return int(torchinfo.summary(model, input_size=(1, *shape), verbose=0).total_mult_adds)


def run_fvcore(model: Any, shape: tuple[int, ...]) -> int:
    """``fvcore.nn.FlopCountAnalysis(model, x).total()``."""
    analysis = importlib.import_module("fvcore.nn").FlopCountAnalysis(model, _zeros(shape))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total())


def _ptflops(backend: str) -> Runner:
    def run(model: Any, shape: tuple[int, ...]) -> int:
        """``ptflops.get_model_complexity_info`` MACs."""
        ptflops = importlib.import_module("ptflops")
        macs, _ = ptflops.get_model_complexity_info(model, shape, as_strings=False, print_per_layer_stat=False, backend=backend)
        return int(macs)

    return run


def run_thop(model: Any, shape: tuple[int, ...]) -> int:
    """``thop.profile`` MACs (a float: converted)."""
    macs, _ = importlib.import_module("thop").profile(model, inputs=(_zeros(shape),), verbose=False)
    return int(macs)


def run_torchscan(model: Any, shape: tuple[int, ...]) -> int:
    """``torchscan.crawl_module(...)["totals"]["macs"]``: the known value (``value`` is None when partial)."""
    report = importlib.import_module("torchscan").crawl_module(model, shape)
    return int(report["totals"]["macs"]["known_value"])


def run_flop_counter(model: Any, shape: tuple[int, ...]) -> int:
    """``torch.utils.flop_counter.FlopCounterMode().get_total_flops()``."""
    counter = importlib.import_module("torch.utils.flop_counter").FlopCounterMode(display=False)
    with counter:
        model(_zeros(shape))
    return int(counter.get_total_flops())


RUNNERS: dict[str, tuple[str, Runner]] = {
    "torchinfo": ("torchinfo", run_torchinfo),
    "fvcore": ("fvcore", run_fvcore),
    "ptflops": ("ptflops", _ptflops("pytorch")),
    "ptflops_aten": ("ptflops", _ptflops("aten")),
    "thop": ("thop", run_thop),
    "torchscan": ("torchscan", run_torchscan),
    "torch_flop_counter": ("torch", run_flop_counter),
}
"""Peer name -> (the package it needs, runner); the names are those of :data:`convcalc.interop.peers.PEERS`."""


def run(name: str, model: Any, shape: tuple[int, ...]) -> int:
    """Run one peer quietly (the tools print tables and warnings) under ``torch.no_grad``."""
    torch = importlib.import_module("torch")
    runner = RUNNERS[name][1]
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")
        return runner(model, shape)


def load_module(source: str, name: str) -> Any:
    """Execute exported source as a fresh module (``build()``, ``INPUT_SHAPE``)."""
    import types

    module = types.ModuleType(name)
    exec(compile(source, f"<convcalc export {name}>", "exec"), module.__dict__)
    return module
