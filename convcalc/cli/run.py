"""The executor commands: ``run`` (a layer or a network on random tensors) and ``peak`` (the matmul yardstick).

Thin typer wrappers over :mod:`convcalc.execute.session`; NumPy is imported only when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from convcalc.cli.complete import layer_or_spec
from convcalc.cli.options import (
    LAYER_FIELDS,
    BatchOpt,
    DebugOpt,
    FmtOpt,
    InOpt,
    LayoutOpt,
    SpecOpt,
    guarded,
    warn,
    with_layer_flags,
)
from convcalc.errors import SpecError
from convcalc.parse.values import Layout
from convcalc.render.table import Format


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


TargetArg = Annotated[
    Optional[str],
    typer.Argument(
        metavar="TARGET",
        help="A layer type (with flags or --spec) or a network spec file.",
        show_default=False,
        autocompletion=layer_or_spec,
    ),
]
DTypeOpt = Annotated[DType, typer.Option("--dtype", help="Floating-point type of the random tensors.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random inputs and weights.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", min=1, max=1000, help="Timed runs per layer (median and min reported).")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, max=100, help="Untimed runs per layer first.")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option("--threads", min=1, help="BLAS threads (threadpoolctl; default: the library's own).", show_default=False),
]
VerifyOpt = Annotated[
    bool, typer.Option("--verify", help="Check conv/transposed/linear outputs on a crop against a direct loop.")
]
MemOpt = Annotated[
    Optional[str], typer.Option("--max-memory", help="Refuse to run above this estimate (e.g. 4G; default 80% of free RAM).")
]


def _is_network(target: str) -> bool:
    """A path to a YAML file (or ``-``, standard input) whose top level has ``layers``."""
    if not (target == "-" or target.endswith((".yaml", ".yml")) or Path(target).is_file()):
        return False
    from convcalc.parse.yaml import load_file

    data, _ = load_file(target)
    return isinstance(data, dict) and "layers" in data


def _refuse_layer_flags(target: str, flags: dict[str, object], layout: Layout | None) -> None:
    """A network run takes every layer from its spec: a layer flag would be silently ignored, so refuse it."""
    own = {f.name for f in LAYER_FIELDS}
    given = [f"--{name.replace('_', '-')}" if name in own else f"--set {name}=..." for name in flags]
    given += ["--layout"] if layout is not None else []
    if given:
        raise SpecError(
            f"{', '.join(given)}: layer flags do not apply to a network run ({target} is a network spec).",
            hint="Edit the layers in the spec, or run one layer: 'convcalc run TYPE --in CxHxW -o ... -k ...'.",
        )


@guarded
@with_layer_flags(LAYER_FIELDS, after="in_shape")
def run_command(
    target: TargetArg = None,
    in_shape: InOpt = None,
    flags: dict[str, object] | None = None,
    batch: BatchOpt = None,
    layout: LayoutOpt = None,
    spec: SpecOpt = None,
    dtype: DTypeOpt = DType.float32,
    seed: SeedOpt = 0,
    repeats: RepeatsOpt = 5,
    warmup: WarmupOpt = 1,
    threads: ThreadsOpt = None,
    verify: VerifyOpt = False,
    max_memory: MemOpt = None,
    fmt: FmtOpt = Format.table,
    debug: DebugOpt = False,
) -> None:
    """Execute a layer or a network on random tensors with NumPy: confirm every predicted shape,
    time each layer (median/min), report GFLOP/s and the fraction of the matmul peak.
    Exit 1 when a shape or a --verify check fails."""
    from convcalc.execute import session
    from convcalc.execute.runner import Config
    from convcalc.parse.layer import build_request

    budget = session.parse_bytes(max_memory) if max_memory else session.default_max_memory()
    cfg = Config(1, dtype.value, seed, repeats, warmup, threads, verify, budget)
    show = fmt is Format.table
    if target is not None and spec is None and _is_network(target):
        _refuse_layer_flags(target, flags or {}, layout)
        report = session.run_network(target, cfg, batch=batch, in_shape=in_shape, show_progress=show)
    else:
        request = build_request(
            target, flags or {}, spec_path=spec, shape_text=in_shape, batch=batch, layout=layout.value if layout else None
        )
        warn(request.warnings)
        report = session.run_layer(request, cfg, show)
    typer.echo(session.render_report(report, fmt.value))
    session.raise_if_failed(report)


@guarded
def peak_command(
    threads: ThreadsOpt = None,
    dtype: DTypeOpt = DType.float32,
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure again instead of using the cache.")] = False,
    fmt: FmtOpt = Format.table,
) -> None:
    """Measure (and cache) this machine's NumPy matmul peak, the yardstick of 'run'."""
    from convcalc.execute.session import peak_table
    from convcalc.render.table import render

    table, data = peak_table(threads, dtype.value, refresh)
    typer.echo(render(fmt, table, data))


COMMANDS: dict[str, Callable[..., None]] = {"run": run_command, "peak": peak_command}
