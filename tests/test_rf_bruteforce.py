"""Receptive fields (Araujo, Norris & Sim, Distill 2019) against brute force.

The network's flat stage graph (``NetResult.stages``) is executed with torch: every convolution
gets all-ones weights, pooling becomes an all-ones window, element-wise layers are identities and
the input is positive, so no gradient can cancel. For one output position, the gradient of the sum
over its channels w.r.t. the input marks exactly the input pixels it depends on.

convcalc's field for unit ``o`` along an axis is the interval ``c + o·j ± (r - 1)/2`` in input
pixels (``r`` size, ``j`` effective stride, ``c`` centre of the first unit). For every unit whose
interval lies inside the input (no padding involved), the first and last influencing pixel along
each axis must be exactly the first and last integer of that interval.

Upsampling and transposed convolution follow the stated fractional-stride rule: the window lies
on the grid refined ``s`` times, as if every refined position were a unit. Where the refined
tensor's units are single input pixels this is exact; deeper in a network the window's end
positions may fall between real units (by the unit's phase ``o mod s``), and the true span is
then narrower, by less than ``(s - 1)·j_out`` per upsampling layer and side. Those networks are
checked for containment within that bound, which is tight: random stacks hit it.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import pytest

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the pure tests still run; the torch oracles below are skipped (needs_torch)
    F = torch = None  # type: ignore[assignment]

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convcalc.errors import ConvcalcError
from convcalc.network.evaluate import evaluate_file, evaluate_network
from convcalc.network.result import LayerRow, NetResult
from convcalc.network.spec import parse_network
from convcalc.parse.yaml import load_text
from convcalc.primitives.activation import Activation, Identity
from convcalc.primitives.conv import ChannelShuffle, Conv, ConvTranspose
from convcalc.primitives.linear import Linear
from convcalc.primitives.merge import Add, Concat, Multiply
from convcalc.primitives.norm import Norm
from convcalc.primitives.padding import Pad
from convcalc.primitives.pool import AdaptivePool, Pool
from convcalc.primitives.resample import PixelShuffle, Upsample
from convcalc.primitives.reshape import ChannelSlice, Flatten
from convcalc.rf import AxisField, AxisStep

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch (the reference oracle)")

# ==============================================================================================
# A torch executor for the flat stage graph (dependency structure only)
# ==============================================================================================


def _pad_args(padding: tuple[tuple[int, int], ...]) -> list[int]:
    """Per-axis (before, after) pairs -> F.pad's last-axis-first flat list."""
    return [amount for pair in reversed(padding) for amount in pair]


def _conv(x: torch.Tensor, op: Conv) -> torch.Tensor:
    rank = len(op.kernel_size)
    weight = torch.ones(op.out_channels, op.in_channels // op.groups, *op.kernel_size, dtype=x.dtype)
    conv = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    return conv(F.pad(x, _pad_args(op.padding)), weight, None, op.stride, 0, op.dilation, op.groups)


def _conv_transpose(x: torch.Tensor, op: ConvTranspose) -> torch.Tensor:
    rank = len(op.kernel_size)
    weight = torch.ones(op.in_channels, op.out_channels // op.groups, *op.kernel_size, dtype=x.dtype)
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
    full = conv(x, weight, None, op.stride, 0, op.output_padding, op.groups, op.dilation)
    crop = tuple(slice(before, size - after) for (before, after), size in zip(op.padding, full.shape[2:], strict=True))
    return full[(slice(None), slice(None), *crop)]


def _pool(x: torch.Tensor, op: Pool, out: tuple[int, ...]) -> torch.Tensor:
    """An all-ones depthwise window (same dependencies as max or average pooling)."""
    rank = len(op.kernel_size)
    channels = x.shape[1]
    extra = tuple((0, s - 1) if op.ceil_mode else (0, 0) for s in op.stride)  # ceil: room for a partial last window
    padded = F.pad(x, _pad_args(tuple((a, b + e) for (a, b), (_, e) in zip(op.padding, extra, strict=True))))
    weight = torch.ones(channels, 1, *op.kernel_size, dtype=x.dtype)
    result = (F.conv1d, F.conv2d, F.conv3d)[rank - 1](padded, weight, None, op.stride, 0, op.dilation, channels)
    return result[(slice(None), slice(None), *(slice(0, n) for n in out[1:]))]


def _upsample(x: torch.Tensor, op: Upsample) -> torch.Tensor:
    mode = op.mode.replace("nearest_exact", "nearest-exact")
    align = op.align_corners if mode not in ("nearest", "nearest-exact") else None
    if op.size is not None:
        return F.interpolate(x, size=op.size, mode=mode, align_corners=align)
    return F.interpolate(x, scale_factor=[float(f) for f in op.scale_factor or ()], mode=mode, align_corners=align)


def apply(op: object, inputs: list[torch.Tensor], out: tuple[int, ...]) -> torch.Tensor:
    x = inputs[0]
    if isinstance(op, Conv):
        return _conv(x, op)
    if isinstance(op, ConvTranspose):
        return _conv_transpose(x, op)
    if isinstance(op, Pool):
        return _pool(x, op, out)
    if isinstance(op, AdaptivePool):
        pool = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[x.dim() - 3]
        result = pool(x, out[1:] if op.keepdims else (1,) * (x.dim() - 2))
        return result if op.keepdims else result.flatten(1)
    if isinstance(op, Upsample):
        return _upsample(x, op)
    if isinstance(op, PixelShuffle):
        return F.pixel_unshuffle(x, op.factor) if op.inverse else F.pixel_shuffle(x, op.factor)
    if isinstance(op, Pad):
        return F.pad(x, _pad_args(op.padding))
    if isinstance(op, ChannelShuffle):
        n, c, *rest = x.shape
        return x.reshape(n, op.groups, c // op.groups, *rest).transpose(1, 2).reshape(n, c, *rest)
    if isinstance(op, Linear):
        weight = torch.ones(op.out_features, op.in_features, dtype=x.dtype)
        return torch.einsum("oc,nc...->no...", weight, x)
    if isinstance(op, ChannelSlice):
        return x[:, op.start : op.stop]
    if isinstance(op, Flatten):
        return torch.flatten(x, op.start_dim, op.end_dim)
    if isinstance(op, (Norm, Activation, Identity)):
        return x
    if isinstance(op, Add):
        return sum(inputs[1:], inputs[0])
    if isinstance(op, Concat):
        return torch.cat(inputs, 1)
    if isinstance(op, Multiply):
        return math.prod(inputs[1:], start=inputs[0])
    raise NotImplementedError(type(op).__name__)


def execute(result: NetResult, x: torch.Tensor, target: str) -> torch.Tensor:
    """Run the flat stage graph up to the stage ``target``; checks every stage's shape on the way."""
    tensors = {"input": x}
    shapes = {r.name: r.output for row in result.rows for r in row.stages}
    for stage in result.stages:
        out = apply(stage.op, [tensors[name] for name in stage.inputs], shapes[stage.name])
        assert tuple(out.shape[1:]) == shapes[stage.name], stage.name
        tensors[stage.name] = out
        if stage.name == target:
            return out
    raise AssertionError(f"no stage {target}")


# ==============================================================================================
# The comparison
# ==============================================================================================


def interval(axis: AxisField, unit: int) -> tuple[Fraction, Fraction]:
    centre = axis.start + unit * axis.jump
    return centre - (axis.size - 1) / 2, centre + (axis.size - 1) / 2


def interior_units(result: NetResult, row: LayerRow, limit: int = 6) -> list[tuple[int, ...]]:
    """Output positions whose field lies inside the input on every axis (spread evenly, at most ``limit``)."""
    assert row.field is not None
    per_axis = []
    for axis, (size, out) in enumerate(zip(result.input_shape[1:], row.output_shape[1:], strict=True)):
        inside = [o for o in range(out) if interval(row.field[axis], o)[0] >= 0 and interval(row.field[axis], o)[1] <= size - 1]
        step = max(1, len(inside) // 3)
        per_axis.append(inside[::step][:3] + inside[-1:])
    units = sorted(set(itertools.product(*per_axis)))
    return units[:: max(1, len(units) // limit)][:limit]


def brute_force(result: NetResult, row: LayerRow, unit: tuple[int, ...]) -> list[tuple[int, int]]:
    """(first, last) input pixel influencing ``unit`` of ``row``'s output, per axis, by autograd."""
    x = torch.rand(1, *result.input_shape, dtype=torch.float64) + 0.5
    x.requires_grad_(True)
    out = execute(result, x, row.name)
    out[(0, slice(None), *unit)].sum().backward()
    assert x.grad is not None
    mask = x.grad[0].abs().sum(0) > 0
    spans = []
    for axis in range(mask.dim()):
        others = tuple(d for d in range(mask.dim()) if d != axis)
        hits = torch.nonzero(mask.any(dim=others) if others else mask).flatten().tolist()
        spans.append((hits[0], hits[-1]))
    return spans


def slack(result: NetResult, row: LayerRow) -> list[Fraction]:
    """Per axis, the most the stated rule may widen each end: ``(u - 1)·j_out`` for every
    refining step (upsampling, transposed convolution) evaluated up to ``row``."""
    total = [Fraction(0)] * (len(row.output_shape) - 1)
    for current in result.rows:
        for stage in current.stages:
            steps, field = stage.stats.rf, stage.field
            if steps is None or field is None or len(steps) != len(total):
                continue
            for axis, (step, out) in enumerate(zip(steps, field, strict=True)):
                if step.upsample > 1:
                    total[axis] += (step.upsample - 1) * out.jump / step.stride
        if current is row:
            break
    return total


def assert_field_is_exact(result: NetResult, row: LayerRow | None = None) -> None:
    """Compare the field of ``row`` (default: the last layer) with brute force on interior units:
    exact ends without upsampling inside the network, else within :func:`slack` of them."""
    row = row or result.rows[-1]
    assert row.field is not None, row.rf_status
    units = interior_units(result, row)
    assert units, "the test network needs output units whose field lies inside the input"
    bounds = slack(result, row)
    for unit in units:
        spans = brute_force(result, row, unit)
        for axis, o, (first, last), extra in zip(row.field, unit, spans, bounds, strict=True):
            lo, hi = interval(axis, o)
            message = f"{row.name} unit {unit}: brute force {spans}, field {lo}..{hi} (slack {extra})"
            assert math.ceil(lo) <= first <= lo + extra, message
            assert hi - extra <= last <= math.floor(hi), message
            if extra == 0:
                assert (first, last) == (math.ceil(lo), math.floor(hi)), message


def network(text: str) -> NetResult:
    return evaluate_network(parse_network(load_text(text, "rf.yaml"), "rf.yaml"))


# ==============================================================================================
# Networks with branches, dilation, striding, transposed convolution and upsampling
# ==============================================================================================

NETWORKS = {
    "resnet-stem-strided": """
input: 1x64x64
layers:
  - {type: conv2d, out_channels: 2, kernel_size: 7, stride: 2, padding: 3}
  - {type: maxpool2d, kernel_size: 3, stride: 2, padding: 1}
  - {type: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
  - {type: conv2d, out_channels: 2, kernel_size: 3, stride: 2, padding: 1}
""",
    "inception-branches-concat": """
input: 2x24x24
layers:
  - {type: conv2d, out_channels: 2, kernel_size: 3, stride: 2}
  - branches:
      - [{type: conv2d, out_channels: 1, kernel_size: 1}]
      - [{type: conv2d, out_channels: 1, kernel_size: 3, padding: 1}]
      - [{type: conv2d, out_channels: 1, kernel_size: 5, padding: 2}]
      - [{type: maxpool2d, kernel_size: 3, stride: 1, padding: 1}, {type: conv2d, out_channels: 1, kernel_size: 1}]
    merge: concat
  - {type: avgpool2d, kernel_size: 2}
""",
    "residual-with-strided-projection": """
input: 2x32x32
layers:
  - residual:
      - {type: conv2d, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}
      - batchnorm2d
      - relu
      - {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
    shortcut: [{type: conv2d, out_channels: 4, kernel_size: 1, stride: 2}]
  - {type: conv2d, out_channels: 4, kernel_size: 3, dilation: 2, padding: 2}
""",
    "asymmetric-kernels-per-axis": """
input: 1x40x30
layers:
  - {type: spatial_separable2d, out_channels: 2, kernel_size: 1x7, padding: [[0, 0], [3, 3]]}
  - {type: conv2d, out_channels: 2, kernel_size: 5x1, stride: 2x1, dilation: 2x1}
  - {type: maxpool2d, kernel_size: [2, 3], stride: [2, 1]}
""",
    "transposed-and-skip": """
input: 1x32x32
layers:
  - {type: conv2d, name: enc, out_channels: 2, kernel_size: 3, padding: 1}
  - {type: maxpool2d, kernel_size: 2}
  - {type: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
  - {type: conv_transpose2d, out_channels: 2, kernel_size: 4, stride: 2, padding: 1}
  - {type: concat, inputs: [previous, enc]}
  - {type: conv2d, out_channels: 1, kernel_size: 3, padding: 1}
""",
    "nearest-bilinear-pixelshuffle": """
input: 4x12x12
layers:
  - {type: upsample, scale_factor: 2, mode: nearest}
  - {type: conv2d, out_channels: 4, kernel_size: 3}
  - {type: upsample, scale_factor: 3, mode: bilinear}
  - {type: conv2d, out_channels: 4, kernel_size: 3, stride: 2}
  - {type: pixel_shuffle, upscale_factor: 2}
  - {type: conv2d, out_channels: 1, kernel_size: 3}
""",
    "bilinear-by-size-and-unshuffle": """
input: 1x10x10
layers:
  - {type: upsample, size: [40, 20], mode: bilinear}
  - {type: pixel_unshuffle, downscale_factor: 2}
  - {type: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
""",
    "wavenet-causal-dilated-1d": """
input: 1x64
layers:
  - {type: conv1d, out_channels: 2, kernel_size: 2, padding: causal, repeat: 4, each: {dilation: [1, 2, 4, 8]}}
  - {type: conv1d, out_channels: 1, kernel_size: 1}
""",
    "separable-grouped-shuffled": """
input: 6x20x20
layers:
  - {type: separable2d, out_channels: 6, kernel_size: 3, stride: 2, padding: 1}
  - {type: shuffle_grouped2d, out_channels: 6, kernel_size: 3, groups: 3, padding: 1}
  - {type: zeropad2d, padding: [[1, 0], [0, 2]]}
  - {type: conv2d, out_channels: 1, kernel_size: 3}
""",
    "shufflenet-v2-unit-split": """
input: 8x16x16
layers:
  - branches:
      - [{type: chunk, chunks: 2, index: 0}]
      - - {type: chunk, chunks: 2, index: 1}
        - {type: conv2d, out_channels: 4, kernel_size: 1}
        - {type: depthwise2d, kernel_size: 3, padding: 1}
        - {type: conv2d, out_channels: 4, kernel_size: 1}
    merge: concat
  - {type: channel_shuffle, groups: 2}
  - {type: conv2d, out_channels: 1, kernel_size: 3}
""",
    "residual-add-on-the-same-grid": """
input: 2x16x16
layers:
  - {type: conv2d, out_channels: 2, kernel_size: 3}
  - name: se
    residual:
      - {type: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
    merge: add
  - {type: conv2d, out_channels: 2, kernel_size: 3, stride: 2}
""",
}


@needs_torch
@pytest.mark.parametrize("name", list(NETWORKS))
def test_receptive_field_matches_brute_force(name: str) -> None:
    result = network(NETWORKS[name])
    assert not [n for n in result.warnings() if "not aligned" in n], "these networks merge aligned paths only"
    assert_field_is_exact(result)


@needs_torch
@pytest.mark.parametrize(
    ("example", "layer"),
    [
        pytest.param("dilated_stack.yaml", "dilated.2", id="dilated_stack"),
        pytest.param("unet_small.yaml", "head", id="unet_small"),
        pytest.param("tiny_resnet.yaml", "layer2.1.relu", id="tiny_resnet-stage2"),
        pytest.param("tiny_resnet.yaml", "layer2.0.add", id="tiny_resnet-projection-add"),
    ],
)
def test_example_specs_match_brute_force(example: str, layer: str) -> None:
    result = evaluate_file(str(Path(__file__).resolve().parent.parent / "specs" / "examples" / example))
    (row,) = [r for r in result.rows if r.name == layer]
    assert_field_is_exact(result, row)


@needs_torch
def test_seed_dilated_stack_3_7_15() -> None:
    """Seed 001: stacked 3x3 convolutions with dilation 1, 2, 4 see 3x3, 7x7, 15x15 pixels."""
    sizes = []
    for depth in (1, 2, 3):
        result = network(
            "input: 1x40x40\nlayers:\n"
            + f"  - {{type: conv2d, out_channels: 1, kernel_size: 3, repeat: {depth}, each: {{dilation: {[1, 2, 4][:depth]}}}}}\n"
        )
        assert_field_is_exact(result)
        field = result.rows[-1].field
        assert field is not None
        sizes.append(int(field[0].size))
    assert sizes == [3, 7, 15]


def test_unaligned_merge_is_reported_not_hidden() -> None:
    result = network(
        """
input: 1x20x20
layers:
  - {type: conv2d, name: a, out_channels: 1, kernel_size: 3, stride: 2}
  - {type: conv2d, name: b, input: input, out_channels: 1, kernel_size: 4, stride: 2}
  - {type: add, inputs: [a, b]}
"""
    )
    (note,) = [n for n in result.warnings() if "not aligned" in n]
    assert "'a' (effective stride 2x2, centre 1x1) vs 'b' (effective stride 2x2, centre 3/2x3/2)" in note


# ==============================================================================================
# Property: random 1D stacks of windows, strides, dilations, transposed convs and upsampling
# ==============================================================================================


@st.composite
def stacks(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "transposed", "upsample"]))
        k, s = draw(st.integers(1, 5)), draw(st.integers(1, 3))
        if kind == "conv":
            d = draw(st.integers(1, 3))
            p = draw(st.integers(0, d * (k - 1)))
            lines.append(f"{{type: conv1d, out_channels: 1, kernel_size: {k}, stride: {s}, dilation: {d}, padding: {p}}}")
        elif kind == "pool":
            p = draw(st.integers(0, k // 2))
            mode = draw(st.sampled_from(["maxpool1d", "avgpool1d"]))
            lines.append(f"{{type: {mode}, kernel_size: {k}, stride: {s}, padding: {p}}}")
        elif kind == "transposed":
            p = draw(st.integers(0, k - 1))
            lines.append(f"{{type: conv_transpose1d, out_channels: 1, kernel_size: {k}, stride: {s}, padding: {p}}}")
        else:
            mode = draw(st.sampled_from(["nearest", "linear"]))
            lines.append(f"{{type: upsample, scale_factor: {draw(st.integers(2, 3))}, mode: {mode}}}")
    return "input: 1x48\nlayers:\n" + "".join(f"  - {line}\n" for line in lines)


@needs_torch
@settings(max_examples=60)
@given(stacks())
def test_random_1d_stacks_match_brute_force(text: str) -> None:
    try:
        result = network(text)
    except ConvcalcError:
        assume(False)
        return
    field = result.rows[-1].field
    assert field is not None
    assume(any(interval(field[0], o)[0] >= 0 and interval(field[0], o)[1] <= 47 for o in range(result.output_shape[1])))
    assert_field_is_exact(result)


# ==============================================================================================
# The integer fast path of AxisField.step equals the general Fraction formula
# ==============================================================================================

fractions = st.builds(Fraction, st.integers(-40, 40), st.sampled_from([1, 1, 2, 3, 4]))


@given(
    st.builds(AxisField, fractions.map(lambda f: abs(f) + 1), fractions.map(lambda f: abs(f) + 1), fractions),
    st.builds(AxisStep, st.integers(1, 9), st.integers(1, 4), st.integers(-3, 8).map(Fraction), st.sampled_from([1, 1, 2, 3])),
)
def test_axis_step_matches_the_distill_formula(axis: AxisField, step: AxisStep) -> None:
    jump = axis.jump / step.upsample
    expected = AxisField(
        size=axis.size + (step.kernel - 1) * jump,
        jump=jump * step.stride,
        start=axis.start + (Fraction(step.kernel - 1, 2) - step.pad) * jump,
    )
    got = axis.step(step)
    assert got == expected
    assert all(isinstance(value, Fraction) for value in (got.size, got.jump, got.start))


@needs_torch
def test_fractional_stride_rule_is_a_stated_bound_not_exact_mid_network() -> None:
    """A 4/2/1 transposed conv reading units of 8 pixels: output 6 reads transposed outputs 5..7,
    i.e. its input units 2..4 whose fields span pixels 1..12; the refined-grid window also covers
    the phantom position 1.5, so the rule reports 0..12: wider by (s - 1)·j_out = 1 at one end."""
    result = network(NETWORKS["transposed-and-skip"])
    row = result.rows[-1]
    assert row.field is not None
    assert [interval(axis, 6) for axis in row.field] == [(0, 12), (0, 12)]
    assert brute_force(result, row, (6, 6)) == [(1, 12), (1, 12)]
    assert slack(result, row) == [1, 1]
