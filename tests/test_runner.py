"""The NumPy executor end to end: every primitive has a kernel, every convolution type runs with
its predicted shape, numerics agree with direct loops, the executed MACs equal the engine's count,
memory stays within the estimate, and ``convcalc run`` works on shipped specs at reduced size."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import pkgutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import convcalc.primitives
from convcalc.engine import evaluate_layer
from convcalc.execute import kernels as K
from convcalc.execute import registry
from convcalc.execute.deform import deform_sample
from convcalc.execute.runner import Config, run_stages
from convcalc.kinds import all_kinds
from convcalc.parse.layer import parse_layer
from convcalc.primitives.conv import DeformSample

FAST = Config(batch=2, repeats=1, warmup=0, verify=True)


def primitive_classes() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(convcalc.primitives.__path__):
        module = importlib.import_module(f"convcalc.primitives.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if dataclasses.is_dataclass(cls) and isinstance(getattr(cls, "op", None), str) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def test_every_primitive_has_a_kernel() -> None:
    names = {cls.op for cls in primitive_classes()}
    assert len(names) >= 15
    assert names <= registry.bound_ops(), f"no kernel for {sorted(names - registry.bound_ops())}"


LAYERS = [
    ("conv1d", (3, 17), {"out_channels": 4, "kernel_size": 3, "stride": 2, "dilation": 2, "padding": 1}),
    ("conv2d", (6, 9, 11), {"out_channels": 4, "kernel_size": "3x2", "groups": 2, "padding": "0:1x1:0"}),
    ("conv3d", (2, 5, 6, 7), {"out_channels": 3, "kernel_size": 3, "padding": "same"}),
    ("pointwise", (8, 5, 5), {"out_channels": 4, "groups": 4}),
    ("conv_transpose1d", (4, 7), {"out_channels": 2, "kernel_size": 3, "stride": 2, "output_padding": 1}),
    ("conv_transpose2d", (4, 5, 6), {"out_channels": 6, "kernel_size": 4, "stride": 2, "padding": 1, "groups": 2}),
    ("conv_transpose3d", (2, 3, 4, 4), {"out_channels": 2, "kernel_size": 3, "stride": 2, "dilation": 2}),
    ("depthwise2d", (4, 8, 8), {"kernel_size": 3, "depth_multiplier": 2, "padding": 1}),
    ("separable2d", (3, 7, 7), {"out_channels": 8, "kernel_size": 3}),
    ("spatial_separable2d", (2, 6, 6), {"out_channels": 3, "kernel_size": 3}),
    ("flattened3d", (2, 5, 5, 5), {"out_channels": 3, "kernel_size": 3}),
    ("shuffle_grouped2d", (6, 6, 6), {"out_channels": 6, "kernel_size": 3, "groups": 3}),
    ("channel_shuffle", (6, 4, 4), {"groups": 3}),
    ("unflatten", (12, 5), {"dim": 1, "unflattened_size": [3, 4]}),
    ("p3d", (4, 4, 6, 6), {"out_channels": 4, "kernel_size": 3, "padding": 1, "variant": "C"}),
    ("conv2plus1d", (3, 4, 6, 6), {"out_channels": 5, "kernel_size": 3, "padding": 1}),
    ("deformable2d", (4, 7, 7), {"out_channels": 3, "kernel_size": 3, "padding": 1, "version": 2, "offset_groups": 2}),
]


@pytest.mark.parametrize(("kind", "shape", "fields"), LAYERS, ids=[row[0] for row in LAYERS])
def test_layer_runs_with_the_predicted_shape_and_verified_numerics(
    kind: str, shape: tuple[int, ...], fields: dict[str, object]
) -> None:
    result = evaluate_layer(parse_layer({"type": kind, **fields}), shape)
    outcome = run_stages(result.stages, ("in", shape), FAST)
    assert [run.executed for run in outcome.stages] == [(2, *s.output) for s in result.stages]
    checks = [run.check for run in outcome.stages if run.check is not None]
    assert all(c.ok for c in checks), checks


def test_every_convolution_kind_is_exercised_above() -> None:
    convolution_kinds = {k.name for k in all_kinds() if k.build.__module__.endswith(("convs", "factorised"))}
    covered = {row[0] for row in LAYERS}
    # one rank per family is enough: ranks share the same primitives
    assert {name.rstrip("123d").rstrip("_") for name in convolution_kinds} <= {n.rstrip("123d").rstrip("_") for n in covered}


@pytest.mark.parametrize(
    ("kind", "shape", "fields"),
    [r for r in LAYERS if r[0] not in ("deformable2d", "channel_shuffle")],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_executed_macs_equal_the_engines_count(kind: str, shape: tuple[int, ...], fields: dict[str, object]) -> None:
    """The kernels' own per-call MAC records (conv: per output position, transposed: per input
    position) summed over the run equal the arithmetic engine's MACs: catches miscounted groups."""
    result = evaluate_layer(parse_layer({"type": kind, **fields}), shape)
    with K.kernel_stats() as stats:
        run_stages(result.stages, ("in", shape), dataclasses.replace(FAST, verify=False, end_to_end=False))
    assert stats.macs == 2 * sum(s.stats.macs for s in result.stages)


def test_deform_sample_then_strided_conv_equals_deform_conv2d() -> None:
    """The engine's three-stage deformable graph (sampling into a k-strided grid + a k-stride conv)
    computes the same as the fused deform_conv2d kernel (itself tested against a direct loop)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7, 6))
    op = DeformSample((3, 3), (2, 1), ((1, 1), (0, 2)), (1, 2), offset_groups=2, modulated=True)
    out_h, out_w = op.out_sizes((7, 6))
    offsets = rng.standard_normal((2, 3 * 2 * 9, out_h, out_w)) * 1.5
    w = rng.standard_normal((5, 4, 3, 3))
    sampled = deform_sample(x, offsets, (3, 3), (2, 1), ((1, 1), (0, 2)), (1, 2), 2, True)
    ours = K.conv(sampled, w, None, (3, 3))
    mask = 1 / (1 + np.exp(-offsets[:, 2 * 2 * 9 :]))
    want = K.deform_conv2d(x, offsets[:, : 2 * 2 * 9], w, None, (2, 1), ((1, 1), (0, 2)), (1, 2), mask=mask, offset_groups=2)
    np.testing.assert_allclose(ours, want, rtol=1e-10, atol=1e-10)


def test_memory_estimate_bounds_the_measured_peak() -> None:
    """tracemalloc's peak during a run stays within the estimate (inputs + outputs + weights + workspace)."""
    result = evaluate_layer(parse_layer({"type": "conv3d", "out_channels": 32, "kernel_size": 3, "padding": 1}), (16, 8, 24, 24))
    cfg = Config(batch=2, repeats=1, warmup=0)
    K.release_workspace()
    tracemalloc.start()
    try:
        outcome = run_stages(result.stages, ("in", (16, 8, 24, 24)), cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= outcome.memory.peak_bytes * 1.25 + 2**20


@pytest.mark.parametrize(("name", "size"), [("mobilenet_v2", "3x64x64"), ("dcgan_generator", None)])
def test_memory_estimate_bounds_the_peak_of_a_pass_split_among_threads(name: str, size: str | None) -> None:
    """With two threads and three samples the end-to-end pass runs the graph once per thread on
    its samples, each with its own workspace: tracemalloc's peak over the run stays within the
    estimate, as for one thread."""
    from convcalc.network.evaluate import INPUT_TENSOR, evaluate_network
    from convcalc.network.spec import load_network, override

    spec = override(load_network(str(Path(__file__).resolve().parents[1] / "specs" / f"{name}.yaml")), size)
    stages = [s for row in evaluate_network(spec, batch=3).rows for s in row.stages]
    cfg = Config(batch=3, repeats=1, warmup=0, threads=2)
    K.release_workspace()
    tracemalloc.start()
    try:
        outcome = run_stages(stages, (INPUT_TENSOR, spec.input_shape), cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.end_to_end is not None
    assert peak <= outcome.memory.peak_bytes * 1.25 + 2**20


def test_max_memory_refuses_before_running(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["run", "conv2d", "--in", "64x224x224", "-o", "64", "-k", "3", "--max-memory", "1M"])
    assert result.code == 2
    assert "max-memory" in result.stderr and "Traceback" not in result.stderr


def test_a_shape_mismatch_exits_1(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    real = registry.binding("conv")

    def wrong(*args):  # type: ignore[no-untyped-def]
        plan = real(*args)

        def build(weights):  # type: ignore[no-untyped-def]
            kernel = plan.build(weights)
            return dataclasses.replace(kernel, step=lambda xs: kernel.step(xs)[..., :-1])

        return dataclasses.replace(plan, build=build)

    monkeypatch.setitem(registry.BINDINGS, "conv", wrong)
    result = run_cli(["run", "conv2d", "--in", "3x9x9", "-o", "2", "-k", "3", "--repeats", "1", "-f", "json"])
    assert result.code == 1
    data = json.loads(result.stdout)
    assert data["layers"][0]["shape_ok"] is False


SPECS = [
    ("specs/resnet50.yaml", "3x64x64"),
    ("specs/mobilenet_v2.yaml", "3x64x64"),
    ("specs/shufflenet_v2_x1_0.yaml", "3x64x64"),
    ("specs/dcgan_generator.yaml", None),
    ("specs/deformable_block.yaml", "512x8x8"),
    ("specs/r2plus1d_18.yaml", "3x4x32x32"),
    ("specs/textcnn.yaml", None),
]


@pytest.mark.parametrize(("path", "size"), SPECS, ids=[p for p, _ in SPECS])
def test_run_shipped_specs_at_reduced_size(run_cli, path: str, size: str | None) -> None:  # type: ignore[no-untyped-def]
    args = ["run", path, "--repeats", "1", "--warmup", "0", "-f", "json"] + (["--in", size] if size else [])
    result = run_cli(args)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals"]["shape_ok"] is True
    assert data["layers"] and all(layer["shape_ok"] for layer in data["layers"])
    for key in ("name", "type", "predicted_shape", "output_shape", "shape_ok", "time_s", "gflops"):
        assert key in data["layers"][0]
    conv_rows = [layer for layer in data["layers"] if layer["macs"]]
    assert all(layer["gflops"] > 0 for layer in conv_rows)



def test_run_reads_a_network_from_stdin(run_cli) -> None:  # type: ignore[no-untyped-def]
    """``convcalc run - < spec`` reads standard input once (it used to be read twice: empty the 2nd time)."""
    spec = Path("specs/resnet18.yaml")
    args = ["--repeats", "1", "--warmup", "0", "-f", "json", "--in", "3x32x32"]
    from_stdin = run_cli(["run", "-", *args], input=spec.read_text())
    assert from_stdin.code == 0, from_stdin.stderr
    from_file = json.loads(run_cli(["run", str(spec), *args]).stdout)
    data = json.loads(from_stdin.stdout)
    assert data["totals"]["shape_ok"] is True
    assert [layer["output_shape"] for layer in data["layers"]] == [layer["output_shape"] for layer in from_file["layers"]]
    assert len(data["layers"]) == len(from_file["layers"]) > 10


def test_run_table_and_peak_commands(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["run", "separable2d", "--in", "3x7x7", "-o", "128", "-k", "3", "--verify"])
    assert result.code == 0, result.stderr
    assert "depthwise" in result.stdout and "pointwise" in result.stdout and "all confirmed" in result.stdout
    peak = run_cli(["peak", "-f", "json"])
    assert peak.code == 0
    assert json.loads(peak.stdout)["peak_gflops"] > 0


def test_float64_runs_verify_tightly() -> None:
    result = evaluate_layer(parse_layer({"type": "conv2d", "out_channels": 3, "kernel_size": 3, "dilation": 2}), (2, 9, 9))
    first = run_stages(result.stages, ("in", (2, 9, 9)), Config(dtype="float64", seed=7, repeats=2, warmup=0, verify=True))
    check = first.stages[0].check
    assert check is not None and check.ok and check.max_error < 1e-12
    samples = first.stages[0].timing.samples
    assert len(samples) == 2 and all(math.isfinite(t) and t > 0 for t in samples)


# ---------------------------------------------------------------- memory: plan before allocating


def test_an_oversized_run_is_refused_before_anything_is_allocated() -> None:
    """A 40 GB linear layer with a 1 MiB budget: refused while tracemalloc has seen (almost)
    nothing, so no weight, input or output was made before the check."""
    import convcalc.errors

    result = evaluate_layer(parse_layer({"type": "linear", "out_features": 100_000}), (100_000,))
    tracemalloc.start()
    try:
        with pytest.raises(convcalc.errors.LimitError, match="max-memory"):
            run_stages(result.stages, ("in", (100_000,)), Config(max_memory=2**20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_the_estimate_counts_every_weight_and_temporaries() -> None:
    """The estimate is at least the bytes of all weights (float32, counted from the shapes:
    ``out·in + out`` per linear) plus the input, and it grows with element-wise temporaries."""
    from convcalc.execute.runner import plan_stages

    net = [parse_layer({"type": "linear", "out_features": 300}), parse_layer({"type": "linear", "out_features": 20})]
    stages = []
    shape: tuple[int, ...] = (500,)
    for index, layer in enumerate(net):
        stage = evaluate_layer(layer, shape).stages[0]
        stages.append(stage._replace(name=f"l{index}", inputs=(f"l{index - 1}",) if index else ("in",)))
        shape = stage.output
    plan = plan_stages(stages, ("in", (500,)), Config(batch=4)).memory
    weights = 4 * ((300 * 500 + 300) + (20 * 300 + 20))
    assert plan.weight_bytes == weights
    assert plan.peak_bytes >= weights + 4 * 4 * 500

    def activation_peak(fn: str) -> int:
        layer = evaluate_layer(parse_layer({"type": fn}), (64, 32, 32))
        return plan_stages(layer.stages, ("in", (64, 32, 32)), Config()).memory.peak_bytes

    output = 4 * 64 * 32 * 32
    assert activation_peak("gelu") - activation_peak("relu") >= 10 * output


LARGE_WEIGHTS_SPEC = """\
name: large_weights
input: 3x64x64
layers:
  - flatten
  - {type: linear, out_features: 2048}
  - relu
  - {type: linear, out_features: 1000}
"""


def _child_max_rss(args: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """Run a child, return (exit code, its own peak RSS in bytes from wait4's rusage, stdout)."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return child.returncode, usage.ru_maxrss * 1024, out.read().decode()


def test_peak_rss_stays_within_the_estimate_plus_the_interpreters_baseline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A net whose weights (3·64·64·2048 + 2048·1000 floats, ~104 MiB) dominate: the child's
    peak resident memory stays within the reported estimate plus the RSS of a child that
    imports convcalc and NumPy and does nothing. Making the weights in float64 and casting
    (as before) would exceed it by ~200 MiB."""
    import os
    import sys
    from pathlib import Path

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    spec = tmp_path / "large.yaml"
    spec.write_text(LARGE_WEIGHTS_SPEC)
    # fill the matmul-peak cache first so no child measures it
    assert _child_max_rss(["-m", "convcalc", "peak", "-f", "json"], env)[0] == 0
    imports = "import numpy, convcalc.cli, convcalc.execute.session, convcalc.execute.runner, convcalc.execute.bindings"
    code, baseline, _ = _child_max_rss(["-c", imports], env)
    assert code == 0
    code, peak, stdout = _child_max_rss(
        ["-m", "convcalc", "run", str(spec), "--repeats", "2", "--warmup", "1", "-f", "json"], env
    )
    assert code == 0, stdout
    estimate = json.loads(stdout)["totals"]["estimated_peak_bytes"]
    assert estimate >= 4 * (3 * 64 * 64 * 2048 + 2048 * 1000), "weights alone"
    assert peak <= estimate + baseline, (peak / 2**20, estimate / 2**20, baseline / 2**20)
    assert sys.platform.startswith("linux") or peak > 0


def test_the_default_budget_respects_an_address_space_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Under ``RLIMIT_AS`` = what the process maps now + 200 MiB, a run needing ~400 MiB of
    weights is refused with exit 2 and a message (instead of dying in an allocation)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import re, resource, runpy, sys\n"
        "import numpy\n"
        "size = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 200 * 2**20, resource.RLIM_INFINITY))\n"
        "sys.argv = ['convcalc', 'run', 'linear', '--in', '10000x1', '-o', '10000', '--repeats', '1']\n"
        "runpy.run_module('convcalc', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "MiB" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "specs/textcnn.yaml", "--batch", "0"],
        ["run", "specs/textcnn.yaml", "--batch", "-3"],
        ["run", "conv2d", "--in", "3x8x8", "-o", "2", "-k", "3", "--batch", "0"],
        ["run", "conv2d", "--in", "3x8x8", "-o", "2", "-k", "3", "--seed", "-1"],
        ["run", "conv2d", "--in", "3x8x8", "-o", "2", "-k", "3", "--max-memory", "9" * 300],
        ["run", "conv2d", "--in", "3x8x8", "-o", "2", "-k", "3", "--max-memory", "1e400"],
        ["run", "conv2d", "--in", "3x8x8", "-o", "2", "-k", "3", "--max-memory", "0"],
    ],
    ids=["spec-batch-0", "spec-batch-negative", "layer-batch-0", "seed-negative", "max-memory-300-digits", "max-memory-exp", "max-memory-0"],
)
def test_bad_run_flags_exit_2_with_a_message(run_cli, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(args)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.strip()


# ---------------------------------------------------------------- timing


@pytest.mark.parametrize(
    "samples",
    [
        (1.0, 1.01, 0.99, 1.0, 3.0, 1.02, 0.98, 1.0, 1.01, 0.99),  # one outlier moves max, not the IQR
        (1.0, 2.0, 1.0, 2.0, 1.5),
        (1.0, 1.08),  # two samples: IQR = half the range, not extrapolated beyond them
        (1.0, 1.3),
        (2.0, 2.1, 2.05),
    ],
)
def test_measurement_statistics_match_torch_benchmark(samples: tuple[float, ...]) -> None:
    """Median, IQR and the 10% noise warning as ``torch.utils.benchmark.Measurement`` computes them."""
    benchmark = pytest.importorskip("torch.utils.benchmark")
    from convcalc.execute.timing import Measurement

    m = Measurement(samples)
    theirs = benchmark.Measurement(number_per_run=1, raw_times=list(samples), task_spec=benchmark.utils.common.TaskSpec("pass", "pass"))
    assert m.min == min(samples) and m.median == pytest.approx(theirs.median)
    assert m.iqr == pytest.approx(theirs.iqr)
    assert m.noisy == (not theirs.meets_confidence(0.1))


def test_repeats_fix_the_sample_count_and_adaptive_timing_stops() -> None:
    from convcalc.execute import timing

    calls = []
    result, fixed = timing.measure(lambda: calls.append(1) or len(calls), repeats=4, warmup=2, budget_s=10.0)
    assert len(fixed.samples) == 4 and len(calls) == 6 and result == 6
    _, adaptive = timing.measure(lambda: sum(range(100)), repeats=None, warmup=0, budget_s=0.05)
    assert timing.MIN_SAMPLES <= len(adaptive.samples) <= timing.MAX_SAMPLES
    assert adaptive.per_sample >= 1 and adaptive.min > 0


def test_run_reports_spread_and_an_end_to_end_pass(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["run", "specs/textcnn.yaml", "--repeats", "3", "--warmup", "0", "-f", "json"])
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    e2e = data["totals"]["end_to_end"]
    assert e2e["samples"] == 3 and 0 < e2e["min_s"] <= e2e["median_s"]
    assert all(layer["min_time_s"] <= layer["time_s"] and layer["iqr_s"] >= 0 for layer in data["layers"])
    table = run_cli(["run", "specs/textcnn.yaml", "--repeats", "2", "--warmup", "0"])
    assert "end-to-end forward pass" in table.stdout and "sum of layers" in table.stdout and "IQR ms" in table.stdout
