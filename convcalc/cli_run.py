"""The ``run`` and ``peak`` commands (registered on the app by :func:`register`).

Thin typer wrappers over :mod:`convcalc.execute.session`; NumPy is imported only when they run.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from convcalc import cli


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


TargetArg = Annotated[
    Optional[str],
    typer.Argument(metavar="TARGET", help="A layer type (with flags or --spec) or a network spec file.", show_default=False),
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
MemOpt = Annotated[
    Optional[str], typer.Option("--max-memory", help="Refuse to run above this estimate (e.g. 4G; default 80% of free RAM).")
]


def _is_network(target: str) -> bool:
    """A path to a YAML file whose top level has ``layers``."""
    if not (target == "-" or target.endswith((".yaml", ".yml")) or Path(target).is_file()):
        return False
    from convcalc.loader import load_file

    data, _ = load_file(target)
    return isinstance(data, dict) and "layers" in data


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``peak`` to ``app``."""

    @app.command("run")
    def run_command(
        target: TargetArg = None,
        in_shape: cli.InOpt = None,
        out_channels: cli.OutOpt = None,
        kernel_size: cli.KOpt = None,
        stride: cli.SOpt = None,
        padding: cli.POpt = None,
        dilation: cli.DOpt = None,
        groups: cli.GOpt = None,
        output_padding: cli.OPOpt = None,
        depth_multiplier: cli.DMOpt = None,
        mid_channels: cli.MidOpt = None,
        variant: cli.VarOpt = None,
        bias: cli.BiasOpt = None,
        set_fields: cli.SetOpt = None,
        batch: cli.BatchOpt = None,
        layout: cli.LayoutOpt = None,
        spec: cli.SpecOpt = None,
        dtype: DTypeOpt = DType.float32,
        seed: SeedOpt = 0,
        repeats: RepeatsOpt = None,
        warmup: WarmupOpt = 1,
        threads: ThreadsOpt = None,
        verify: VerifyOpt = False,
        max_memory: MemOpt = None,
        fmt: cli.FmtOpt = cli.Fmt.table,
        debug: cli.DebugOpt = False,
    ) -> None:
        """Execute a layer or a network on random tensors with NumPy: confirm every predicted shape,
        time each layer and one end-to-end pass (min/median/IQR), report GFLOP/s and the fraction of the matmul peak.
        Exit 1 when a shape or a --verify check fails."""
        cli.STATE["debug"] = cli.STATE["debug"] or debug
        given = dict(locals())

        def body() -> None:
            from convcalc.execute import session
            from convcalc.request import build_request

            cfg = session.make_config(
                dtype=dtype.value, seed=seed, repeats=repeats, warmup=warmup, threads=threads, verify=verify, max_memory=max_memory
            )
            show = fmt is cli.Fmt.table
            if target is not None and spec is None and _is_network(target):
                report = session.run_network(target, cfg, batch=batch, in_shape=in_shape, show_progress=show)
            else:
                flags = cli.layer_flags(given)
                request = build_request(
                    target, flags, spec_path=spec, shape_text=in_shape, batch=batch, layout=layout.value if layout else None
                )
                report = session.run_layer(request, cfg, show)
            typer.echo(session.render_report(report, fmt.value))
            session.raise_if_failed(report)

        cli.guarded(body)

    @app.command("peak")
    def peak_command(
        threads: ThreadsOpt = None,
        dtype: DTypeOpt = DType.float32,
        refresh: Annotated[bool, typer.Option("--refresh", help="Measure again instead of using the cache.")] = False,
        fmt: cli.FmtOpt = cli.Fmt.table,
    ) -> None:
        """Measure (and cache) this machine's NumPy matmul peak, the yardstick of 'run'."""

        def body() -> None:
            from convcalc.execute.session import peak_table
            from convcalc.render import Format, render

            table, data = peak_table(threads, dtype.value, refresh)
            typer.echo(render(Format(fmt.value), table, data))

        cli.guarded(body)
