"""``convcalc run`` and ``convcalc peak``: evaluate, execute, compare, time and report.

A single layer reports one row per primitive stage; a network one row per layer (its stages'
times summed), and the network total both as the sum of its layers and as one end-to-end
forward pass. Achieved GFLOP/s = 2 · MACs / median time (MACs from the arithmetic engine);
fraction of peak = that / the machine's measured NumPy matmul peak (:mod:`convcalc.execute.peak`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from convcalc.engine import StageResult, evaluate_layer
from convcalc.errors import CheckFailure, SpecError
from convcalc.execute import timing
from convcalc.execute.memory import default_budget, parse_bytes
from convcalc.execute.peak import peak_gflops
from convcalc.execute.runner import Config, RunOutcome, StageRun, run_stages
from convcalc.network.evaluate import INPUT_TENSOR, evaluate_network
from convcalc.network.spec import load_network, override
from convcalc.parse.layer import LayerRequest
from convcalc.parse.values import format_shape
from convcalc.primitives.base import Shape
from convcalc.render.table import Format, Table, render


@dataclass
class Row:
    """One reported row: a stage (single layer) or a network layer."""

    name: str
    type: str
    predicted: Shape
    executed: tuple[int, ...]
    runs: list[StageRun] = field(default_factory=list)

    @property
    def shape_ok(self) -> bool:
        return all(r.shape_ok for r in self.runs) and self.executed == self.predicted

    @property
    def time_s(self) -> float:
        """Median time (the sum of the stages' medians)."""
        return sum(r.timing.median for r in self.runs)

    @property
    def min_s(self) -> float:
        return sum(r.timing.min for r in self.runs)

    @property
    def iqr_s(self) -> float:
        """Interquartile range (the stages' IQRs summed: an upper bound for independent stages)."""
        return sum(r.timing.iqr for r in self.runs)

    @property
    def noisy(self) -> bool:
        return any(r.timing.noisy for r in self.runs)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.runs)

    @property
    def workspace_bytes(self) -> int:
        return max((r.workspace_bytes for r in self.runs), default=0)

    @property
    def verify(self) -> tuple[float, float] | None:
        checks = [r.check for r in self.runs if r.check is not None]
        if not checks:
            return None
        worst = max(checks, key=lambda c: c.max_error / c.tolerance if c.tolerance else 0)
        return worst.max_error, worst.tolerance

    @property
    def gflops(self) -> float:
        return 2 * self.macs / self.time_s / 1e9 if self.time_s > 0 else 0.0


@dataclass
class Report:
    """Everything ``run`` prints."""

    name: str
    cfg: Config
    peak: float
    rows: list[Row]
    outcome: RunOutcome

    @property
    def ok(self) -> bool:
        return all(r.shape_ok for r in self.rows) and all(v[0] <= v[1] for r in self.rows if (v := r.verify) is not None)


def _progress(total: int, enabled: bool) -> tuple[Callable[[StageRun], None] | None, Callable[[], None]]:
    """A rich progress bar on stderr, only on a terminal that takes escape sequences: none when
    ``NO_COLOR`` is set (https://no-color.org: a bar is drawn with cursor movements) or ``TERM=dumb``."""
    if not enabled or not sys.stderr.isatty() or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip
    task = bar.add_task("running", total=total)
    bar.start()

    def advance(run: StageRun) -> None:
        bar.update(task, advance=1, description=f"running {run.name}")

    return advance, bar.stop


def _execute(stages: Sequence[StageResult], source: tuple[str, Shape], cfg: Config, show: bool) -> RunOutcome:
    advance, stop = _progress(len(stages), show)
    try:
        return run_stages(stages, source, cfg, advance)
    finally:
        stop()


MAX_SEED = 2**64 - 1
MAX_BATCH = 2**24
"""Largest batch accepted (as every axis: see the README's limits)."""


def make_config(
    *,
    dtype: str,
    seed: int,
    repeats: int | None,
    warmup: int,
    threads: int | None,
    verify: bool,
    max_memory: str | None,
    fuse: bool = True,
) -> Config:
    """The run configuration from the command's flags (bad values raise :class:`SpecError`, exit 2);
    without ``--max-memory`` the budget is :func:`convcalc.execute.memory.default_budget`."""
    if not 0 <= seed <= MAX_SEED:
        raise SpecError(f"--seed must be between 0 and 2**64 - 1, got {seed}.", hint="Use e.g. --seed 0.")
    budget = parse_bytes(max_memory) if max_memory is not None else default_budget()
    return Config(1, dtype, seed, repeats, warmup, threads, verify, budget, fuse=fuse)


def _check_batch(batch: int, where: str) -> int:
    if not 1 <= batch <= MAX_BATCH:
        raise SpecError(f"the batch size must be between 1 and {MAX_BATCH:,}, got {batch} ({where}).", hint="Use e.g. --batch 1.")
    return batch


def run_layer(request: LayerRequest, cfg: Config, show_progress: bool) -> Report:
    """Execute one layer (batch from the request); one row per primitive stage."""
    cfg = dataclasses.replace(cfg, batch=_check_batch(request.batch, "--batch"))
    result = evaluate_layer(request.spec, request.shape)
    outcome = _execute(result.stages, ("in", request.shape), cfg, show_progress)
    rows = [
        Row(
            f"{request.spec.name}.{run.name}" if len(result.stages) > 1 else request.spec.name,
            run.op,
            run.predicted,
            run.executed,
            [run],
        )
        for run in outcome.stages
    ]
    return Report(request.spec.name, cfg, peak_gflops(cfg.threads, cfg.dtype), rows, outcome)


def run_network(
    path: str,
    cfg: Config,
    *,
    batch: int | None,
    in_shape: str | None,
    show_progress: bool,
    values: Mapping[str, object] | None = None,
    mode: str = "eval",
) -> Report:
    """Execute a network spec (``in_shape`` overrides its input, e.g. a reduced size for CI,
    ``values`` its top-level variables: :func:`~convcalc.network.spec.override`; ``batch`` the
    spec's); training-only rows run in ``mode="train"`` only."""
    if batch is not None:
        _check_batch(batch, "--batch")
    spec = override(load_network(path), in_shape, values)
    batch = _check_batch(spec.batch, f"the batch of {path}") if batch is None else batch
    cfg = dataclasses.replace(cfg, batch=batch)
    result = evaluate_network(spec, batch=batch, mode=mode)
    layers = [row for row in result.rows if result.runs(row)]
    stages = [stage for row in layers for stage in row.stages]
    outcome = _execute(stages, (INPUT_TENSOR, spec.input_shape), cfg, show_progress)
    by_name = {run.name: run for run in outcome.stages}
    rows = []
    for layer in layers:
        runs = [by_name[s.name] for s in layer.stages]
        executed = runs[-1].executed if runs else (batch, *layer.output_shape)
        rows.append(Row(layer.name, layer.type, (batch, *layer.output_shape), executed, runs))
    return Report(spec.name, cfg, peak_gflops(cfg.threads, cfg.dtype), rows, outcome)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def _timing_text(cfg: Config) -> str:
    if cfg.repeats is not None:
        return f"{cfg.repeats} repeats after {cfg.warmup} warm-up"
    return f"adaptive timing (until IQR <= {timing.STABLE_IQR:.0%} of the median or {cfg.budget_s:g} s per layer)"


def _noisy(report: Report) -> list[str]:
    names = [r.name for r in report.rows if r.noisy]
    e2e = report.outcome.end_to_end
    if e2e is not None and e2e.noisy:
        names.append("end-to-end pass")
    return names


def report_table(report: Report) -> Table:
    """Rows plus a total line and the configuration."""
    table = Table(
        ["layer", "type", "predicted", "executed", "ok", "median ms", "min ms", "IQR ms", "GFLOP/s", "% peak", "workspace MiB"]
    )
    verify = report.cfg.verify
    if verify:
        table.headers.append("max error / tol")
    for row in report.rows:
        cells: list[str | int] = [
            row.name,
            row.type,
            format_shape(row.predicted),
            format_shape(row.executed),
            "yes" if row.shape_ok else "NO",
            _ms(row.time_s) + ("*" if row.noisy else ""),
            _ms(row.min_s),
            _ms(row.iqr_s),
            f"{row.gflops:.1f}" if row.macs else "-",
            f"{100 * row.gflops / report.peak:.0f}%" if row.macs and report.peak else "-",
            f"{row.workspace_bytes / 2**20:.1f}",
        ]
        if verify:
            check = row.verify
            cells.append("-" if check is None else f"{check[0]:.2e} / {check[1]:.2e}")
        table.rows.append(cells)
    total = sum(r.time_s for r in report.rows)
    macs = sum(r.macs for r in report.rows)
    cfg = report.cfg
    table.title = (
        f"run '{report.name}': batch {cfg.batch}, {cfg.dtype}, seed {cfg.seed}, {_timing_text(cfg)},"
        f" threads {cfg.threads or 'default'}"
    )
    table.notes = [
        f"sum of layers: {_ms(total)} ms median (min {_ms(sum(r.min_s for r in report.rows))} ms),"
        f" {2 * macs / total / 1e9 if total else 0:.1f} GFLOP/s"
        f" (peak matmul {report.peak:.0f} GFLOP/s); shapes {'all confirmed' if all(r.shape_ok for r in report.rows) else 'MISMATCH'}",
    ]
    e2e = report.outcome.end_to_end
    if e2e is not None:
        table.notes.append(
            f"end-to-end forward pass{_fused_text(report.outcome.fused)}: {_ms(e2e.median)} ms median, min {_ms(e2e.min)} ms,"
            f" IQR {_ms(e2e.iqr)} ms ({len(e2e.samples)} samples)"
        )
    memory = report.outcome.memory
    table.notes.append(
        f"estimated peak memory {memory.peak_bytes / 2**20:,.1f} MiB (weights {memory.weight_bytes / 2**20:,.1f} MiB,"
        f" workspace {memory.workspace_bytes / 2**20:,.1f} MiB, activations peak at '{memory.stage}')"
    )
    noisy = _noisy(report)
    if noisy:
        table.notes.append(
            f"warning: noisy timings (* above: IQR > {timing.NOISY_IQR:.0%} of the median)"
            f" in {', '.join(noisy[:5])}{' ...' if len(noisy) > 5 else ''}: noisy machine, numbers may move."
        )
    return table


def _fused_text(fused: tuple[int, int, int] | None) -> str:
    if fused is None or not any(fused):
        return ""
    return (
        f" ({fused[0]} batch norms folded into convolutions, {fused[2]} activations applied by the"
        f" convolution before them, {fused[1]} steps in place; --no-fuse: as timed above)"
    )


def _measurement(m: timing.Measurement | None) -> dict[str, object] | None:
    if m is None:
        return None
    return {"median_s": m.median, "min_s": m.min, "iqr_s": m.iqr, "samples": len(m.samples), "noisy": m.noisy}


def _end_to_end(report: Report) -> dict[str, object] | None:
    measured = _measurement(report.outcome.end_to_end)
    fused = report.outcome.fused
    if measured is not None:
        measured["fused"] = (
            None
            if fused is None
            else {"folded_batch_norms": fused[0], "in_place_steps": fused[1], "conv_epilogues": fused[2]}
        )
    return measured


def report_dict(report: Report) -> dict[str, object]:
    """The stable JSON contract of ``run``."""
    layers = []
    for row in report.rows:
        item: dict[str, object] = {
            "name": row.name,
            "type": row.type,
            "predicted_shape": list(row.predicted),
            "output_shape": list(row.executed),
            "shape_ok": row.shape_ok,
            "time_s": row.time_s,
            "min_time_s": row.min_s,
            "iqr_s": row.iqr_s,
            "noisy": row.noisy,
            "macs": row.macs,
            "gflops": row.gflops,
            "peak_fraction": row.gflops / report.peak if report.peak else None,
            "workspace_bytes": row.workspace_bytes,
        }
        if row.verify is not None:
            item["verify"] = {"max_error": row.verify[0], "tolerance": row.verify[1], "ok": row.verify[0] <= row.verify[1]}
        layers.append(item)
    total = sum(r.time_s for r in report.rows)
    macs = sum(r.macs for r in report.rows)
    memory = report.outcome.memory
    return {
        "name": report.name,
        "batch": report.cfg.batch,
        "dtype": report.cfg.dtype,
        "seed": report.cfg.seed,
        "repeats": report.cfg.repeats,
        "threads": report.cfg.threads,
        "peak_gflops": report.peak,
        "layers": layers,
        "totals": {
            "time_s": total,
            "min_time_s": sum(r.min_s for r in report.rows),
            "end_to_end": _end_to_end(report),
            "macs": macs,
            "gflops": 2 * macs / total / 1e9 if total else 0.0,
            "shape_ok": all(r.shape_ok for r in report.rows),
            "estimated_peak_bytes": memory.peak_bytes,
            "estimated_weight_bytes": memory.weight_bytes,
            "noisy": _noisy(report),
        },
    }


def render_report(report: Report, fmt: str) -> str:
    """Text/CSV/Markdown table or JSON."""
    return render(Format(fmt), report_table(report), report_dict(report))


def raise_if_failed(report: Report) -> None:
    """Exit 1 when an executed shape differs from the prediction or a verification fails."""
    if not report.ok:
        bad = [r.name for r in report.rows if not r.shape_ok or ((v := r.verify) is not None and v[0] > v[1])]
        raise CheckFailure(f"{len(bad)} layer(s) failed: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}.")


def peak_table(threads: int | None, dtype: str, refresh: bool) -> tuple[Table, dict[str, object]]:
    """``convcalc peak``: the measured (cached) NumPy matmul peak."""
    value = peak_gflops(threads, dtype, refresh=refresh)
    table = Table(["threads", "dtype", "matmul peak GFLOP/s"], [[str(threads or "default"), dtype, f"{value:.1f}"]])
    table.notes = ["best median of square float matmuls (512-1536); cached per CPU, NumPy version, dtype and threads."]
    return table, {"threads": threads, "dtype": dtype, "peak_gflops": value}
