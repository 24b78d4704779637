"""Factorised convolutions: spatially separable, flattened, P3D, R(2+1)D and deformable.

Each splits one convolution into stages along axes or channels; the stages are ordinary
primitives, so their shapes, parameters and MACs come from :mod:`convcalc.primitives`.
"""

from __future__ import annotations

from convcalc.errors import ShapeError
from convcalc.formula import axis_names
from convcalc.kinds.base import (
    BIAS,
    DILATION,
    GROUPS,
    IN_CHANNELS,
    KERNEL,
    MID_CHANNELS,
    OUT_CHANNELS,
    PADDING,
    STRIDE,
    Built,
    FieldDef,
    Kind,
    Params,
    choice,
    register,
)
from convcalc.kinds.convs import in_channels
from convcalc.parse.values import Axes, Pairs, parse_int
from convcalc.primitives.base import Shape, Stage, numel
from convcalc.primitives.conv import Conv, DeformSample
from convcalc.primitives.merge import Add
from convcalc.primitives.padding import resolve_conv_padding


def _resolved(p: Params, shape: Shape) -> tuple[Axes, Axes, Axes, Pairs, tuple[str, ...]]:
    kernel, stride, dilation = p.axes("kernel_size"), p.axes("stride"), p.axes("dilation")
    pads, notes = resolve_conv_padding(p.padding(), shape[1:], kernel, stride, dilation)
    return kernel, stride, dilation, pads, notes


def axis_conv(
    c_in: int, c_out: int, axes: tuple[int, ...], resolved: tuple[Axes, Axes, Axes, Pairs], *, groups: int = 1, bias: bool
) -> Conv:
    """A conv that applies the layer's kernel/stride/dilation/padding only along ``axes``."""
    kernel, stride, dilation, pads = resolved
    keep = [i in axes for i in range(len(kernel))]
    return Conv(
        c_in,
        c_out,
        tuple(k if on else 1 for k, on in zip(kernel, keep, strict=True)),
        tuple(s if on else 1 for s, on in zip(stride, keep, strict=True)),
        tuple(pp if on else (0, 0) for pp, on in zip(pads, keep, strict=True)),
        tuple(d if on else 1 for d, on in zip(dilation, keep, strict=True)),
        groups,
        bias,
    )


def _build_spatial_separable(p: Params, shape: Shape) -> Built:
    """k_1 x 1 (x 1), then 1 x k_2 (x 1), ...: one stage per spatial axis; bias on the last stage."""
    c_in = in_channels(p, shape)
    c_out = p.num("out_channels")
    mid = p.opt_int("mid_channels") or min(c_in, c_out)
    kernel, stride, dilation, pads, notes = _resolved(p, shape)
    names = axis_names(p.rank)
    stages: list[Stage] = []
    previous, channels = "in", c_in
    for axis in range(p.rank):
        last = axis == p.rank - 1
        op = axis_conv(channels, c_out if last else mid, (axis,), (kernel, stride, dilation, pads), bias=p.flag("bias") and last)
        name = f"conv_{names[axis]}"
        stages.append(Stage(name, op, (previous,), f"{'x'.join(map(str, op.kernel_size))} along {names[axis]}"))
        previous, channels = name, op.out_channels
    return Built(tuple(stages), notes)


def _build_flattened(p: Params, shape: Shape) -> Built:
    """Jin et al. 2014: lateral 1x1 (C_in -> C_out), then a 1D depthwise filter along each axis."""
    c_in = in_channels(p, shape)
    c_out = p.num("out_channels")
    kernel, stride, dilation, pads, notes = _resolved(p, shape)
    rank = p.rank
    lateral = Conv(c_in, c_out, (1,) * rank, (1,) * rank, ((0, 0),) * rank, (1,) * rank, 1, False)
    stages = [Stage("lateral", lateral, ("in",), "1x1 across channels")]
    names = axis_names(rank)
    for axis in range(rank):
        op = axis_conv(
            c_out, c_out, (axis,), (kernel, stride, dilation, pads), groups=c_out, bias=p.flag("bias") and axis == rank - 1
        )
        stages.append(Stage(f"filter_{names[axis]}", op, (stages[-1].name,), f"1D along {names[axis]}"))
    return Built(tuple(stages), notes)


def _build_p3d(p: Params, shape: Shape) -> Built:
    """Qiu et al. 2017: S = 1xkxk spatial, T = kx1x1 temporal; A: T(S(x)), B: S(x)+T(x), C: S(x)+T(S(x))."""
    c_in = in_channels(p, shape)
    c_out = p.num("out_channels")
    kernel, stride, dilation, pads, notes = _resolved(p, shape)
    resolved = (kernel, stride, dilation, pads)
    bias = p.flag("bias")
    variant = p.text("variant")
    spatial = Stage("spatial", axis_conv(c_in, c_out, (1, 2), resolved, bias=bias), ("in",), "S: 1xkxk")
    t_in = ("in",) if variant == "B" else ("spatial",)
    temporal = Stage("temporal", axis_conv(c_in if variant == "B" else c_out, c_out, (0,), resolved, bias=bias), t_in, "T: kx1x1")
    if variant == "A":
        return Built((spatial, temporal), notes)
    return Built((spatial, temporal, Stage("add", Add(), ("spatial", "temporal"))), notes)


def r2plus1d_mid_channels(c_in: int, c_out: int, kernel: Axes) -> int:
    """Tran et al. 2018, §3.5: ``M = floor(t·d²·N_in·N_out / (d²·N_in + t·N_out))`` so the (2+1)D
    block has about as many parameters as the full ``t x d x d`` 3D conv (torchvision ``Conv2Plus1D``)."""
    t, kh, kw = kernel
    return (t * kh * kw * c_in * c_out) // (kh * kw * c_in + t * c_out)


def _build_conv2plus1d(p: Params, shape: Shape) -> Built:
    """R(2+1)D: 1 x k_h x k_w spatial conv to M channels, then t x 1 x 1 temporal conv to C_out."""
    c_in = in_channels(p, shape)
    c_out = p.num("out_channels")
    kernel, stride, dilation, pads, notes = _resolved(p, shape)
    mid = p.opt_int("mid_channels") or r2plus1d_mid_channels(c_in, c_out, kernel)
    if mid < 1:
        raise ShapeError(
            f"the R(2+1)D formula floor(t·k_h·k_w·C_in·C_out / (k_h·k_w·C_in + t·C_out)) gives M = {mid} mid channels"
            f" for C_in = {c_in}, C_out = {c_out} and kernel {'x'.join(map(str, kernel))}.",
            hint="Give the mid channels explicitly (--mid-channels N or 'mid_channels: N').",
        )
    bias = p.flag("bias")
    resolved = (kernel, stride, dilation, pads)
    spatial = Stage(
        "spatial", axis_conv(c_in, mid, (1, 2), resolved, bias=bias), ("in",), f"1x{kernel[1]}x{kernel[2]} to M={mid}"
    )
    temporal = Stage("temporal", axis_conv(mid, c_out, (0,), resolved, bias=bias), ("spatial",), f"{kernel[0]}x1x1")
    extra = (
        ()
        if p.opt_int("mid_channels")
        else (f"mid channels M = {mid} from Tran et al. 2018: floor(t·k_h·k_w·C_in·C_out / (k_h·k_w·C_in + t·C_out)).",)
    )
    return Built((spatial, temporal), notes + extra)


def _build_deformable(p: Params, shape: Shape) -> Built:
    """Dai et al. 2017 (v1) / Zhu et al. 2019 (v2): offset conv, bilinear sampling, main conv."""
    c_in = in_channels(p, shape)
    kernel, stride, dilation, pads, notes = _resolved(p, shape)
    offset_groups = p.num("offset_groups")
    modulated = p.num("version") == 2
    groups = p.num("groups")
    if c_in % offset_groups:
        raise ShapeError(f"in_channels = {c_in} is not divisible by offset_groups = {offset_groups}.")
    offset_channels = (3 if modulated else 2) * offset_groups * numel(kernel)
    offset = Conv(c_in, offset_channels, kernel, stride, pads, dilation, 1, True)
    sample = DeformSample(kernel, stride, pads, dilation, offset_groups, modulated)
    rank = len(kernel)
    main = Conv(c_in, p.num("out_channels"), kernel, kernel, ((0, 0),) * rank, (1,) * rank, groups, p.flag("bias"))
    return Built(
        (
            Stage(
                "offset",
                offset,
                ("in",),
                f"offset conv -> {offset_channels} ch ({'2K offsets + K masks' if modulated else '2K offsets'})",
            ),
            Stage("sample", sample, ("in", "offset"), "bilinear sampling"),
            Stage("conv", main, ("sample",), "main conv on sampled taps"),
        ),
        notes,
    )


def _version(value: object, name: str) -> int:
    version = parse_int(value, name)
    if version not in (1, 2):
        raise ShapeError(f"'{name}' must be 1 (Dai et al. 2017) or 2 (modulated, Zhu et al. 2019), got {version}.")
    return version


FACTOR_FIELDS = (IN_CHANNELS, OUT_CHANNELS, KERNEL, STRIDE, PADDING, DILATION)

for _r in (2, 3):
    register(
        Kind(
            f"spatial_separable{_r}d",
            "spatially separable conv: one 1D kernel per spatial axis in series (k_h x 1 then 1 x k_w); bias on the last stage",
            (*FACTOR_FIELDS, MID_CHANNELS, BIAS),
            _build_spatial_separable,
            rank=_r,
            aliases=(f"spatially_separable{_r}d",),
            formulas=(
                "stage a: kernel k_a along axis a only; channels C_in -> mid -> ... -> C_out (mid defaults to min(C_in, C_out))",
                "1 channel, n x n input, m x m kernel, s=1, p=0: MACs = n·(n-m+1)·m + (n-m+1)²·m  vs  (n-m+1)²·m²",
            ),
            source="Karami 2019 ch. 14.1; Szegedy et al. 2016 (Inception-v3 1x7/7x1)",
        )
    )
    register(
        Kind(
            f"flattened{_r}d",
            "flattened conv: lateral 1x1 across channels, then a depthwise 1D filter along each spatial axis; bias on the last stage",
            (*FACTOR_FIELDS, BIAS),
            _build_flattened,
            rank=_r,
            aliases=(f"flattened_conv{_r}d",),
            formulas=("weights per output channel = C_in + k_1 + ... + k_n  (vs C_in · prod(k))",),
            source="Jin, Dundar & Culurciello 2014 (Flattened CNNs for feedforward acceleration)",
        )
    )


VARIANT = choice("variant", ("A", "B", "C"), "A", "P3D-A (series), P3D-B (parallel), P3D-C (series + shortcut)")
"""The P3D variant (Qiu et al. 2017, Fig. 3)."""

register(
    Kind(
        "p3d",
        "Pseudo-3D block core: S = 1xkxk spatial and T = kx1x1 temporal; A series, B parallel (added), C series with shortcut S+T(S)",
        (
            *FACTOR_FIELDS,
            VARIANT,
            BIAS,
        ),
        _build_p3d,
        rank=3,
        aliases=("pseudo3d", "p3d_block"),
        formulas=(
            "S weights = C_in·C_out·k_h·k_w;  T weights = C_T_in·C_out·k_t",
            "A: T(S(x));  B: S(x) + T(x);  C: S(x) + T(S(x))",
        ),
        source="Qiu, Yao & Mei 2017 (Pseudo-3D Residual Networks)",
    )
)
register(
    Kind(
        "conv2plus1d",
        "R(2+1)D: 1 x k x k spatial conv to M mid channels, then t x 1 x 1 temporal conv",
        (*FACTOR_FIELDS, MID_CHANNELS, BIAS),
        _build_conv2plus1d,
        rank=3,
        aliases=("r2plus1d", "conv2_1d", "r2p1d"),
        formulas=("M = floor(t·k_h·k_w·C_in·C_out / (k_h·k_w·C_in + t·C_out))  (params ≈ full t x k x k conv)",),
        source="Tran et al. 2018 (A Closer Look at Spatiotemporal Convolutions), torchvision Conv2Plus1D",
    )
)
register(
    Kind(
        "deformable2d",
        "deformable conv (v1 offsets, v2 modulated): offset conv + bilinear sampling + main conv; receptive field data-dependent",
        (
            *FACTOR_FIELDS,
            GROUPS,
            FieldDef("offset_groups", parse_int, 1, "groups of channels sharing one offset field", ("deformable_groups",)),
            FieldDef("version", _version, 1, "1 (Dai et al. 2017) or 2 (modulated, Zhu et al. 2019)", ("v",)),
            BIAS,
        ),
        _build_deformable,
        rank=2,
        aliases=("deform_conv2d", "deformable_conv2d", "dcn"),
        formulas=(
            "offset conv: C_in -> (2|3)·G·k_h·k_w channels, same k/s/p/d as the main conv, with bias",
            "sampling (other ops, not MACs) = (4|5) · C_in · k_h·k_w · out_positions (bilinear weights, +1 for v2 modulation)",
            "main conv weights = C_out · C_in/g · k_h·k_w;  MACs = out_positions · C_out · C_in/g · k_h·k_w",
        ),
        source="Dai et al. 2017; Zhu et al. 2019; torchvision.ops.deform_conv2d",
    )
)
