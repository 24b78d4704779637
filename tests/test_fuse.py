"""The fused end-to-end pass (:mod:`convcalc.execute.fuse`): folded weights give what torch
computes for the convolution followed by its batch norm, the graph rewrite fuses only where
that is safe, the fused pass equals the unfused one on shipped networks, and the memory
estimate counts the folded copies."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convcalc.execute import fuse
from convcalc.execute.runner import Config, plan_stages, prepare
from convcalc.network.evaluate import INPUT_TENSOR, evaluate_network
from convcalc.network.spec import load_network, override, parse_network
from convcalc.parse.yaml import load_text

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _bn(rng: np.random.Generator, channels: int) -> tuple[np.ndarray, ...]:
    mean = rng.standard_normal(channels)
    var = rng.uniform(0.1, 3.0, channels)
    gamma = rng.standard_normal(channels)
    beta = rng.standard_normal(channels)
    return mean, var, gamma, beta


@settings(max_examples=25, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]),
    per_in=st.integers(1, 3),
    per_out=st.integers(1, 3),
    bias=st.booleans(),
    transposed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_folded_weights_compute_conv_then_batch_norm(
    groups: int, per_in: int, per_out: int, bias: bool, transposed: bool, seed: int
) -> None:
    """torch runs ``batch_norm(conv(x, w, b))`` and ``conv(x, w', b')`` with the folded weights:
    the same output (float64), for grouped and transposed convolutions too."""
    rng = np.random.default_rng(seed)
    c_in, c_out = groups * per_in, groups * per_out
    shape = (c_in, per_out, 3, 2) if transposed else (c_out, per_in, 3, 2)
    w = rng.standard_normal(shape)
    b = rng.standard_normal(c_out) if bias else None
    mean, var, gamma, beta = _bn(rng, c_out)
    from convcalc.execute.layers import batch_norm_affine

    scale, shift = batch_norm_affine(mean, var, gamma, beta)
    if transposed:
        w2, b2 = fuse.fold_conv_transpose(w, b, scale, shift, groups)
    else:
        w2, b2 = fuse.fold_conv(w, b, scale, shift)
    x = torch.from_numpy(rng.standard_normal((2, c_in, 5, 6)))
    op = F.conv_transpose2d if transposed else F.conv2d
    tb = None if b is None else torch.from_numpy(b)
    expected = F.batch_norm(
        op(x, torch.from_numpy(w), tb, stride=2, groups=groups),
        *(torch.from_numpy(v) for v in (mean, var, gamma, beta)),
        eps=1e-5,
    )
    got = op(x, torch.from_numpy(w2), torch.from_numpy(b2), stride=2, groups=groups)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-9, atol=1e-9)


def test_folded_conv_weights_equal_torchs_own_fusion() -> None:
    """``fold_conv`` gives the weights of ``torch.nn.utils.fusion.fuse_conv_bn_weights``."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    from convcalc.execute.layers import batch_norm_affine

    rng = np.random.default_rng(3)
    w, b = rng.standard_normal((6, 4, 3, 3)), rng.standard_normal(6)
    mean, var, gamma, beta = _bn(rng, 6)
    w2, b2 = fuse.fold_conv(w, b, *batch_norm_affine(mean, var, gamma, beta))
    tw, tb = fuse_conv_bn_weights(*(torch.from_numpy(v) for v in (w, b, mean, var)), 1e-5, *(torch.from_numpy(v) for v in (gamma, beta)))
    np.testing.assert_allclose(w2, tw.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b2, tb.detach().numpy(), rtol=1e-12)


GRAPH = """\
name: fusion_cases
input: 8x12x12
layers:
  - {name: c1, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  - {name: b1, type: batchnorm2d}
  - {name: r1, type: relu}
  - {name: c2, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2, type: batchnorm2d}
  - {name: sum, type: add, inputs: [b2, r1]}
  - {name: r2, type: relu}
  - {name: c3, type: conv2d, out_channels: 8, kernel_size: 1}
  - {name: b3, type: batchnorm2d, input: c3}
  - {name: r3, type: relu6, input: c3}
  - {name: cat, type: concat, inputs: [b3, r3]}
  - {name: c4, type: conv2d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1, groups: 8}
  - {name: r6, type: relu}
  - {name: b5, type: batchnorm2d}
  - {name: t1, type: conv_transpose2d, out_channels: 4, kernel_size: 4, stride: 2, padding: 1}
  - {name: b4, type: batchnorm2d}
  - {name: r4, type: tanh}
  - {name: flat, type: flatten}
  - {name: r5, type: relu}
"""


def _stages(text: str) -> tuple[list, tuple]:  # type: ignore[type-arg]
    spec = parse_network(load_text(text, "fusion_cases.yaml"), "fusion_cases.yaml")
    result = evaluate_network(spec, batch=1)
    return [s for row in result.rows for s in row.stages], (INPUT_TENSOR, spec.input_shape)


def test_the_rewrite_fuses_only_where_it_is_safe() -> None:
    """Batch norms fold into a convolution read by nothing else; an activation whose only input
    is a convolution's output runs as its epilogue, and nothing folds after that (b5); other
    activations and adds run in place only on fresh arrays with one reader: never on a tensor
    two stages read (c3), never on a view (flatten), never on the network's input."""
    stages, source = _stages(GRAPH)
    steps = plan_stages(stages, source, Config()).steps
    names = [s.name for s in stages]
    by_output = {s.output: s for s in steps}
    folded = {names[s.stage]: [names[i] for i in s.folds] for s in steps if s.folds}
    assert folded == {"c1": ["b1"], "c2": ["b2"], "t1": ["b4"]}
    epilogues = {names[s.stage]: names[s.epilogue] for s in steps if s.epilogue is not None}
    assert epilogues == {"c1": "r1", "c4": "r6", "t1": "r4"}
    assert "b5" in by_output and not by_output["b5"].folds  # r6 stands between c4 and b5
    in_place = {s.output for s in steps if s.in_place}
    assert in_place == {"sum", "r2"}
    assert not by_output["b3"].folds and not by_output["r3"].in_place  # c3 has two readers
    assert by_output["r3"].epilogue is None
    assert "r5" in by_output and not by_output["r5"].in_place  # flatten returns a view
    unfused = plan_stages(stages, source, Config(fuse=False)).steps
    assert [s.output for s in unfused] == names


def _outputs(stages: list, source: tuple, **cfg: object) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    fused = prepare(stages, source, Config(**cfg))  # type: ignore[arg-type]
    plain = prepare(stages, source, Config(fuse=False, **cfg))  # type: ignore[arg-type]
    x_before = fused.x.copy()
    out = fused.output(), plain.output()
    np.testing.assert_array_equal(fused.x, x_before)  # the input is never written
    return out


def test_the_fused_pass_equals_the_unfused_one_on_the_cases_graph() -> None:
    stages, source = _stages(GRAPH)
    got, want = _outputs(stages, source, dtype="float64", batch=2)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("name", "size"), [("resnet18", "3x64x64"), ("mobilenet_v2", "3x64x64"), ("dcgan_generator", None)])
def test_the_fused_pass_equals_the_unfused_one_on_shipped_networks(name: str, size: str | None) -> None:
    """A second pass gives the same answer too (in-place steps never write what a later pass reads)."""
    from pathlib import Path

    spec = override(load_network(str(Path(__file__).resolve().parents[1] / "specs" / f"{name}.yaml")), size)
    result = evaluate_network(spec, batch=1)
    stages = [s for row in result.rows for s in row.stages]
    ready = prepare(stages, (INPUT_TENSOR, spec.input_shape), Config(dtype="float64"))
    plain = prepare(stages, (INPUT_TENSOR, spec.input_shape), Config(dtype="float64", fuse=False))
    assert len(ready.steps) < len(plain.steps)
    first, second, want = ready.output(), ready.output(), plain.output()
    np.testing.assert_allclose(first, want, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(want).max())))
    np.testing.assert_array_equal(first, second)


def test_the_estimate_counts_the_folded_weights() -> None:
    """Folding makes a second copy of each folded convolution's weights, with a bias (c1 had
    none): the estimate grows by exactly those bytes."""
    stages, source = _stages(GRAPH)
    fused = plan_stages(stages, source, Config()).memory
    plain = plan_stages(stages, source, Config(fuse=False)).memory
    conv_bytes = 4 * ((8 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 4 * 16 + 4))  # c1, c2, t1 (reading b5: 8 channels)
    assert fused.weight_bytes - plain.weight_bytes == conv_bytes


@st.composite
def graphs(draw: st.DrawFn) -> str:
    """Random graphs of convolutions (grouped, transposed, with or without bias), batch norms,
    in-place-able activations and adds, every tensor named so later items can read any earlier
    one (tensors with several readers, merges of a tensor with itself, a flatten view)."""
    channels = draw(st.sampled_from([2, 4]))
    lines = [f"name: fuzz\ninput: {channels}x6x6\nlayers:"]
    count = draw(st.integers(2, 9))
    for i in range(count):
        prev = f"t{i - 1}" if i else None
        source = "" if prev is None or draw(st.booleans()) else f", input: t{draw(st.integers(0, i - 1))}"
        kind = draw(st.sampled_from(["conv", "convt", "bn", "act", "add", "convbn"] if i else ["conv", "convt", "bn", "act", "convbn"]))
        if kind == "convbn":  # a convolution whose only reader is a batch norm (most of the time)
            k = draw(st.sampled_from([1, 3]))
            lines.append(f"  - {{name: t{i}c, type: conv2d, out_channels: {channels}, kernel_size: {k}, padding: {k // 2}{source}}}")
            item = "type: batchnorm2d"
        elif kind == "conv":
            k = draw(st.sampled_from([1, 3]))
            groups = draw(st.sampled_from([1, channels]))
            bias = draw(st.booleans())
            item = f"type: conv2d, out_channels: {channels}, kernel_size: {k}, padding: {k // 2}, groups: {groups}, bias: {str(bias).lower()}{source}"
        elif kind == "convt":
            item = f"type: conv_transpose2d, out_channels: {channels}, kernel_size: 3, padding: 1, bias: {str(draw(st.booleans())).lower()}{source}"
        elif kind == "bn":
            item = f"type: batchnorm2d{source}"
        elif kind == "act":
            item = f"type: {draw(st.sampled_from(['relu', 'relu6', 'tanh']))}{source}"
        else:
            other = draw(st.integers(0, i - 1))
            item = f"type: add, inputs: [t{i - 1}, t{other}]"
        lines.append(f"  - {{name: t{i}, {item}}}")
    if draw(st.booleans()):
        lines.append(f"  - {{name: flat, type: flatten}}\n  - {{name: out, type: {draw(st.sampled_from(['relu', 'tanh']))}}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None)
@given(graphs())
def test_random_graphs_fuse_to_the_unfused_result(text: str) -> None:
    """Whatever the graph, the fused pass gives the unfused pass's output (float64), never
    writes the network's input, and a second pass gives the same answer."""
    stages, source = _stages(text)
    fused = prepare(stages, source, Config(dtype="float64", batch=2))
    plain = prepare(stages, source, Config(dtype="float64", batch=2, fuse=False))
    before = fused.x.copy()
    first, want = fused.output(), plain.output()
    np.testing.assert_allclose(first, want, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(want).max())))
    np.testing.assert_array_equal(fused.x, before)
    np.testing.assert_array_equal(fused.output(), first)


def _add_one_counted() -> tuple[list[int], Callable[[np.ndarray], None]]:
    """An epilogue that adds 1 in place (not idempotent: a block seen twice shows) and the sizes
    of the blocks it saw."""
    calls: list[int] = []

    def add_one(a: np.ndarray) -> None:
        calls.append(a.size)
        np.add(a, 1.0, out=a)

    return calls, add_one


EPILOGUE_CASES = [
    # (algorithm, input shape, weight shape, stride, padding, groups)
    ("matmul", (2, 8, 10, 10), (12, 8, 1, 1), 1, 0, 1),  # widening: the bias as a row of ones in the GEMM
    ("matmul", (2, 8, 10, 10), (6, 8, 1, 1), 1, 0, 1),
    ("im2col", (2, 6, 11, 9), (10, 6, 3, 3), 2, 1, 1),
    ("winograd", (2, 16, 12, 12), (16, 16, 3, 3), 1, 1, 1),
    ("rowsum", (2, 12, 9, 9), (12, 1, 3, 3), 1, 1, 12),
    ("taps", (2, 12, 13, 11), (24, 1, 3, 3), 2, 1, 12),  # depthwise columns, channel multiplier 2
    ("taps", (2, 12, 17), (12, 1, 5), 2, 2, 12),  # 1-D: the tap loop
    ("taps", (1, 4, 6, 7, 5), (4, 1, 3, 3, 3), 2, 1, 4),  # 3-D: the tap loop
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("algorithm", "x_shape", "w_shape", "stride", "padding", "groups"), EPILOGUE_CASES)
def test_every_conv_path_applies_its_epilogue_once_to_every_output(
    algorithm: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: int,
    padding: int,
    groups: int,
    threads: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run_plan(..., epilogue=f)`` is ``f(conv(x, w) + b)`` by torch, for each path, on one and two
    threads (samples or channels split among them, small as these are). ``f`` adds 1 in place,
    so a block it missed or saw twice would show."""
    from convcalc.execute import conv, parallel

    monkeypatch.setattr(conv, "PARALLEL_MIN_MACS", 0)
    calls, add_one = _add_one_counted()

    rng = np.random.default_rng(len(x_shape) * 100 + w_shape[0])
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    plan = conv.plan_conv(x.shape, w.shape, stride, padding, 1, groups, algorithm=algorithm)  # type: ignore[arg-type]
    assert plan.path == algorithm
    with parallel.using(threads):
        got = conv.run_plan(plan, x, w, b, conv.pack_conv(w, plan, b), epilogue=add_one)
    assert sum(calls) == got.size
    if threads == 2 and (x.shape[0] == 2 or algorithm == "taps"):
        assert len(calls) >= 2
    op = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.ndim]
    want = op(*(torch.from_numpy(v.astype(np.float64)) for v in (x, w, b)), stride=stride, padding=padding, groups=groups) + 1.0
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)


SPLIT_NETWORKS = [
    ("resnet18", "3x48x48"),
    ("mobilenet_v2", "3x48x48"),
    ("dcgan_generator", None),
    ("shufflenet_v2_x1_0", "3x64x64"),
    ("efficientnet_b0", "3x48x48"),  # squeeze-and-excitation: the gate comes first in the multiply
    ("mobilenet_v3_large", "3x48x48"),
    ("deformable_block", "512x10x10"),
    ("textcnn", "300x20"),
    ("wavenet", "256x300"),
    ("unet", "1x188x188"),
    ("p3d_block", "256x4x8x8"),
]


@pytest.mark.parametrize(("name", "size"), SPLIT_NETWORKS)
def test_the_pass_split_by_samples_among_threads_equals_one_thread(name: str, size: str | None) -> None:
    """With two threads and three samples, each thread runs the whole graph on its samples (the
    kernels were planned for all three): the joined output is the one-thread pass's (float64),
    for convolutions of every rank, transposed and deformable ones, pools, concats, linears."""
    from pathlib import Path

    from convcalc.execute import parallel

    spec = override(load_network(str(Path(__file__).resolve().parents[1] / "specs" / f"{name}.yaml")), size)
    result = evaluate_network(spec, batch=3)
    stages = [s for row in result.rows for s in row.stages]
    ready = prepare(stages, (INPUT_TENSOR, spec.input_shape), Config(dtype="float64", batch=3, threads=2))
    with parallel.using(1):
        want = ready.output()
    with parallel.using(2):
        assert len(parallel.whole(3)) == 2
        got = ready.output()
    assert got.shape == want.shape == (3, *result.rows[-1].stages[-1].output)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(want).max())))


TRANSPOSED_EPILOGUE_CASES = [
    # (algorithm, input shape, weight shape, stride, padding, groups)
    ("phases", (2, 6, 5, 4), (6, 4, 4, 4), 2, 1, 1),
    ("col2im", (2, 6, 5, 4), (6, 4, 4, 4), 2, 1, 1),
    ("col2im", (3, 32, 4, 4), (32, 16, 4, 4), 2, 1, 1),  # many channels: channels-last col2im
    ("phases", (2, 4, 7), (4, 3, 3), 2, 1, 2),  # 1-D, grouped
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("algorithm", "x_shape", "w_shape", "stride", "padding", "groups"), TRANSPOSED_EPILOGUE_CASES)
def test_transposed_convs_apply_their_epilogue_once_to_every_output(
    algorithm: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: int,
    padding: int,
    groups: int,
    threads: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run_transpose_plan(..., epilogue=f)`` is ``f(conv_transpose(x, w) + b)`` by torch on one
    and two threads (col2im splits samples); ``f`` adds 1, so a missed or repeated block shows."""
    from convcalc.execute import parallel, transposed

    monkeypatch.setattr(transposed, "PARALLEL_MIN_MACS", 0)
    rng = np.random.default_rng(len(x_shape) * 10 + x_shape[1])
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[1] * groups).astype(np.float32)
    plan = transposed.plan_conv_transpose(x.shape, w.shape, stride, padding, 0, 1, groups, algorithm=algorithm)  # type: ignore[arg-type]
    assert (plan.col2im is not None) == (algorithm == "col2im")
    calls, add_one = _add_one_counted()

    packed = transposed.pack_col2im(w, groups) if plan.channels_last else None
    with parallel.using(threads):
        got = transposed.run_transpose_plan(plan, x, w, b, packed, epilogue=add_one)
    assert sum(calls) == got.size
    op = {3: F.conv_transpose1d, 4: F.conv_transpose2d}[x.ndim]
    want = op(*(torch.from_numpy(v.astype(np.float64)) for v in (x, w, b)), stride=stride, padding=padding, groups=groups) + 1.0
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
