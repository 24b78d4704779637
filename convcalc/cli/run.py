"""The executor commands: ``run`` (a layer or a network on random tensors) and ``peak`` (the matmul yardstick).

Thin typer wrappers over :mod:`convcalc.execute.session`; NumPy is imported only when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    Mode,
    ModeOpt,
    SpecOpt,
    guarded,
    layer_request,
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
RepeatsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--repeats", min=1, max=1000, help="Timed runs per layer (default: adaptive, until the timing is stable).", show_default=False
    ),
]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, max=100, help="Untimed runs per layer first.")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option("--threads", min=1, help="BLAS threads (threadpoolctl; default: the library's own).", show_default=False),
]
VerifyOpt = Annotated[
    bool, typer.Option("--verify", help="Check conv/transposed/linear outputs on a crop against a direct loop.")
]
FuseOpt = Annotated[
    bool,
    typer.Option(
        "--fuse/--no-fuse",
        help="Let the end-to-end pass fold batch norms into convolutions and run activations in place (as inference engines do).",
    ),
]
MemOpt = Annotated[
    Optional[str],
    typer.Option(
        "--max-memory", help="Refuse to run above this estimate (e.g. 4G; default 80% of the memory this process may still use)."
    ),
]


def _is_network(target: str) -> bool:
    """A path to a YAML file (or ``-``, standard input) whose top level has ``layers``."""
    from convcalc.network.library import is_name, library_specs

    if is_name(target) and not Path(target).is_file() and target in library_specs():
        return True
    if not (target == "-" or target.endswith((".yaml", ".yml")) or Path(target).is_file()):
        return False
    from convcalc.parse.yaml import load_file

    data, _ = load_file(target)
    return isinstance(data, dict) and "layers" in data


def _network_values(target: str, flags: Mapping[str, object], layout: Layout | None) -> dict[str, object]:
    """The ``--set`` pairs of a network run (the spec's variables); a layer flag (``-o``, ``-k``,
    ``--layout``, ...) would be silently ignored there, so it is refused."""
    flagged: frozenset[str] = getattr(flags, "flagged", frozenset())
    given = [f"--{name.replace('_', '-')}" for name in flags if name in flagged] + (["--layout"] if layout is not None else [])
    if given:
        raise SpecError(
            f"{', '.join(given)}: layer flags do not apply to a network run ({target} is a network spec).",
            hint="Change the spec's variables with --set NAME=VALUE, edit its layers, "
            "or run one layer: 'convcalc run TYPE --in CxHxW -o ... -k ...'.",
        )
    return {name: value for name, value in flags.items() if name not in flagged}


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
    repeats: RepeatsOpt = None,
    warmup: WarmupOpt = 1,
    threads: ThreadsOpt = None,
    verify: VerifyOpt = False,
    max_memory: MemOpt = None,
    fuse: FuseOpt = True,
    fmt: FmtOpt = Format.table,
    mode: ModeOpt = Mode.eval,
    debug: DebugOpt = False,
) -> None:
    """Execute a layer or a network on random tensors with NumPy: confirm every predicted shape,
    time each layer and one end-to-end pass (min/median/IQR), report GFLOP/s and the fraction of the matmul peak.
    Exit 1 when a shape or a --verify check fails."""
    from convcalc.execute import session

    cfg = session.make_config(
        dtype=dtype.value,
        seed=seed,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
        verify=verify,
        max_memory=max_memory,
        fuse=fuse,
    )
    show = fmt is Format.table
    if target is not None and spec is None and _is_network(target):
        from convcalc.network.library import resolve

        values = _network_values(target, flags or {}, layout)
        path, note = resolve(target)
        if note:
            typer.echo(f"convcalc: {note}", err=True)
        report = session.run_network(
            path, cfg, batch=batch, in_shape=in_shape, values=values, show_progress=show, mode=mode.value
        )
    else:
        request = layer_request(target, flags, spec, in_shape, batch, layout)
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
