"""Standard, pointwise, grouped, dilated, transposed, depthwise and shuffled convolutions.

Each ``build`` function expands parsed fields into primitives from :mod:`convcalc.primitives`; the
formulas live on the primitives, so a type here only says how it is wired.
"""

from __future__ import annotations

from convcalc.errors import ShapeError
from convcalc.kinds.base import (
    BIAS,
    CONV_FIELDS,
    DEPTH_MULTIPLIER,
    DILATION,
    GROUPS,
    IN_CHANNELS,
    KERNEL,
    OUT_CHANNELS,
    OUTPUT_PADDING,
    PADDING,
    STRIDE,
    Built,
    FieldDef,
    Kind,
    Params,
    register,
)
from convcalc.parse.values import Axes, parse_int
from convcalc.primitives.base import Shape, Stage
from convcalc.primitives.conv import ChannelShuffle, Conv, ConvTranspose
from convcalc.primitives.padding import resolve_conv_padding, resolve_transposed_padding

CONV_FORMULAS = (
    "out = floor((i + p_before + p_after - d·(k-1) - 1) / s) + 1   (per axis)",
    "weights = C_out · (C_in/g) · prod(k);  biases = C_out",
    "MACs = out_positions · C_out · (C_in/g) · prod(k);  FLOPs = 2 · MACs",
    "RF step: kernel d·(k-1)+1, stride s, padding p_before",
)


def in_channels(p: Params, shape: Shape) -> int:
    """``in_channels`` from the input; a value given in the spec must agree."""
    given = p.opt_int("in_channels")
    if given is not None and given != shape[0]:
        raise ShapeError(
            f"in_channels = {given} but the input has {shape[0]} channels.",
            hint="Drop in_channels (it is taken from the input) or fix the input shape.",
        )
    return shape[0]


def conv_stage(
    name: str,
    shape: Shape,
    out_channels: int,
    kernel: Axes,
    p: Params,
    *,
    groups: int = 1,
    bias: bool = True,
    inputs: tuple[str, ...] = ("in",),
    label: str = "",
) -> tuple[Stage, tuple[str, ...]]:
    """A :class:`Conv` stage using the layer's stride, padding and dilation fields."""
    stride, dilation = p.axes("stride"), p.axes("dilation")
    pads, notes = resolve_conv_padding(p.padding(), shape[1:], kernel, stride, dilation)
    op = Conv(shape[0], out_channels, kernel, stride, pads, dilation, groups, bias)
    return Stage(name, op, inputs, label), notes


def _build_conv(p: Params, shape: Shape) -> Built:
    in_channels(p, shape)
    stage, notes = conv_stage(
        "conv", shape, p.num("out_channels"), p.axes("kernel_size"), p, groups=p.num("groups"), bias=p.flag("bias")
    )
    return Built((stage,), notes)


def _build_pointwise(p: Params, shape: Shape) -> Built:
    in_channels(p, shape)
    op = Conv(
        shape[0],
        p.num("out_channels"),
        (1,) * p.rank,
        p.axes("stride"),
        ((0, 0),) * p.rank,
        (1,) * p.rank,
        p.num("groups"),
        p.flag("bias"),
    )
    return Built((Stage("pointwise", op, ("in",)),))


def _build_transposed(p: Params, shape: Shape) -> Built:
    in_channels(p, shape)
    kernel, stride, dilation = p.axes("kernel_size"), p.axes("stride"), p.axes("dilation")
    crops, out_pad, notes = resolve_transposed_padding(p.padding(), p.opt_axes("output_padding"), kernel, stride, dilation)
    op = ConvTranspose(shape[0], p.num("out_channels"), kernel, stride, crops, out_pad, dilation, p.num("groups"), p.flag("bias"))
    return Built((Stage("conv_transpose", op, ("in",)),), notes)


def depthwise_stage(p: Params, shape: Shape, *, bias: bool) -> tuple[Stage, tuple[str, ...]]:
    """Depthwise conv: ``groups = C_in``, ``C_out = C_in · depth_multiplier`` (Keras DepthwiseConv)."""
    channels = shape[0] * p.num("depth_multiplier")
    return conv_stage("depthwise", shape, channels, p.axes("kernel_size"), p, groups=shape[0], bias=bias)


def _build_depthwise(p: Params, shape: Shape) -> Built:
    in_channels(p, shape)
    stage, notes = depthwise_stage(p, shape, bias=p.flag("bias"))
    return Built((stage,), notes)


def _build_separable(p: Params, shape: Shape) -> Built:
    in_channels(p, shape)
    depthwise, notes = depthwise_stage(p, shape, bias=False)
    mid = shape[0] * p.num("depth_multiplier")
    rank = p.rank
    pointwise = Conv(mid, p.num("out_channels"), (1,) * rank, (1,) * rank, ((0, 0),) * rank, (1,) * rank, 1, p.flag("bias"))
    return Built((depthwise, Stage("pointwise", pointwise, ("depthwise",))), notes)


def _build_shuffle_grouped(p: Params, shape: Shape) -> Built:
    in_channels(p, shape)
    groups = p.num("groups")
    stage, notes = conv_stage("gconv", shape, p.num("out_channels"), p.axes("kernel_size"), p, groups=groups, bias=p.flag("bias"))
    return Built((stage, Stage("shuffle", ChannelShuffle(groups), ("gconv",))), notes)


def _build_shuffle(p: Params, shape: Shape) -> Built:
    return Built((Stage("shuffle", ChannelShuffle(p.num("groups")), ("in",)),))


def _at_least_two(value: object, name: str) -> int:
    return parse_int(value, name, minimum=2)


SHUFFLE_GROUPS = FieldDef("groups", _at_least_two, 2, "channel groups (>= 2)", ("g",))
TRANSPOSED_FIELDS = (IN_CHANNELS, OUT_CHANNELS, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, BIAS)
DEPTHWISE_FIELDS = (IN_CHANNELS, KERNEL, STRIDE, PADDING, DILATION, DEPTH_MULTIPLIER, BIAS)
SEPARABLE_FIELDS = (IN_CHANNELS, OUT_CHANNELS, KERNEL, STRIDE, PADDING, DILATION, DEPTH_MULTIPLIER, BIAS)

for _r in (1, 2, 3):
    register(
        Kind(
            f"conv{_r}d",
            f"standard {_r}D convolution (covers 1x1, dilated/atrous, strided and grouped)",
            CONV_FIELDS,
            _build_conv,
            rank=_r,
            aliases=(f"atrous{_r}d", f"atrous_conv{_r}d", f"dilated{_r}d", f"grouped{_r}d", f"conv_{_r}d"),
            formulas=CONV_FORMULAS,
            source=f"PyTorch torch.nn.Conv{_r}d docs; Dumoulin & Visin 2016",
        )
    )
    register(
        Kind(
            f"conv_transpose{_r}d",
            f"{_r}D transposed (fractionally strided) convolution",
            TRANSPOSED_FIELDS,
            _build_transposed,
            rank=_r,
            aliases=(f"deconv{_r}d", f"transposed{_r}d", f"convtranspose{_r}d", f"conv{_r}d_transpose", f"transposed_conv{_r}d"),
            formulas=(
                "out = (i-1)·s - p_before - p_after + d·(k-1) + output_padding + 1;  output_padding < max(s, d)",
                "weights = C_in · (C_out/g) · prod(k);  biases = C_out",
                "MACs = in_positions · C_in · (C_out/g) · prod(k)   (counted per INPUT position)",
                "RF step: refine grid by s (jump j/s), window d·(k-1)+1 with padding d·(k-1) - p_before",
            ),
            source=f"PyTorch torch.nn.ConvTranspose{_r}d docs; Dumoulin & Visin 2016 rel. 13-14",
        )
    )
    register(
        Kind(
            f"depthwise{_r}d",
            f"{_r}D depthwise convolution: groups = C_in, C_out = C_in · depth_multiplier",
            DEPTHWISE_FIELDS,
            _build_depthwise,
            rank=_r,
            aliases=(f"depthwise_conv{_r}d", f"dwconv{_r}d"),
            formulas=(
                "C_out = C_in · depth_multiplier",
                "weights = C_in · depth_multiplier · prod(k)",
                "MACs = out_positions · C_in · depth_multiplier · prod(k)",
            ),
            source=f"Keras DepthwiseConv{_r}D; Howard et al. 2017 (MobileNets)",
        )
    )
    register(
        Kind(
            f"separable{_r}d",
            f"{_r}D depthwise separable convolution: depthwise (with depth_multiplier) then pointwise 1x1; bias on the pointwise stage",
            SEPARABLE_FIELDS,
            _build_separable,
            rank=_r,
            aliases=(f"depthwise_separable{_r}d", f"separable_conv{_r}d", f"sepconv{_r}d"),
            formulas=(
                "weights = C_in·dm·prod(k) + C_in·dm·C_out",
                "MACs = out_positions · C_in·dm · (prod(k) + C_out)",
                "MACs ratio vs standard (dm=1) = 1/C_out + 1/prod(k)",
            ),
            source=f"Keras SeparableConv{_r}D; Chollet 2017 (Xception); Howard et al. 2017",
        )
    )
    register(
        Kind(
            f"shuffle_grouped{_r}d",
            f"{_r}D grouped convolution followed by a channel shuffle with the same groups (ShuffleNet)",
            (*CONV_FIELDS[:6], SHUFFLE_GROUPS, BIAS),
            _build_shuffle_grouped,
            rank=_r,
            aliases=(f"shuffled_grouped{_r}d", f"gconv_shuffle{_r}d"),
            formulas=(*CONV_FORMULAS[1:3], "channel shuffle: 0 params, 0 MACs, C·positions elements moved"),
            source="Zhang et al. 2018 (ShuffleNet)",
        )
    )

register(
    Kind(
        "pointwise",
        "1x1 convolution over any rank (pointwise; with groups: pointwise grouped convolution, ShuffleNet)",
        (IN_CHANNELS, OUT_CHANNELS, STRIDE, GROUPS, BIAS),
        _build_pointwise,
        aliases=("conv1x1", "pointwise_conv", "pointwise_grouped", "pwconv"),
        formulas=("weights = C_out · C_in/g", "MACs = out_positions · C_out · C_in/g"),
        source="Lin et al. 2013 (Network in Network); Zhang et al. 2018 (pointwise group conv)",
    )
)
register(
    Kind(
        "channel_shuffle",
        "ShuffleNet channel shuffle alone: reshape (g, C/g), transpose, flatten",
        (SHUFFLE_GROUPS,),
        _build_shuffle,
        aliases=("shuffle",),
        formulas=("params = 0, MACs = 0, moved = C · positions elements",),
        source="Zhang et al. 2018 (ShuffleNet)",
    )
)
