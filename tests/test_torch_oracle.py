"""PyTorch as the oracle: output shapes, parameter counts, FLOPs and rejections, per layer type.

For every drawn configuration the real ``torch.nn`` module (or a small ``Sequential`` of them for
composite types) is built and run on zeros under ``torch.no_grad()``; convcalc is asked through
``convcalc.parse.layer.parse_layer`` + ``convcalc.engine.evaluate_layer`` (and through the CLI for a
subset). Then:

* torch accepts -> convcalc gives the same output shape, weights, biases, and
  ``2 × MACs == torch.utils.flop_counter`` FLOPs (which counts transposed convolutions per input
  position and ignores bias);
* torch raises (constructor or forward) -> convcalc raises a ConvcalcError with exit code 2.

An empty output tensor from torch counts as a refusal: torch's grouped ConvTranspose returns a
``(C, 0)`` tensor where the ungrouped one raises "Output size is too small", and a conv with zero
input channels returns an empty tensor. The one documented difference, tested explicitly below:
``padding='same'`` with stride > 1 (torch refuses; convcalc follows TF/Keras and says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convcalc.engine import evaluate_layer
from convcalc.errors import ConvcalcError
from convcalc.parse.layer import parse_layer
from convcalc.report import layer_to_dict

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
PAD = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}
MAX_SIZE = {1: 12, 2: 8, 3: 5}  # input size per axis, small so torch runs in microseconds
MAX_KERNEL = {1: 4, 2: 4, 3: 3}

Pairs = tuple[tuple[int, int], ...]


# --------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchOutcome:
    """What torch did: the output shape (channels first, no batch) and counts, or the error it raised."""

    shape: tuple[int, ...] | None
    weights: int = 0
    biases: int = 0
    flops: int = 0
    error: str = ""

    @property
    def rejected(self) -> bool:
        return self.shape is None


def run_torch(build: Callable[[], nn.Module], shape: tuple[int, ...]) -> TorchOutcome:
    try:
        module = build()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = module(torch.zeros(1, *shape))
    except (RuntimeError, ValueError) as err:  # torch's two ways of refusing a configuration
        return TorchOutcome(None, error=f"{type(err).__name__}: {err}")
    if 0 in out.shape:
        # torch's grouped transposed path returns e.g. a (2, 0) tensor where the ungrouped path raises
        # "Output size is too small"; an empty output is a refusal either way.
        return TorchOutcome(None, error=f"empty output {tuple(out.shape[1:])}")
    weights = sum(p.numel() for name, p in module.named_parameters() if name.endswith("weight"))
    biases = sum(p.numel() for name, p in module.named_parameters() if name.endswith("bias"))
    assert weights + biases == sum(p.numel() for p in module.parameters())
    return TorchOutcome(tuple(out.shape[1:]), weights, biases, counter.get_total_flops())


def run_convcalc(kind: str, shape: tuple[int, ...], fields: dict[str, object]) -> dict[str, object] | ConvcalcError:
    try:
        spec = parse_layer({"type": kind, **fields})
        return layer_to_dict(evaluate_layer(spec, shape))
    except ConvcalcError as err:
        return err


def assert_agree(ours: dict[str, object] | ConvcalcError, theirs: TorchOutcome, what: str) -> None:
    if theirs.rejected:
        assert isinstance(ours, ConvcalcError), f"{what}: torch refuses ({theirs.error}) but convcalc accepts: {ours}"
        assert ours.exit_code == 2
        return
    assert not isinstance(ours, ConvcalcError), f"{what}: torch accepts (-> {theirs.shape}) but convcalc refuses: {ours}"
    assert ours["output_shape"] == list(theirs.shape), what
    assert (ours["weights"], ours["biases"]) == (theirs.weights, theirs.biases), what
    assert ours["params"] == theirs.weights + theirs.biases, what
    assert 2 * ours["macs"] == theirs.flops, f"{what}: torch.utils.flop_counter counts {theirs.flops} FLOPs"


def flat_pad(pairs: Pairs) -> tuple[int, ...]:
    """``F.pad`` order: last axis first, (before, after) each."""
    return tuple(v for pair in reversed(pairs) for v in pair)


def write_padding(pairs: Pairs, style: str) -> object:
    """The same padding in one of the forms convcalc accepts (exercises the parser too)."""
    symmetric = all(a == b for a, b in pairs)
    if style == "text-pairs" or not symmetric:
        return "x".join(f"{a}:{b}" for a, b in pairs) if style == "text-pairs" else [list(p) for p in pairs]
    befores = [a for a, _ in pairs]
    if style == "int" and len(set(befores)) == 1:
        return befores[0]
    if style == "text":
        return "x".join(map(str, befores))
    return befores


def write_axes(values: tuple[int, ...]) -> object:
    return values[0] if len(set(values)) == 1 else list(values)


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


def axes(rank: int, low: int, high: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(low, high), min_size=rank, max_size=rank).map(tuple)


@st.composite
def channels(draw: st.DrawFn, max_groups: int = 4) -> tuple[int, int, int]:
    """(c_in, c_out, groups): usually divisible, sometimes not (torch must then refuse)."""
    groups = draw(st.integers(1, max_groups))
    if draw(st.integers(0, 5)) == 0:
        return draw(st.integers(1, 9)), draw(st.integers(1, 9)), groups
    return groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3)), groups


@st.composite
def paddings(draw: st.DrawFn, rank: int, high: int = 3) -> Pairs:
    if draw(st.booleans()):
        return tuple((p, p) for p in draw(axes(rank, 0, high)))
    return tuple(zip(draw(axes(rank, 0, high)), draw(axes(rank, 0, high)), strict=True))


STYLES = st.sampled_from(["int", "list", "text", "text-pairs"])


@dataclass(frozen=True)
class ConvCase:
    rank: int
    c_in: int
    c_out: int
    groups: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Pairs
    dilation: tuple[int, ...]
    bias: bool = True
    style: str = "list"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.c_in, *self.size)

    def fields(self) -> dict[str, object]:
        return {
            "out_channels": self.c_out,
            "kernel_size": write_axes(self.kernel),
            "stride": write_axes(self.stride),
            "padding": write_padding(self.padding, self.style),
            "dilation": write_axes(self.dilation),
            "groups": self.groups,
            "bias": self.bias,
        }

    def module(self) -> nn.Module:
        symmetric = all(a == b for a, b in self.padding)
        conv = CONV[self.rank](
            self.c_in,
            self.c_out,
            self.kernel,
            stride=self.stride,
            padding=tuple(a for a, _ in self.padding) if symmetric else 0,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias,
        )
        return conv if symmetric else nn.Sequential(PAD[self.rank](flat_pad(self.padding), 0.0), conv)


@st.composite
def conv_cases(draw: st.DrawFn) -> ConvCase:
    rank = draw(st.sampled_from([1, 2, 3]))
    c_in, c_out, groups = draw(channels())
    return ConvCase(
        rank,
        c_in,
        c_out,
        groups,
        draw(axes(rank, 1, MAX_SIZE[rank])),
        draw(axes(rank, 1, MAX_KERNEL[rank])),
        draw(axes(rank, 1, 3)),
        draw(paddings(rank)),
        draw(axes(rank, 1, 3)),
        draw(st.booleans()),
        draw(STYLES),
    )


@dataclass(frozen=True)
class TransposedCase:
    rank: int
    c_in: int
    c_out: int
    groups: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    bias: bool = True
    explicit_output_padding: bool = True

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.c_in, *self.size)

    def fields(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "out_channels": self.c_out,
            "kernel_size": write_axes(self.kernel),
            "stride": write_axes(self.stride),
            "padding": write_axes(self.padding),
            "dilation": write_axes(self.dilation),
            "groups": self.groups,
            "bias": self.bias,
        }
        if self.explicit_output_padding or any(self.output_padding):
            fields["output_padding"] = write_axes(self.output_padding)
        return fields

    def module(self) -> nn.Module:
        return TRANSPOSED[self.rank](
            self.c_in,
            self.c_out,
            self.kernel,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            groups=self.groups,
            bias=self.bias,
            dilation=self.dilation,
        )


@st.composite
def transposed_cases(draw: st.DrawFn) -> TransposedCase:
    rank = draw(st.sampled_from([1, 2, 3]))
    c_in, c_out, groups = draw(channels())
    stride, dilation = draw(axes(rank, 1, 3)), draw(axes(rank, 1, 3))
    # output_padding: usually valid (< max(stride, dilation)), one draw in six anything up to 3
    output_padding = tuple(
        draw(st.integers(0, 3) if draw(st.integers(0, 5)) == 0 else st.integers(0, max(s, d) - 1))
        for s, d in zip(stride, dilation, strict=True)
    )
    return TransposedCase(
        rank,
        c_in,
        c_out,
        groups,
        draw(axes(rank, 1, {1: 7, 2: 5, 3: 4}[rank])),
        draw(axes(rank, 1, MAX_KERNEL[rank])),
        stride,
        draw(axes(rank, 0, {1: 3, 2: 3, 3: 1}[rank])),
        output_padding,
        dilation,
        draw(st.booleans()),
        draw(st.booleans()),
    )


# --------------------------------------------------------------------------------------------
# conv1d / conv2d / conv3d
# --------------------------------------------------------------------------------------------


def check_conv(case: ConvCase, kind: str | None = None) -> None:
    kind = kind or f"conv{case.rank}d"
    assert_agree(run_convcalc(kind, case.shape, case.fields()), run_torch(case.module, case.shape), repr(case))


@settings(max_examples=900)
@given(case=conv_cases())
# kernel exactly fills the padded input (output 1) / one tap too many (refused)
@example(case=ConvCase(2, 1, 1, 1, (5, 5), (3, 3), (1, 1), ((1, 0), (0, 1)), (2, 2)))
@example(case=ConvCase(2, 1, 1, 1, (5, 5), (3, 3), (1, 1), ((1, 0), (0, 0)), (2, 2)))
# refused along the LAST axis only (a counter checking the first axis only would accept it)
@example(case=ConvCase(3, 2, 2, 1, (5, 5, 2), (3, 3, 3), (1, 1, 1), ((0, 0),) * 3, (1, 1, 1)))
# groups divide c_in but not c_out / c_out but not c_in
@example(case=ConvCase(1, 4, 6, 4, (9,), (3,), (1,), ((0, 0),), (1,)))
@example(case=ConvCase(1, 6, 4, 4, (9,), (3,), (1,), ((0, 0),), (1,)))
# depthwise-shaped grouping, stride larger than the input, per-axis everything
@example(case=ConvCase(2, 6, 12, 6, (4, 7), (1, 3), (5, 2), ((0, 0), (2, 1)), (1, 3), False, "text-pairs"))
def test_conv_matches_torch(case: ConvCase) -> None:
    check_conv(case)


@pytest.mark.parametrize(
    ("kind", "case"),
    [
        pytest.param("atrous2d", ConvCase(2, 3, 4, 1, (9, 9), (3, 3), (1, 1), ((0, 0),) * 2, (2, 4)), id="atrous2d"),
        pytest.param(
            "grouped3d", ConvCase(3, 4, 8, 2, (4, 5, 6), (2, 3, 1), (1, 2, 1), ((1, 1),) * 3, (1, 1, 2)), id="grouped3d"
        ),
        pytest.param("dilated1d", ConvCase(1, 2, 2, 2, (20,), (4,), (3,), ((2, 2),), (3,)), id="dilated1d"),
    ],
)
def test_conv_aliases_match_torch(kind: str, case: ConvCase) -> None:
    check_conv(case, kind)


# --------------------------------------------------------------------------------------------
# conv_transpose1d / 2d / 3d
# --------------------------------------------------------------------------------------------


def check_transposed(case: TransposedCase) -> None:
    ours = run_convcalc(f"conv_transpose{case.rank}d", case.shape, case.fields())
    assert_agree(ours, run_torch(case.module, case.shape), repr(case))


@settings(max_examples=900)
@given(case=transposed_cases())
# output_padding = max(s, d) - 1 with the maximum coming from the dilation (valid in torch)
@example(case=TransposedCase(1, 1, 1, 1, (3,), (3,), (1,), (0,), (2,), (3,)))
# output_padding = max(s, d) (refused), on the last axis only
@example(case=TransposedCase(2, 1, 1, 1, (3, 3), (3, 3), (2, 2), (0, 0), (1, 2), (1, 1)))
# padding crops the output to exactly 1 / to 0 (refused)
@example(case=TransposedCase(1, 1, 1, 1, (1,), (3,), (1,), (1,), (0,), (1,)))
@example(case=TransposedCase(1, 1, 1, 1, (1,), (2,), (1,), (1,), (0,), (1,)))
# padding larger than d·(k-1) while the output stays >= 1 (torch accepts)
@example(case=TransposedCase(1, 2, 2, 1, (5,), (3,), (2,), (3,), (0,), (1,)))
# groups: c_out not divisible / a grouped 3D upsampler with bias
@example(case=TransposedCase(1, 4, 6, 4, (3,), (2,), (2,), (0,), (0,), (1,)))
@example(case=TransposedCase(3, 4, 6, 2, (2, 3, 2), (2, 3, 3), (2, 1, 3), (0, 1, 1), (1, 0, 2), (1, 2, 1), True))
def test_transposed_matches_torch(case: TransposedCase) -> None:
    check_transposed(case)


# --------------------------------------------------------------------------------------------
# The CLI agrees with torch too (flags, per-axis text values)
# --------------------------------------------------------------------------------------------


def cli_flags(fields: dict[str, object]) -> list[str]:
    names = {
        "out_channels": "-o",
        "kernel_size": "-k",
        "stride": "-s",
        "padding": "-p",
        "dilation": "-d",
        "groups": "-g",
        "output_padding": "--output-padding",
    }
    args: list[str] = []
    for key, value in fields.items():
        if key == "bias":
            args.append("--bias" if value else "--no-bias")
            continue
        text = (
            "x".join(f"{v[0]}:{v[1]}" if isinstance(v, list) else str(v) for v in value)
            if isinstance(value, list)
            else str(value)
        )
        args += [names[key], text]
    return args


def assert_cli_agrees(run_cli, kind: str, case: ConvCase | TransposedCase) -> None:  # type: ignore[no-untyped-def]
    """The CLI's JSON for ``kind`` equals torch's shape, params and FLOPs, or both refuse (exit 2)."""
    args = ["layer", kind, "--in", "x".join(map(str, case.shape)), *cli_flags(case.fields()), "-f", "json"]
    result = run_cli(args)
    theirs = run_torch(case.module, case.shape)
    assert "Traceback" not in result.output
    if theirs.rejected:
        assert result.code == 2, f"{args}: torch refuses ({theirs.error}); convcalc: {result.stdout}"
        assert result.stderr.startswith("error: ")
        return
    assert result.code == 0, f"{args}: {result.stderr}"
    ours = json.loads(result.stdout)
    assert ours["output_shape"] == list(theirs.shape)
    assert ours["params"] == theirs.weights + theirs.biases
    assert 2 * ours["macs"] == theirs.flops


@settings(max_examples=60)
@given(case=conv_cases())
def test_cli_conv_matches_torch(run_cli, case: ConvCase) -> None:
    assert_cli_agrees(run_cli, f"conv{case.rank}d", case)


@settings(max_examples=60)
@given(case=transposed_cases())
def test_cli_transposed_matches_torch(run_cli, case: TransposedCase) -> None:
    assert_cli_agrees(run_cli, f"deconv{case.rank}d", case)


# --------------------------------------------------------------------------------------------
# Zero sizes: torch refuses them (constructor or forward), so must convcalc (through the CLI,
# where sizes are parsed)
# --------------------------------------------------------------------------------------------

ZERO_SIZES = [
    pytest.param(
        lambda: nn.Conv2d(3, 4, 3, padding=1), (3, 0, 5), ["--in", "3x0x5", "-o", "4", "-k", "3", "-p", "1"], id="input-size-0"
    ),
    pytest.param(lambda: nn.Conv2d(3, 0, 3), (3, 5, 5), ["--in", "3x5x5", "-o", "0", "-k", "3"], id="out-channels-0"),
    pytest.param(lambda: nn.Conv2d(3, 4, (3, 0)), (3, 5, 5), ["--in", "3x5x5", "-o", "4", "-k", "3x0"], id="kernel-0"),
    pytest.param(
        lambda: nn.Conv2d(3, 4, 3, stride=(0, 1)), (3, 5, 5), ["--in", "3x5x5", "-o", "4", "-k", "3", "-s", "0x1"], id="stride-0"
    ),
    pytest.param(
        lambda: nn.Conv2d(3, 4, 3, dilation=0), (3, 5, 5), ["--in", "3x5x5", "-o", "4", "-k", "3", "-d", "0"], id="dilation-0"
    ),
    pytest.param(
        lambda: nn.Conv2d(3, 3, 3, groups=0), (3, 5, 5), ["--in", "3x5x5", "-o", "3", "-k", "3", "-g", "0"], id="groups-0"
    ),
    pytest.param(
        lambda: nn.Conv2d(3, 4, 3, padding=-1),
        (3, 5, 5),
        ["--in", "3x5x5", "-o", "4", "-k", "3", "-p", "-1"],
        id="padding-negative",
    ),
]


@pytest.mark.parametrize(("build", "shape", "flags"), ZERO_SIZES)
def test_zero_and_negative_sizes_refused_like_torch(run_cli, build, shape, flags):
    assert run_torch(build, shape).rejected
    result = run_cli(["shape", "conv2d", *flags])
    assert result.code == 2, result.stdout
    assert "Traceback" not in result.output


def test_zero_input_channels_refused(run_cli):
    """torch does not raise for Conv2d(0, 4, 3) on a (1, 0, 5, 5) tensor but returns an empty (1, 0, 3, 3)
    tensor (not even 4 channels): an empty output, i.e. a refusal; convcalc refuses the zero size."""
    theirs = run_torch(lambda: nn.Conv2d(0, 4, 3), (0, 5, 5))
    assert theirs.rejected and theirs.error.startswith("empty output")
    result = run_cli(["shape", "conv2d", "--in", "0x5x5", "-o", "4", "-k", "3"])
    assert result.code == 2
    assert "'input' must be >= 1" in result.stderr


# --------------------------------------------------------------------------------------------
# Depthwise, separable, pointwise (grouped), shuffled grouped, channel shuffle
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpatialCase:
    """Spatial hyper-parameters shared by the composite types (symmetric padding)."""

    rank: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    def fields(self) -> dict[str, object]:
        return {
            "kernel_size": write_axes(self.kernel),
            "stride": write_axes(self.stride),
            "padding": write_axes(self.padding),
            "dilation": write_axes(self.dilation),
        }

    def conv(
        self, c_in: int, c_out: int, *, groups: int = 1, bias: bool = True, only: tuple[int, ...] | None = None
    ) -> nn.Module:
        """A torch conv with these hyper-parameters, restricted to the axes in ``only`` (1 elsewhere)."""
        keep = [only is None or axis in only for axis in range(self.rank)]

        def pick(values: tuple[int, ...], neutral: int) -> tuple[int, ...]:
            return tuple(v if on else neutral for v, on in zip(values, keep, strict=True))

        return CONV[self.rank](
            c_in,
            c_out,
            pick(self.kernel, 1),
            stride=pick(self.stride, 1),
            padding=pick(self.padding, 0),
            dilation=pick(self.dilation, 1),
            groups=groups,
            bias=bias,
        )


@st.composite
def spatial_cases(draw: st.DrawFn, ranks: tuple[int, ...] = (1, 2, 3)) -> SpatialCase:
    rank = draw(st.sampled_from(ranks))
    return SpatialCase(
        rank,
        draw(axes(rank, 1, MAX_SIZE[rank])),
        draw(axes(rank, 1, MAX_KERNEL[rank])),
        draw(axes(rank, 1, 3)),
        draw(axes(rank, 0, 2)),
        draw(axes(rank, 1, 2)),
    )


@settings(max_examples=300)
@given(sp=spatial_cases(), c_in=st.integers(1, 6), dm=st.integers(1, 3), bias=st.booleans())
def test_depthwise_matches_torch(sp: SpatialCase, c_in: int, dm: int, bias: bool) -> None:
    """Keras DepthwiseConv: groups = C_in, C_out = C_in · depth_multiplier."""
    shape = (c_in, *sp.size)
    ours = run_convcalc(f"depthwise{sp.rank}d", shape, {**sp.fields(), "depth_multiplier": dm, "bias": bias})
    assert_agree(ours, run_torch(lambda: sp.conv(c_in, c_in * dm, groups=c_in, bias=bias), shape), f"{sp} c_in={c_in} dm={dm}")


@settings(max_examples=300)
@given(sp=spatial_cases(), c_in=st.integers(1, 6), c_out=st.integers(1, 8), dm=st.integers(1, 3), bias=st.booleans())
def test_separable_matches_torch(sp: SpatialCase, c_in: int, c_out: int, dm: int, bias: bool) -> None:
    """Depthwise (no bias) then pointwise 1x1 (bias), as Keras SeparableConv."""
    shape = (c_in, *sp.size)
    ours = run_convcalc(
        f"separable{sp.rank}d", shape, {**sp.fields(), "out_channels": c_out, "depth_multiplier": dm, "bias": bias}
    )

    def build() -> nn.Module:
        pointwise = CONV[sp.rank](c_in * dm, c_out, 1, bias=bias)
        return nn.Sequential(sp.conv(c_in, c_in * dm, groups=c_in, bias=False), pointwise)

    assert_agree(ours, run_torch(build, shape), f"{sp} c_in={c_in} c_out={c_out} dm={dm}")


@settings(max_examples=250)
@given(rank=st.integers(1, 3), ch=channels(max_groups=6), size=st.integers(1, 6), stride=st.integers(1, 3), bias=st.booleans())
@example(rank=2, ch=(240, 240, 3), size=4, stride=1, bias=False)  # ShuffleNet's 1x1 group conv
def test_pointwise_grouped_matches_torch(rank: int, ch: tuple[int, int, int], size: int, stride: int, bias: bool) -> None:
    c_in, c_out, groups = ch
    shape = (c_in, *(size,) * rank)
    ours = run_convcalc("pointwise", shape, {"out_channels": c_out, "groups": groups, "stride": stride, "bias": bias})
    build = lambda: CONV[rank](c_in, c_out, 1, stride=stride, groups=groups, bias=bias)  # noqa: E731
    assert_agree(ours, run_torch(build, shape), f"rank={rank} {ch} size={size} s={stride}")


@settings(max_examples=250)
@given(sp=spatial_cases(), ch=channels(), bias=st.booleans())
def test_shuffle_grouped_matches_torch(sp: SpatialCase, ch: tuple[int, int, int], bias: bool) -> None:
    """Grouped conv then nn.ChannelShuffle(groups); convcalc's shuffle needs groups >= 2 (a 1-group
    shuffle is the identity), so groups = 1 is lifted to 2 here."""
    c_in, c_out, groups = ch
    groups = max(groups, 2)
    shape = (c_in, *sp.size)
    fields = {**sp.fields(), "out_channels": c_out, "groups": groups, "bias": bias}
    ours = run_convcalc(f"shuffle_grouped{sp.rank}d", shape, fields)
    theirs = run_torch(lambda: nn.Sequential(sp.conv(c_in, c_out, groups=groups, bias=bias), nn.ChannelShuffle(groups)), shape)
    assert_agree(ours, theirs, f"{sp} {ch}")
    if not theirs.rejected:
        assert isinstance(ours, dict)
        assert ours["stages"][-1]["moved"] == c_out * (ours["activation"] // c_out)  # every element moved once


@pytest.mark.parametrize(
    ("shape", "groups"),
    [((6, 4, 4), 3), ((6, 4, 4), 2), ((6, 4, 4), 4), ((8, 5), 4), ((9, 2, 2, 2), 3), ((9, 2, 2, 2), 2)],
    ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else f"g{v}",
)
def test_channel_shuffle_matches_torch(shape, groups):
    ours = run_convcalc("channel_shuffle", shape, {"groups": groups})
    assert_agree(ours, run_torch(lambda: nn.ChannelShuffle(groups), shape), f"{shape} g={groups}")
    if isinstance(ours, dict):
        assert ours["moved"] == 1 * shape[0] * (ours["activation"] // shape[0])
        assert ours["macs"] == ours["params"] == 0


# --------------------------------------------------------------------------------------------
# Factorised types: spatially separable, flattened, P3D A/B/C, R(2+1)D
# --------------------------------------------------------------------------------------------


@settings(max_examples=250)
@given(
    sp=spatial_cases(ranks=(2, 3)),
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 4),
    mid=st.none() | st.integers(1, 5),
    bias=st.booleans(),
)
@example(sp=SpatialCase(2, (5, 5), (3, 3), (1, 1), (0, 0), (1, 1)), c_in=1, c_out=1, mid=None, bias=False)  # seed: 45 + 27
def test_spatial_separable_matches_torch(sp: SpatialCase, c_in: int, c_out: int, mid: int | None, bias: bool) -> None:
    """One 1D kernel per spatial axis in series (k_h x 1, then 1 x k_w, ...); mid defaults to min(C_in, C_out)."""
    shape = (c_in, *sp.size)
    fields = {**sp.fields(), "out_channels": c_out, "bias": bias, **({"mid_channels": mid} if mid else {})}
    ours = run_convcalc(f"spatial_separable{sp.rank}d", shape, fields)
    width = mid or min(c_in, c_out)

    def build() -> nn.Module:
        chans = [c_in] + [width] * (sp.rank - 1) + [c_out]
        return nn.Sequential(
            *(sp.conv(chans[a], chans[a + 1], bias=bias and a == sp.rank - 1, only=(a,)) for a in range(sp.rank))
        )

    assert_agree(ours, run_torch(build, shape), f"{sp} c_in={c_in} c_out={c_out} mid={mid}")


@settings(max_examples=250)
@given(sp=spatial_cases(ranks=(2, 3)), c_in=st.integers(1, 5), c_out=st.integers(1, 5), bias=st.booleans())
def test_flattened_matches_torch(sp: SpatialCase, c_in: int, c_out: int, bias: bool) -> None:
    """Jin et al. 2014: lateral 1x1 (C_in -> C_out, no bias), then a per-channel 1D filter along each axis."""
    shape = (c_in, *sp.size)
    ours = run_convcalc(f"flattened{sp.rank}d", shape, {**sp.fields(), "out_channels": c_out, "bias": bias})

    def build() -> nn.Module:
        lateral = CONV[sp.rank](c_in, c_out, 1, bias=False)
        filters = (sp.conv(c_out, c_out, groups=c_out, bias=bias and a == sp.rank - 1, only=(a,)) for a in range(sp.rank))
        return nn.Sequential(lateral, *filters)

    theirs = run_torch(build, shape)
    assert_agree(ours, theirs, f"{sp} c_in={c_in} c_out={c_out}")
    if not theirs.rejected:
        # the paper's count: per output channel C_in + k_1 + ... + k_n weights
        assert isinstance(ours, dict)
        assert ours["weights"] == c_out * (c_in + sum(sp.kernel))


class P3DBlock(nn.Module):
    """Qiu et al. 2017 block core. S = 1 x k x k, T = k x 1 x 1.
    A: T(S(x)); B: S(x) + T(x); C: S(x) + T(S(x)). Branches are added element-wise, so they must agree."""

    def __init__(self, sp: SpatialCase, c_in: int, c_out: int, variant: str, bias: bool) -> None:
        super().__init__()
        self.variant = variant
        self.spatial = sp.conv(c_in, c_out, bias=bias, only=(1, 2))
        self.temporal = sp.conv(c_in if variant == "B" else c_out, c_out, bias=bias, only=(0,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spatial(x)
        if self.variant == "A":
            return self.temporal(s)
        t = self.temporal(x if self.variant == "B" else s)
        if s.shape != t.shape:
            raise ValueError(f"P3D-{self.variant} branches differ: {tuple(s.shape)} vs {tuple(t.shape)}")
        return s + t


@settings(max_examples=250)
@given(
    sp=spatial_cases(ranks=(3,)),
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 4),
    variant=st.sampled_from("ABC"),
    bias=st.booleans(),
)
@example(sp=SpatialCase(3, (4, 5, 5), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)), c_in=2, c_out=3, variant="B", bias=True)
@example(sp=SpatialCase(3, (4, 5, 5), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)), c_in=3, c_out=3, variant="C", bias=False)
def test_p3d_matches_torch(sp: SpatialCase, c_in: int, c_out: int, variant: str, bias: bool) -> None:
    shape = (c_in, *sp.size)
    ours = run_convcalc("p3d", shape, {**sp.fields(), "out_channels": c_out, "variant": variant, "bias": bias})
    assert_agree(ours, run_torch(lambda: P3DBlock(sp, c_in, c_out, variant, bias), shape), f"P3D-{variant} {sp} {c_in}->{c_out}")


def tran_mid_channels(t: int, k_h: int, k_w: int, n_in: int, n_out: int) -> int:
    """Tran et al. 2018 §3.5 with d² generalised to k_h·k_w: floor(t·k_h·k_w·N_in·N_out / (k_h·k_w·N_in + t·N_out))."""
    return (t * k_h * k_w * n_in * n_out) // (k_h * k_w * n_in + t * n_out)


@settings(max_examples=250)
@given(
    sp=spatial_cases(ranks=(3,)),
    c_in=st.integers(1, 6),
    c_out=st.integers(1, 6),
    mid=st.none() | st.integers(1, 5),
    bias=st.booleans(),
)
def test_conv2plus1d_matches_torch(sp: SpatialCase, c_in: int, c_out: int, mid: int | None, bias: bool) -> None:
    """R(2+1)D as torchvision's Conv2Plus1D: 1 x k x k (stride/padding on H, W) to M, then t x 1 x 1 (on D)."""
    shape = (c_in, *sp.size)
    fields = {**sp.fields(), "out_channels": c_out, "bias": bias, **({"mid_channels": mid} if mid else {})}
    ours = run_convcalc("conv2plus1d", shape, fields)
    m = mid or tran_mid_channels(*sp.kernel, c_in, c_out)

    def build() -> nn.Module:
        if m < 1:
            raise ValueError("no mid channels")
        return nn.Sequential(sp.conv(c_in, m, bias=bias, only=(1, 2)), sp.conv(m, c_out, bias=bias, only=(0,)))

    assert_agree(ours, run_torch(build, shape), f"{sp} {c_in}->{c_out} M={m}")


# --------------------------------------------------------------------------------------------
# padding='same': torch at stride 1, TF/Keras (ceil(i/s)) at stride > 1
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SameCase:
    rank: int
    c_in: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    notes: list[str] = field(default_factory=list, compare=False)


@st.composite
def same_cases(draw: st.DrawFn, strided: bool) -> SameCase:
    rank = draw(st.sampled_from([1, 2, 3]))
    stride = draw(axes(rank, 1, 4)) if strided else (1,) * rank
    return SameCase(
        rank, draw(st.integers(1, 3)), draw(axes(rank, 1, MAX_SIZE[rank])), draw(axes(rank, 1, 5)), stride, draw(axes(rank, 1, 3))
    )


@settings(max_examples=300)
@given(case=same_cases(strided=False))
@example(case=SameCase(1, 1, (1,), (5,), (1,), (3,)))  # the padding is far larger than the input
@example(case=SameCase(2, 2, (6, 6), (4, 2), (1, 1), (1, 3)))  # even kernel: odd unit of padding at the end
def test_same_padding_stride_1_matches_torch(case: SameCase) -> None:
    shape = (case.c_in, *case.size)
    fields = {"out_channels": 2, "kernel_size": list(case.kernel), "padding": "same", "dilation": list(case.dilation)}
    ours = run_convcalc(f"conv{case.rank}d", shape, fields)
    build = lambda: CONV[case.rank](case.c_in, 2, case.kernel, padding="same", dilation=case.dilation)  # noqa: E731
    theirs = run_torch(build, shape)
    assert not theirs.rejected
    assert_agree(ours, theirs, repr(case))
    assert isinstance(ours, dict)
    assert ours["output_shape"][1:] == list(case.size)


@settings(max_examples=300)
@given(case=same_cases(strided=True))
@example(case=SameCase(2, 3, (224, 224), (7, 7), (2, 2), (1, 1)))  # ResNet stem: TF pads 2 before, 3 after
@example(case=SameCase(1, 1, (5,), (1,), (3,), (1,)))  # kernel smaller than the stride: no padding at all
def test_same_padding_any_stride_follows_tensorflow(case: SameCase) -> None:
    """TF/Keras 'same': out = ceil(i/s); total padding max((out-1)·s + d(k-1) + 1 - i, 0), the odd unit
    at the end. The pair is executed in torch (explicit ConstantPad + conv) to confirm the shape."""
    shape = (case.c_in, *case.size)
    fields = {
        "out_channels": 2,
        "kernel_size": list(case.kernel),
        "stride": list(case.stride),
        "padding": "same",
        "dilation": list(case.dilation),
    }
    ours = run_convcalc(f"conv{case.rank}d", shape, fields)
    assert isinstance(ours, dict), ours
    want = [-(-i // s) for i, s in zip(case.size, case.stride, strict=True)]
    assert ours["output_shape"] == [2, *want]
    pairs = []
    for i, k, s, d, o in zip(case.size, case.kernel, case.stride, case.dilation, want, strict=True):
        total = max((o - 1) * s + d * (k - 1) + 1 - i, 0)
        pairs.append((total // 2, total - total // 2))

    def build() -> nn.Module:
        conv = CONV[case.rank](case.c_in, 2, case.kernel, stride=case.stride, dilation=case.dilation)
        return nn.Sequential(PAD[case.rank](flat_pad(tuple(pairs)), 0.0), conv)

    assert_agree(ours, run_torch(build, shape), repr(case))
    # the before-padding is visible in the receptive field: the first unit's centre is (k_eff - 1)/2 - p_before
    for axis, (k, d, (before, _)) in zip(
        ours["receptive_field"], zip(case.kernel, case.dilation, pairs, strict=True), strict=True
    ):
        centre = (d * (k - 1)) / 2 - before
        assert str(axis["start"]) == (str(int(centre)) if centre == int(centre) else f"{int(2 * centre)}/2")
    if any(s > 1 for s in case.stride):
        # torch itself refuses padding='same' here; convcalc must say which semantics it used
        assert run_torch(lambda: CONV[case.rank](case.c_in, 2, case.kernel, stride=case.stride, padding="same"), shape).rejected
        assert any("PyTorch rejects padding='same'" in note for note in ours["notes"]), ours["notes"]
