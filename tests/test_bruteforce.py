"""Brute force: count the work by enumerating it, then compare with convcalc.

* Convolution: every window position is found by sliding along each (padded) axis; every
  (output position, output channel, input channel of its group, tap) quadruple is one
  multiply-accumulate of a weight with an input position (zero padding included, as every counter
  and torch.utils.flop_counter count it).
* Transposed convolution: every (input position, input channel, output channel of its group, tap)
  quadruple is one MAC: each input value is multiplied by every tap of its group's filters; the
  output extent is where those products land, minus the crop.
* Overlap: which input pixels reach each output pixel of a transposed convolution, compared with
  ``convcalc overlap`` rows/grids, with torch (a ones-kernel on a ones-input counts contributions),
  and the checkerboard warning compared with the unevenness seen in the enumerated interior.

Composite types are enumerated stage by stage from their published definitions, never from
convcalc's own stage list.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

try:
    import torch
    from torch import nn
except ImportError:  # the pure tests still run; the torch oracles below are skipped (needs_torch)
    nn = torch = None  # type: ignore[assignment]

from hypothesis import example, given, settings
from hypothesis import strategies as st

from convcalc.engine import evaluate_layer
from convcalc.errors import ConvcalcError
from convcalc.parse.layer import parse_layer
from convcalc.report import layer_to_dict

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch (the reference oracle)")


def convcalc(kind: str, shape: Sequence[int], **fields: object) -> dict[str, object]:
    return layer_to_dict(evaluate_layer(parse_layer({"type": kind, **fields}), tuple(shape)))


# --------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------


def window_starts(size: int, kernel: int, stride: int, before: int, after: int, dilation: int) -> list[int]:
    """Every placement of a dilated window on the padded axis [-before, size + after): slide by ``stride``
    from the first padded pixel while the last tap still lies inside."""
    starts, x = [], -before
    while x + dilation * (kernel - 1) <= size - 1 + after:
        starts.append(x)
        x += stride
    return starts


@dataclass(frozen=True)
class Counted:
    out_spatial: tuple[int, ...]
    macs: int
    on_input: int  # MACs whose tap lands on a real (not padding) input pixel


def brute_conv(
    c_in: int,
    c_out: int,
    groups: int,
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
) -> Counted:
    starts = [
        window_starts(*args)
        for args in zip(size, kernel, stride, [p[0] for p in pads], [p[1] for p in pads], dilation, strict=True)
    ]
    taps = list(itertools.product(*(range(k) for k in kernel)))
    per_group_in, per_group_out = c_in // groups, c_out // groups
    macs = on_input = 0
    for position in itertools.product(*starts):
        for oc in range(c_out):
            group = oc // per_group_out
            for _ic in range(group * per_group_in, (group + 1) * per_group_in):
                for tap in taps:
                    macs += 1  # weight[oc, ic - group start, tap] × input[ic, position + tap·dilation]
                    pixel = [x + t * d for x, t, d in zip(position, tap, dilation, strict=True)]
                    on_input += all(0 <= v < n for v, n in zip(pixel, size, strict=True))
    return Counted(tuple(len(s) for s in starts), macs, on_input)


def brute_transposed(
    c_in: int,
    c_out: int,
    groups: int,
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    crops: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
) -> Counted:
    taps = list(itertools.product(*(range(k) for k in kernel)))
    per_group_in, per_group_out = c_in // groups, c_out // groups
    macs = 0
    last = [0] * len(size)  # furthest output coordinate any product lands on, before cropping
    for position in itertools.product(*(range(n) for n in size)):
        for ic in range(c_in):
            group = ic // per_group_in
            for _oc in range(group * per_group_out, (group + 1) * per_group_out):
                for tap in taps:
                    macs += 1  # input[ic, position] × weight[ic, oc - group start, tap] -> output[oc, position·s + tap·d]
                    for axis, (x, t, s, d) in enumerate(zip(position, tap, stride, dilation, strict=True)):
                        last[axis] = max(last[axis], x * s + t * d)
    # full extent = furthest landing + 1, extended by output_padding; padding crops both ends
    out = tuple(far + 1 + op - 2 * crop for far, op, crop in zip(last, output_padding, crops, strict=True))
    return Counted(out, macs, macs)


def contributions(size: int, kernel: int, stride: int, crop: int, dilation: int, output_padding: int) -> list[set[int]]:
    """For each output pixel of a 1D transposed conv, the set of input pixels that reach it."""
    length = (size - 1) * stride + dilation * (kernel - 1) + 1 + output_padding - 2 * crop
    reached: list[set[int]] = [set() for _ in range(max(length, 0))]
    for i in range(size):
        for t in range(kernel):
            o = i * stride + t * dilation - crop
            if 0 <= o < length:
                reached[o].add(i)
    return reached


def uneven_interior(kernel: int, stride: int, dilation: int) -> bool:
    """Enumerate a long row (no crop) and look at the interior, where every tap can be reached."""
    size = kernel * dilation + 3 * stride + 4
    counts = [len(s) for s in contributions(size, kernel, stride, 0, dilation, 0)]
    interior = counts[dilation * (kernel - 1) : (size - 1) * stride + 1]
    assert len(interior) >= stride
    return len(set(interior)) > 1


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


def axes(rank: int, low: int, high: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(low, high), min_size=rank, max_size=rank).map(tuple)


@st.composite
def grouped_channels(draw: st.DrawFn) -> tuple[int, int, int]:
    groups = draw(st.integers(1, 3))
    return groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3)), groups


@dataclass(frozen=True)
class Geometry:
    rank: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]

    def fields(self) -> dict[str, object]:
        return {
            "kernel_size": list(self.kernel),
            "stride": list(self.stride),
            "padding": [list(p) for p in self.pads],
            "dilation": list(self.dilation),
        }

    def fits(self) -> bool:
        return all(
            n + a + b >= d * (k - 1) + 1 for n, k, (a, b), d in zip(self.size, self.kernel, self.pads, self.dilation, strict=True)
        )

    def along(self, axes_on: tuple[int, ...]) -> Geometry:
        """The same hyper-parameters applied only along ``axes_on`` (1 / no padding elsewhere)."""

        def pick(values: tuple, neutral: object) -> tuple:
            return tuple(v if a in axes_on else neutral for a, v in enumerate(values))

        return Geometry(
            self.rank, self.size, pick(self.kernel, 1), pick(self.stride, 1), pick(self.pads, (0, 0)), pick(self.dilation, 1)
        )

    def on(self, size: tuple[int, ...]) -> Geometry:
        return Geometry(self.rank, size, self.kernel, self.stride, self.pads, self.dilation)


@st.composite
def geometries(draw: st.DrawFn, ranks: tuple[int, ...] = (1, 2, 3)) -> Geometry:
    rank = draw(st.sampled_from(ranks))
    high = {1: 9, 2: 6, 3: 4}[rank]
    while True:
        geo = Geometry(
            rank,
            draw(axes(rank, 1, high)),
            draw(axes(rank, 1, 3)),
            draw(axes(rank, 1, 3)),
            tuple(zip(draw(axes(rank, 0, 2)), draw(axes(rank, 0, 2)), strict=True)),
            draw(axes(rank, 1, 2)),
        )
        if geo.fits():
            return geo


def conv_of(c_in: int, c_out: int, groups: int, geo: Geometry) -> Counted:
    return brute_conv(c_in, c_out, groups, geo.size, geo.kernel, geo.stride, geo.pads, geo.dilation)


# --------------------------------------------------------------------------------------------
# Convolution and transposed convolution
# --------------------------------------------------------------------------------------------


@settings(max_examples=250)
@given(geo=geometries(), ch=grouped_channels(), bias=st.booleans())
@example(geo=Geometry(2, (5, 5), (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)), ch=(3, 2, 1), bias=True)
@example(geo=Geometry(3, (3, 4, 2), (1, 3, 2), (2, 1, 1), ((0, 0), (1, 0), (0, 1)), (1, 1, 1)), ch=(4, 6, 2), bias=False)
def test_conv_macs_equal_enumerated_work(geo: Geometry, ch: tuple[int, int, int], bias: bool) -> None:
    c_in, c_out, groups = ch
    counted = conv_of(c_in, c_out, groups, geo)
    ours = convcalc(f"conv{geo.rank}d", (c_in, *geo.size), out_channels=c_out, groups=groups, bias=bias, **geo.fields())
    assert ours["output_shape"] == [c_out, *counted.out_spatial]
    assert ours["macs"] == counted.macs
    assert ours["flops"] == 2 * counted.macs
    # one bias addition per output element when there is a bias
    assert ours["bias_adds"] == (c_out * math.prod(counted.out_spatial) if bias else 0)
    if all(p == (0, 0) for p in geo.pads):
        assert counted.on_input == counted.macs  # without padding every tap lands on the input
    else:
        assert counted.on_input <= ours["macs"]


@dataclass(frozen=True)
class TGeometry:
    rank: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    crop: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]


@st.composite
def transposed_geometries(draw: st.DrawFn) -> TGeometry:
    rank = draw(st.sampled_from([1, 2, 3]))
    stride, dilation = draw(axes(rank, 1, 3)), draw(axes(rank, 1, 2))
    kernel = draw(axes(rank, 1, 3))
    crop = tuple(draw(st.integers(0, d * (k - 1) // 2)) for k, d in zip(kernel, dilation, strict=True))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
    return TGeometry(rank, draw(axes(rank, 1, {1: 6, 2: 4, 3: 3}[rank])), kernel, stride, crop, output_padding, dilation)


@settings(max_examples=250)
@given(geo=transposed_geometries(), ch=grouped_channels())
@example(geo=TGeometry(2, (2, 2), (3, 3), (2, 2), (0, 0), (0, 0), (1, 1)), ch=(1, 1, 1))  # seed: 2x2 -> 5x5
@example(geo=TGeometry(2, (2, 2), (3, 3), (1, 1), (0, 0), (0, 0), (1, 1)), ch=(1, 1, 1))  # seed: 2x2 -> 4x4
@example(geo=TGeometry(1, (4,), (3,), (2,), (1,), (1,), (1,)), ch=(4, 6, 2))
def test_transposed_macs_counted_per_input_position(geo: TGeometry, ch: tuple[int, int, int]) -> None:
    c_in, c_out, groups = ch
    counted = brute_transposed(c_in, c_out, groups, geo.size, geo.kernel, geo.stride, geo.crop, geo.output_padding, geo.dilation)
    ours = convcalc(
        f"conv_transpose{geo.rank}d",
        (c_in, *geo.size),
        out_channels=c_out,
        groups=groups,
        kernel_size=list(geo.kernel),
        stride=list(geo.stride),
        padding=list(geo.crop),
        output_padding=list(geo.output_padding),
        dilation=list(geo.dilation),
    )
    assert ours["output_shape"] == [c_out, *counted.out_spatial]
    assert ours["macs"] == counted.macs
    assert ours["flops"] == 2 * counted.macs


def test_transposed_is_not_counted_over_output_positions(cli_json):
    """The bug ptflops/thop/fvcore shipped: 2x2 -> 5x5 (k3 s2) is 2·2·3·3 = 36 MACs, not 5·5·3·3 = 225."""
    out = cli_json(["flops", "conv_transpose2d", "--in", "1x2x2", "-o", "1", "-k", "3", "-s", "2"])
    counted = brute_transposed(1, 1, 1, (2, 2), (3, 3), (2, 2), (0, 0), (0, 0), (1, 1))
    assert out["macs"] == counted.macs == 2 * 2 * 3 * 3
    assert out["macs"] != 5 * 5 * 3 * 3


# --------------------------------------------------------------------------------------------
# Composite types, enumerated stage by stage from their definitions
# --------------------------------------------------------------------------------------------


@settings(max_examples=80)
@given(geo=geometries(), c_in=st.integers(1, 3), dm=st.integers(1, 2))
def test_depthwise_macs(geo: Geometry, c_in: int, dm: int) -> None:
    counted = conv_of(c_in, c_in * dm, c_in, geo)
    ours = convcalc(f"depthwise{geo.rank}d", (c_in, *geo.size), depth_multiplier=dm, **geo.fields())
    assert ours["output_shape"] == [c_in * dm, *counted.out_spatial]
    assert ours["macs"] == counted.macs


@settings(max_examples=80)
@given(geo=geometries(), c_in=st.integers(1, 3), c_out=st.integers(1, 4), dm=st.integers(1, 2))
def test_separable_macs(geo: Geometry, c_in: int, c_out: int, dm: int) -> None:
    depthwise = conv_of(c_in, c_in * dm, c_in, geo)
    pointwise = brute_conv(
        c_in * dm, c_out, 1, depthwise.out_spatial, (1,) * geo.rank, (1,) * geo.rank, ((0, 0),) * geo.rank, (1,) * geo.rank
    )
    ours = convcalc(f"separable{geo.rank}d", (c_in, *geo.size), out_channels=c_out, depth_multiplier=dm, **geo.fields())
    assert ours["output_shape"] == [c_out, *pointwise.out_spatial]
    assert [s["macs"] for s in ours["stages"]] == [depthwise.macs, pointwise.macs]
    assert ours["macs"] == depthwise.macs + pointwise.macs


@settings(max_examples=60)
@given(rank=st.integers(1, 3), ch=grouped_channels(), size=st.integers(1, 5), stride=st.integers(1, 3))
def test_pointwise_grouped_macs(rank: int, ch: tuple[int, int, int], size: int, stride: int) -> None:
    c_in, c_out, groups = ch
    counted = brute_conv(c_in, c_out, groups, (size,) * rank, (1,) * rank, (stride,) * rank, ((0, 0),) * rank, (1,) * rank)
    ours = convcalc("pointwise", (c_in, *(size,) * rank), out_channels=c_out, groups=groups, stride=stride)
    assert ours["output_shape"] == [c_out, *counted.out_spatial]
    assert ours["macs"] == counted.macs


@settings(max_examples=60)
@given(geo=geometries(ranks=(2, 3)), c_in=st.integers(1, 3), c_out=st.integers(1, 3))
def test_spatial_separable_macs(geo: Geometry, c_in: int, c_out: int) -> None:
    """k_1 along axis 1 only, then k_2 along axis 2 only, ...; channels c_in -> min(c_in, c_out) -> ... -> c_out."""
    mid = min(c_in, c_out)
    chans = [c_in] + [mid] * (geo.rank - 1) + [c_out]
    size, stages = geo.size, []
    for axis in range(geo.rank):
        counted = conv_of(chans[axis], chans[axis + 1], 1, geo.along((axis,)).on(size))
        stages.append(counted.macs)
        size = counted.out_spatial
    ours = convcalc(f"spatial_separable{geo.rank}d", (c_in, *geo.size), out_channels=c_out, **geo.fields())
    assert ours["output_shape"] == [c_out, *size]
    assert [s["macs"] for s in ours["stages"]] == stages


@settings(max_examples=60)
@given(geo=geometries(ranks=(2, 3)), c_in=st.integers(1, 3), c_out=st.integers(1, 3))
def test_flattened_macs(geo: Geometry, c_in: int, c_out: int) -> None:
    """Lateral 1x1 c_in -> c_out, then one per-channel (groups = c_out) 1D filter per axis."""
    one = (1,) * geo.rank
    lateral = brute_conv(c_in, c_out, 1, geo.size, one, one, ((0, 0),) * geo.rank, one)
    size, stages = lateral.out_spatial, [lateral.macs]
    for axis in range(geo.rank):
        counted = conv_of(c_out, c_out, c_out, geo.along((axis,)).on(size))
        stages.append(counted.macs)
        size = counted.out_spatial
    ours = convcalc(f"flattened{geo.rank}d", (c_in, *geo.size), out_channels=c_out, **geo.fields())
    assert ours["output_shape"] == [c_out, *size]
    assert [s["macs"] for s in ours["stages"]] == stages


@settings(max_examples=60)
@given(geo=geometries(ranks=(3,)), c_in=st.integers(1, 3), c_out=st.integers(1, 3), variant=st.sampled_from("ABC"))
def test_p3d_macs(geo: Geometry, c_in: int, c_out: int, variant: str) -> None:
    """S = 1 x k x k (H, W only), T = k x 1 x 1 (D only); B feeds T the input, A and C feed it S(x)."""
    spatial = conv_of(c_in, c_out, 1, geo.along((1, 2)))
    t_in, t_size = (c_in, geo.size) if variant == "B" else (c_out, spatial.out_spatial)
    temporal = conv_of(t_in, c_out, 1, geo.along((0,)).on(t_size))
    fields = {"out_channels": c_out, "variant": variant, **geo.fields()}
    if variant != "A" and spatial.out_spatial != temporal.out_spatial:
        with pytest.raises(ConvcalcError):  # the branches cannot be added
            convcalc("p3d", (c_in, *geo.size), **fields)
        return
    ours = convcalc("p3d", (c_in, *geo.size), **fields)
    assert ours["output_shape"] == [c_out, *temporal.out_spatial]
    assert ours["macs"] == spatial.macs + temporal.macs
    if variant != "A":
        assert ours["other_ops"] == c_out * math.prod(temporal.out_spatial)  # one addition per output element


@settings(max_examples=60)
@given(geo=geometries(ranks=(3,)), c_in=st.integers(1, 4), c_out=st.integers(1, 4), mid=st.integers(1, 4))
def test_conv2plus1d_macs(geo: Geometry, c_in: int, c_out: int, mid: int) -> None:
    spatial = conv_of(c_in, mid, 1, geo.along((1, 2)))
    temporal = conv_of(mid, c_out, 1, geo.along((0,)).on(spatial.out_spatial))
    ours = convcalc("conv2plus1d", (c_in, *geo.size), out_channels=c_out, mid_channels=mid, **geo.fields())
    assert ours["output_shape"] == [c_out, *temporal.out_spatial]
    assert [s["macs"] for s in ours["stages"]] == [spatial.macs, temporal.macs]


@settings(max_examples=60)
@given(
    geo=geometries(ranks=(2,)),
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 3),
    version=st.sampled_from([1, 2]),
    offset_groups=st.sampled_from([1, 2]),
)
def test_deformable_macs(geo: Geometry, c_in: int, c_out: int, version: int, offset_groups: int) -> None:
    """Offset conv (2·G·K or 3·G·K channels, same window as the main conv) + bilinear sampling + the main
    conv over the same window positions. MACs are the two convolutions'; the sampling is interpolation,
    reported as other ops: 4 per sampled value (5 with the v2 modulation) plus, in v2, one sigmoid per
    mask value (``convcalc types deformable2d``)."""
    c_in *= offset_groups
    taps = math.prod(geo.kernel)
    offsets = conv_of(c_in, (2 if version == 1 else 3) * offset_groups * taps, 1, geo)
    sampled = masks = 0
    for _position in itertools.product(*(range(n) for n in offsets.out_spatial)):
        for _ic in range(c_in):
            for _tap in range(taps):
                sampled += 1  # one bilinear sample of input channel ic at (position + tap + offset)
        for _group in range(offset_groups):
            for _tap in range(taps):
                masks += 1  # v2: one modulation scalar per offset group and tap, through a sigmoid
    main = c_out * c_in * taps * math.prod(offsets.out_spatial)
    ours = convcalc(
        "deformable2d", (c_in, *geo.size), out_channels=c_out, version=version, offset_groups=offset_groups, **geo.fields()
    )
    assert ours["output_shape"] == [c_out, *offsets.out_spatial]
    assert [s["macs"] for s in ours["stages"]] == [offsets.macs, 0, main]
    sampling = ours["stages"][1]["other_ops"]
    assert sampling == (4 * sampled if version == 1 else 5 * sampled + masks)
    assert ours["receptive_field"] == "data-dependent"


@settings(max_examples=60)
@given(geo=geometries(), ch=grouped_channels())
def test_shuffle_grouped_macs_and_moves(geo: Geometry, ch: tuple[int, int, int]) -> None:
    c_in, c_out, groups = ch
    groups_ = max(groups, 2)
    c_in, c_out = c_in // groups * groups_, c_out // groups * groups_
    counted = conv_of(c_in, c_out, groups_, geo)
    ours = convcalc(f"shuffle_grouped{geo.rank}d", (c_in, *geo.size), out_channels=c_out, groups=groups_, **geo.fields())
    assert ours["macs"] == counted.macs
    assert ours["moved"] == c_out * math.prod(counted.out_spatial)  # the shuffle moves every element once


# --------------------------------------------------------------------------------------------
# Overlap of transposed convolutions and the checkerboard warning
# --------------------------------------------------------------------------------------------


@st.composite
def overlap_axes(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    size, kernel, stride, dilation = (
        draw(st.integers(1, 8)),
        draw(st.integers(1, 5)),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 3)),
    )
    crop = draw(st.integers(0, dilation * (kernel - 1) // 2))
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    return size, kernel, stride, crop, dilation, output_padding


def ones_transposed(
    sizes: Sequence[int],
    kernels: Sequence[int],
    strides: Sequence[int],
    crops: Sequence[int],
    dilations: Sequence[int],
    output_paddings: Sequence[int],
) -> list:
    """torch: a ones kernel applied to a ones input writes, at each output pixel, the number of
    (input pixel, tap) products landing there."""
    module = (nn.ConvTranspose1d if len(sizes) == 1 else nn.ConvTranspose2d)(
        1,
        1,
        tuple(kernels),
        stride=tuple(strides),
        padding=tuple(crops),
        output_padding=tuple(output_paddings),
        dilation=tuple(dilations),
        bias=False,
    )
    with torch.no_grad():
        module.weight.fill_(1.0)
        out = module(torch.ones(1, 1, *sizes))[0, 0]
    return out.round().to(torch.int64).tolist()


@needs_torch
@settings(max_examples=150)
@given(axis=overlap_axes())
@example(axis=(5, 3, 2, 0, 1, 0))  # seed: kernel 3, stride 2: uneven
@example(axis=(5, 4, 2, 0, 1, 0))  # seed: kernel 4, stride 2: even interior
@example(axis=(5, 2, 1, 0, 1, 0))  # seed: kernel 2, stride 1
def test_overlap_row_matches_enumeration_and_torch(run_cli, cli_json, axis) -> None:
    size, kernel, stride, crop, dilation, output_padding = axis
    reached = contributions(size, kernel, stride, crop, dilation, output_padding)
    data = cli_json(
        ["overlap", "--in", size, "-k", kernel, "-s", stride, "-p", crop, "-d", dilation, "--output-padding", output_padding]
    )
    (row,) = data["axes"]
    assert row["counts"] == [len(s) for s in reached]
    assert row["counts"] == ones_transposed([size], [kernel], [stride], [crop], [dilation], [output_padding])
    assert row["uneven"] == uneven_interior(kernel, stride, dilation)


@needs_torch
@settings(max_examples=60)
@given(h=overlap_axes(), w=overlap_axes())
def test_overlap_grid_matches_torch(cli_json, h, w) -> None:
    """2D: each output pixel's count is the product of its row and column counts (the seed: 'the
    unevenness gets squared'); torch's ones-kernel transposed conv gives the same grid."""
    params = list(zip(h, w, strict=True))
    sizes, kernels, strides, crops, dilations, ops = params
    text = ["x".join(map(str, v)) for v in params]
    data = cli_json(
        ["overlap", "--in", text[0], "-k", text[1], "-s", text[2], "-p", text[3], "-d", text[4], "--output-padding", text[5]]
    )
    rows = [[len(s) for s in contributions(*(v[a] for v in (sizes, kernels, strides, crops, dilations, ops)))] for a in (0, 1)]
    assert [axis["counts"] for axis in data["axes"]] == rows
    assert data["grid"] == ones_transposed(sizes, kernels, strides, crops, dilations, ops)
    assert data["grid"] == [[a * b for b in rows[1]] for a in rows[0]]


@pytest.mark.parametrize("dilation", [1, 2, 3], ids=lambda d: f"d{d}")
@pytest.mark.parametrize("stride", [1, 2, 3, 4], ids=lambda s: f"s{s}")
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 6], ids=lambda k: f"k{k}")
def test_checkerboard_warning_exactly_when_uneven(cli_json, kernel, stride, dilation):
    uneven = uneven_interior(kernel, stride, dilation)
    if dilation == 1:
        assert uneven == (kernel % stride != 0)  # Odena et al. 2016: kernel not divisible by the stride
    out = cli_json(
        ["layer", "conv_transpose2d", "--in", "1x6x6", "-o", "1", "-k", f"{kernel}x1", "-s", f"{stride}x1", "-d", f"{dilation}x1"]
    )
    warnings = [n for n in out["notes"] if "checkerboard" in n]
    assert len(warnings) == (1 if uneven else 0), out["notes"]
    if uneven:
        assert "along H" in warnings[0]  # named per axis: W (kernel 1, stride 1) is even
    row = cli_json(["overlap", "--in", "9", "-k", kernel, "-s", stride, "-d", dilation])["axes"][0]
    assert row["uneven"] == uneven


def test_checkerboard_is_reported_per_axis(cli_json):
    out = cli_json(["layer", "deconv2d", "--in", "1x4x4", "-o", "1", "-k", "4x3", "-s", "2"])
    warnings = [n for n in out["notes"] if "checkerboard" in n]
    assert len(warnings) == 1 and "along W" in warnings[0]
