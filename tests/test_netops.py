"""The non-convolution primitives (convcalc.primitives) and their kinds against real torch.nn modules.

Shapes and parameter counts come from running the torch module on zeros; whether torch refuses
an input is compared with whether convcalc raises. Operation counts are checked against the
conventions written in the docstrings, as auditable arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import pytest
import torch
from hypothesis import assume, example, given
from hypothesis import strategies as st
from torch import nn

from convcalc.engine import evaluate_layer
from convcalc.errors import ConvcalcError, ShapeError, SpecError
from convcalc.kinds import lookup
from convcalc.parse.layer import parse_layer
from convcalc.primitives.pool import adaptive_windows_total, pool_out_size


def run(raw: dict[str, object], shape: tuple[int, ...]):
    """Evaluate one layer spec on a channels-first shape (no batch axis)."""
    return evaluate_layer(parse_layer(raw), shape)


def params(result) -> int:
    return sum(s.stats.params for s in result.stages)


def torch_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The output shape of ``module`` on a zero batch of one, or None if torch refuses it."""
    try:
        with torch.no_grad():
            return tuple(module(torch.zeros(1, *shape)).shape[1:])
    except (RuntimeError, ValueError):
        return None


def torch_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def convcalc_shape(raw: dict[str, object], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return run(raw, shape).output_shape
    except ConvcalcError:
        return None


# ----------------------------------------------------------------------------------------------
# Pooling: hypothesis against torch, floor and ceil mode, dilation, padding
# ----------------------------------------------------------------------------------------------

POOL_TORCH = {
    ("max", 1): nn.MaxPool1d,
    ("max", 2): nn.MaxPool2d,
    ("max", 3): nn.MaxPool3d,
    ("avg", 1): nn.AvgPool1d,
    ("avg", 2): nn.AvgPool2d,
    ("avg", 3): nn.AvgPool3d,
}


@st.composite
def pools(draw: st.DrawFn) -> tuple[str, int, tuple[int, ...], int, int, int, int, bool]:
    mode = draw(st.sampled_from(["max", "avg"]))
    rank = draw(st.sampled_from([1, 2, 3]))
    size = draw(st.integers(1, 12 if rank < 3 else 6))
    kernel = draw(st.integers(1, 6))
    stride = draw(st.integers(1, 4))
    padding = draw(st.integers(0, 3))
    dilation = draw(st.integers(1, 3)) if mode == "max" else 1
    ceil = draw(st.booleans())
    return mode, rank, (2, *([size] * rank)), kernel, stride, padding, dilation, ceil


@given(pools())
@example(("max", 1, (1, 5), 2, 2, 0, 1, True))  # ceil: 3 windows, the last one half outside
@example(("max", 1, (1, 5), 2, 2, 1, 1, True))  # ceil: a 4th window would start in the right padding -> dropped
@example(("avg", 1, (1, 1), 2, 2, 0, 1, True))  # ceil mode allows a window larger than the input
@example(("avg", 1, (1, 1), 2, 2, 0, 1, False))  # floor mode does not
@example(("max", 2, (1, 7, 7), 3, 2, 2, 1, False))  # padding 2 > 3 // 2: refused
def test_pool_shapes_match_torch(case: tuple[str, int, tuple[int, ...], int, int, int, int, bool]) -> None:
    mode, rank, shape, kernel, stride, padding, dilation, ceil = case
    raw: dict[str, object] = {"type": f"{mode}pool{rank}d", "kernel_size": kernel, "stride": stride, "padding": padding}
    raw["ceil_mode"] = ceil
    extra = {"dilation": dilation} if mode == "max" else {}
    raw.update(extra)
    module = POOL_TORCH[mode, rank](kernel, stride, padding, ceil_mode=ceil, **extra)
    assert convcalc_shape(raw, shape) == torch_shape(module, shape)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pad", "ceil", "expected"),
    [
        pytest.param(5, 2, 2, (0, 0), False, 2, id="floor-5-k2s2"),
        pytest.param(5, 2, 2, (0, 0), True, 3, id="ceil-5-k2s2-keeps-partial-window"),
        pytest.param(5, 2, 2, (1, 1), True, 3, id="ceil-drops-window-starting-in-padding"),  # 4th would start at 6 = 5 + 1
        pytest.param(112, 3, 2, (0, 0), True, 56, id="googlenet-ceil-112"),
    ],
)
def test_pool_out_size_rule(size: int, kernel: int, stride: int, pad: tuple[int, int], ceil: bool, expected: int) -> None:
    # expected values: windows start at 0, s, 2s, ...; a ceil-mode window must start before size + pad_before
    assert pool_out_size(size, kernel, stride, pad, 1, ceil, "L") == expected


def test_pool_stride_defaults_to_kernel_and_counts_ops() -> None:
    result = run({"type": "maxpool2d", "kernel_size": 3}, (4, 9, 9))
    assert result.output_shape == (4, 3, 3)
    assert result.stages[0].stats.other_ops == 4 * 3 * 3 * (3 * 3 - 1)  # C · out positions · (K-1) comparisons
    avg = run({"type": "avgpool2d", "kernel_size": 2}, (4, 8, 8))
    assert avg.stages[0].stats.other_ops == 4 * 4 * 4 * (2 * 2)  # C · out positions · K (K-1 adds + 1 divide)
    assert avg.stages[0].stats.macs == 0


def test_pool_same_padding_uses_tf_rule() -> None:
    # TF: out = ceil(i / s) = ceil(7 / 2) = 4, padding total (4-1)·2 + 3 - 7 = 2 -> 1 before, 1 after
    result = run({"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": "same"}, (1, 7, 7))
    assert result.output_shape == (1, 4, 4)


# ----------------------------------------------------------------------------------------------
# Adaptive and global pooling
# ----------------------------------------------------------------------------------------------


@given(st.integers(1, 40), st.integers(1, 40))
def test_adaptive_windows_total_matches_pytorch_windows(size: int, out: int) -> None:
    windows = [(o * size // out, -(-(o + 1) * size // out)) for o in range(out)]  # PyTorch start/end_index
    assert adaptive_windows_total(size, out) == sum(end - start for start, end in windows)


@given(st.sampled_from([1, 2, 3]), st.integers(1, 9), st.integers(1, 9), st.sampled_from(["avg", "max"]))
def test_adaptive_pool_shapes_match_torch(rank: int, size: int, out: int, mode: str) -> None:
    shape = (3, *([size] * rank))
    module = getattr(nn, f"Adaptive{mode.capitalize()}Pool{rank}d")(out)
    assert convcalc_shape({"type": f"adaptive_{mode}pool{rank}d", "output_size": out}, shape) == torch_shape(module, shape)


def test_adaptive_pool_none_keeps_an_axis_and_global_pooling() -> None:
    module = nn.AdaptiveAvgPool2d((None, 2))
    assert run({"type": "adaptive_avgpool2d", "output_size": [None, 2]}, (3, 5, 4)).output_shape == torch_shape(module, (3, 5, 4))
    assert run({"type": "global_avgpool"}, (8, 7, 7)).output_shape == (8, 1, 1)
    assert run({"type": "global_maxpool", "keepdims": False}, (8, 7, 7)).output_shape == (8,)


def test_adaptive_pool_uneven_windows_are_not_tracked() -> None:
    result = run({"type": "adaptive_avgpool2d", "output_size": 3}, (1, 5, 5))
    assert result.field is None
    assert any("not tracked" in note for note in result.notes)


# ----------------------------------------------------------------------------------------------
# Normalisation: learnable parameters as PyTorch counts them
# ----------------------------------------------------------------------------------------------

NORMS = [
    pytest.param({"type": "batchnorm2d"}, (16, 5, 5), nn.BatchNorm2d(16), id="batchnorm2d"),
    pytest.param(
        {"type": "batchnorm2d", "affine": False}, (16, 5, 5), nn.BatchNorm2d(16, affine=False), id="batchnorm2d-no-affine"
    ),
    pytest.param({"type": "batchnorm1d"}, (12,), nn.BatchNorm1d(12), id="batchnorm1d-vector"),
    pytest.param({"type": "batchnorm1d"}, (12, 7), nn.BatchNorm1d(12), id="batchnorm1d-sequence"),
    pytest.param({"type": "batchnorm3d"}, (4, 3, 5, 5), nn.BatchNorm3d(4), id="batchnorm3d"),
    pytest.param({"type": "bn"}, (6, 2, 2), nn.BatchNorm2d(6), id="batchnorm-alias-any-rank"),
    pytest.param({"type": "groupnorm", "num_groups": 4}, (16, 5, 5), nn.GroupNorm(4, 16), id="groupnorm"),
    pytest.param(
        {"type": "groupnorm", "groups": 4, "affine": False},
        (16, 5, 5),
        nn.GroupNorm(4, 16, affine=False),
        id="groupnorm-no-affine",
    ),
    pytest.param({"type": "instancenorm2d"}, (16, 5, 5), nn.InstanceNorm2d(16), id="instancenorm2d-default-no-affine"),
    pytest.param(
        {"type": "instancenorm2d", "affine": True}, (16, 5, 5), nn.InstanceNorm2d(16, affine=True), id="instancenorm2d-affine"
    ),
    pytest.param(
        {"type": "layernorm", "normalized_shape": [16, 5, 5]}, (16, 5, 5), nn.LayerNorm([16, 5, 5]), id="layernorm-all-axes"
    ),
    pytest.param({"type": "layernorm", "normalized_shape": 5}, (16, 5, 5), nn.LayerNorm(5), id="layernorm-last-axis"),
    pytest.param({"type": "layernorm", "bias": False}, (32,), nn.LayerNorm(32, bias=False), id="layernorm-vector-no-bias"),
    pytest.param(
        {"type": "layernorm", "elementwise_affine": False},
        (32,),
        nn.LayerNorm(32, elementwise_affine=False),
        id="layernorm-no-affine",
    ),
]


@pytest.mark.parametrize(("raw", "shape", "module"), NORMS)
def test_norm_params_and_shapes_match_torch(raw: dict[str, object], shape: tuple[int, ...], module: nn.Module) -> None:
    module.eval()
    result = run(raw, shape)
    assert params(result) == torch_params(module)
    assert result.output_shape == torch_shape(module, shape)
    assert result.stages[0].stats.macs == 0


def test_layernorm_over_channels_by_default_counts_2c() -> None:
    # ConvNeXt's LayerNorm2d: normalise the C channels at each position -> weight C + bias C
    assert params(run({"type": "layernorm"}, (96, 14, 14))) == 2 * 96


@pytest.mark.parametrize(
    ("raw", "shape", "module"),
    [
        pytest.param({"type": "local_response_norm", "size": 5}, (16, 5, 5), nn.LocalResponseNorm(5), id="lrn-2d"),
        pytest.param(
            {"type": "lrn", "size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2},
            (96, 55, 55),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            id="lrn-alexnet",
        ),
        pytest.param({"type": "lrn", "size": 3}, (2, 7), nn.LocalResponseNorm(3), id="lrn-1d-window-wider-than-c"),
        pytest.param({"type": "lrn", "size": 4}, (6, 2, 3, 3), nn.LocalResponseNorm(4), id="lrn-3d-even-size"),
    ],
)
def test_local_response_norm_matches_torch(raw: dict[str, object], shape: tuple[int, ...], module: nn.Module) -> None:
    result = run(raw, shape)
    assert result.output_shape == torch_shape(module, shape) == shape
    assert params(result) == torch_params(module) == 0
    stats = result.stages[0].stats
    assert stats.macs == 0
    size = cast(int, raw["size"])
    # square + size (window sum and / size, as avg_pool) + scale + add k + power + divide
    assert stats.other_ops == math.prod(shape) * (size + 5)
    field = result.field
    assert field is not None and all(a.size == 1 and a.jump == 1 and a.start == 0 for a in field)


def test_local_response_norm_values_follow_the_documented_formula() -> None:
    # the formula convcalc documents (and counts) is the one torch computes
    torch.manual_seed(0)
    x = torch.randn(1, 7, 3, 3)
    size, alpha, beta, k = 5, 1e-2, 0.75, 2.0
    square = torch.nn.functional.pad(x.pow(2), (0, 0, 0, 0, size // 2, (size - 1) // 2))
    window = torch.stack([square[:, c : c + size].sum(dim=1) for c in range(7)], dim=1)
    expected = x / (k + alpha / size * window).pow(beta)
    assert torch.allclose(nn.LocalResponseNorm(size, alpha, beta, k)(x), expected, atol=1e-6)


def test_local_response_norm_needs_a_spatial_axis_like_torch() -> None:
    assert _torch_refuses(lambda: nn.LocalResponseNorm(5), (16,))
    with pytest.raises(ShapeError, match="spatial"):
        run({"type": "lrn", "size": 5}, (16,))
    with pytest.raises(SpecError, match="size"):
        run({"type": "lrn"}, (16, 4, 4))


def test_norm_other_ops_convention() -> None:
    result = run({"type": "batchnorm2d"}, (8, 4, 4))
    assert result.stages[0].stats.other_ops == 2 * 8 * 4 * 4  # normalise + affine per element (ptflops)
    assert run({"type": "batchnorm2d", "affine": False}, (8, 4, 4)).stages[0].stats.other_ops == 8 * 4 * 4


# ----------------------------------------------------------------------------------------------
# Activations, dropout, identity, flatten, linear, embedding
# ----------------------------------------------------------------------------------------------

ELEMENTWISE = [
    pytest.param({"type": "relu"}, nn.ReLU(), id="relu"),
    pytest.param({"type": "relu6"}, nn.ReLU6(), id="relu6"),
    pytest.param({"type": "leaky_relu", "negative_slope": 0.2}, nn.LeakyReLU(0.2), id="leaky_relu"),
    pytest.param({"type": "elu"}, nn.ELU(), id="elu"),
    pytest.param({"type": "gelu", "approximate": "tanh"}, nn.GELU("tanh"), id="gelu"),
    pytest.param({"type": "swish"}, nn.SiLU(), id="swish-alias-of-silu"),
    pytest.param({"type": "mish"}, nn.Mish(), id="mish"),
    pytest.param({"type": "hard_swish"}, nn.Hardswish(), id="hardswish"),
    pytest.param({"type": "hardsigmoid"}, nn.Hardsigmoid(), id="hardsigmoid"),
    pytest.param({"type": "sigmoid"}, nn.Sigmoid(), id="sigmoid"),
    pytest.param({"type": "tanh"}, nn.Tanh(), id="tanh"),
    pytest.param({"type": "softmax"}, nn.Softmax(dim=1), id="softmax-channels"),
    pytest.param({"type": "prelu"}, nn.PReLU(), id="prelu-shared"),
    pytest.param({"type": "prelu", "num_parameters": 6}, nn.PReLU(6), id="prelu-per-channel"),
    pytest.param({"type": "dropout", "p": 0.3}, nn.Dropout(0.3), id="dropout"),
    pytest.param({"type": "dropout2d"}, nn.Dropout2d(), id="dropout2d-alias"),
    pytest.param({"type": "identity"}, nn.Identity(), id="identity"),
]


@pytest.mark.parametrize(("raw", "module"), ELEMENTWISE)
def test_elementwise_layers_match_torch(raw: dict[str, object], module: nn.Module) -> None:
    module.eval()
    shape = (6, 5, 4)
    result = run(raw, shape)
    assert result.output_shape == torch_shape(module, shape) == shape
    assert params(result) == torch_params(module)
    assert result.stages[0].stats.macs == 0
    field = result.field
    assert field is not None and all(a.size == 1 and a.jump == 1 and a.start == 0 for a in field)


def test_activation_ops_per_element() -> None:
    assert run({"type": "relu"}, (3, 4, 4)).stages[0].stats.other_ops == 3 * 4 * 4
    assert run({"type": "softmax"}, (10,)).stages[0].stats.other_ops == 3 * 10  # exp, sum, divide
    assert run({"type": "dropout"}, (10,)).stages[0].stats.other_ops == 0


@pytest.mark.parametrize(
    ("start", "end", "shape"),
    [
        pytest.param(1, -1, (4, 3, 5), id="default-everything"),
        pytest.param(2, -1, (4, 3, 5), id="spatial-only"),
        pytest.param(1, 2, (4, 3, 5, 2), id="channels-and-depth"),
        pytest.param(1, -1, (7,), id="already-flat"),
    ],
)
def test_flatten_matches_torch(start: int, end: int, shape: tuple[int, ...]) -> None:
    result = run({"type": "flatten", "start_dim": start, "end_dim": end}, shape)
    assert result.output_shape == torch_shape(nn.Flatten(start, end), shape)


def test_flatten_refuses_the_batch_axis() -> None:
    with pytest.raises(ShapeError, match="batch"):
        run({"type": "flatten", "start_dim": 0}, (4, 3))


@pytest.mark.parametrize(
    ("dim", "sizes", "shape"),
    [
        pytest.param(1, (12, 1, 1), (12,), id="se-gate-view"),
        pytest.param(1, (2, 3), (6, 5, 5), id="channel-groups"),
        pytest.param(-1, (4, 5), (3, 20), id="last-axis"),
        pytest.param(2, (5,), (3, 5, 7), id="one-size"),
    ],
)
def test_unflatten_matches_torch(dim: int, sizes: tuple[int, ...], shape: tuple[int, ...]) -> None:
    result = run({"type": "unflatten", "dim": dim, "unflattened_size": list(sizes)}, shape)
    assert result.output_shape == torch_shape(nn.Unflatten(dim, sizes), shape)
    assert params(result) == 0 and result.stages[0].stats.macs == 0


@pytest.mark.parametrize(
    ("raw", "shape", "module", "macs"),
    [
        pytest.param({"type": "linear", "out_features": 10}, (512,), nn.Linear(512, 10), 512 * 10, id="vector"),
        pytest.param(
            {"type": "dense", "units": 10, "bias": False}, (512,), nn.Linear(512, 10, bias=False), 512 * 10, id="keras-dense"
        ),
        pytest.param({"type": "fc", "out_features": 8}, (16, 3, 3), None, 3 * 3 * 16 * 8, id="channel-axis-per-position"),
    ],
)
def test_linear_params_and_macs(raw: dict[str, object], shape: tuple[int, ...], module: nn.Module | None, macs: int) -> None:
    result = run(raw, shape)
    stats = result.stages[0].stats
    assert stats.macs == macs
    if module is not None:
        assert params(result) == torch_params(module)
        assert result.output_shape == torch_shape(module, shape)
    else:  # on the channel axis = a 1x1 convolution with the same weights
        conv = nn.Conv2d(16, 8, 1)
        assert params(result) == torch_params(conv)
        assert result.output_shape == torch_shape(conv, shape)


def test_linear_in_features_must_match() -> None:
    with pytest.raises(ShapeError, match="in_features"):
        run({"type": "linear", "in_features": 100, "out_features": 10}, (512,))


def test_embedding_matches_torch() -> None:
    result = run({"type": "embedding", "num_embeddings": 1000, "embedding_dim": 64}, (1, 50))
    module = nn.Embedding(1000, 64)
    assert params(result) == torch_params(module)
    with torch.no_grad():
        torch_out = module(torch.zeros(1, 50, dtype=torch.long)).transpose(1, 2)  # (N, L, E) -> channels first
    assert result.output_shape == tuple(torch_out.shape[1:])
    assert result.stages[0].stats.macs == 0


# ----------------------------------------------------------------------------------------------
# Upsampling, pixel (un)shuffle, padding and cropping
# ----------------------------------------------------------------------------------------------


@st.composite
def upsamples(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, object]]:
    mode, rank = draw(
        st.sampled_from([("nearest", 1), ("nearest", 2), ("nearest", 3), ("linear", 1), ("bilinear", 2), ("trilinear", 3)])
    )
    shape = (2, *(draw(st.integers(1, 9)) for _ in range(rank)))
    if draw(st.booleans()):
        return mode, shape, {"scale_factor": draw(st.sampled_from([1, 2, 3, 0.5, 1.5, 2.25]))}
    return mode, shape, {"size": [draw(st.integers(1, 20)) for _ in range(rank)]}


@given(upsamples(), st.booleans())
def test_upsample_shapes_match_torch(case: tuple[str, tuple[int, ...], dict[str, object]], align: bool) -> None:
    mode, shape, how = case
    align = align and mode != "nearest"
    raw = {"type": "upsample", "mode": mode, "align_corners": align, **how}
    kwargs = {"align_corners": align} if mode != "nearest" else {}
    module = nn.Upsample(**how, mode=mode, **kwargs)  # type: ignore[arg-type]
    assert convcalc_shape(raw, shape) == torch_shape(module, shape)


def test_upsample_needs_exactly_one_of_scale_and_size() -> None:
    with pytest.raises(SpecError, match="exactly one"):
        run({"type": "upsample"}, (1, 4, 4))
    with pytest.raises(ShapeError, match="bilinear"):
        run({"type": "upsample", "scale_factor": 2, "mode": "bilinear"}, (1, 4))


@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5))
def test_pixel_shuffle_and_unshuffle_match_torch(r: int, c: int, h: int, w: int) -> None:
    shape = (c * r * r, h, w)
    assert convcalc_shape({"type": "pixel_shuffle", "upscale_factor": r}, shape) == torch_shape(nn.PixelShuffle(r), shape)
    big = (c, h * r, w * r)
    assert convcalc_shape({"type": "pixel_unshuffle", "r": r}, big) == torch_shape(nn.PixelUnshuffle(r), big)
    assume(r > 1)
    odd = (c, h * r + 1, w * r)
    assert convcalc_shape({"type": "space_to_depth", "r": r}, odd) is None
    assert torch_shape(nn.PixelUnshuffle(r), odd) is None


def test_zero_padding_is_per_axis_in_axis_order() -> None:
    # convcalc: [[top, bottom], [left, right]]; PyTorch ZeroPad2d takes (left, right, top, bottom)
    result = run({"type": "zeropad2d", "padding": [[1, 2], [3, 4]]}, (3, 5, 5))
    assert result.output_shape == torch_shape(nn.ZeroPad2d((3, 4, 1, 2)), (3, 5, 5))
    crop = run({"type": "crop2d", "cropping": [[1, 2], [0, 1]]}, (3, 8, 8))
    assert crop.output_shape == (3, 8 - 1 - 2, 8 - 0 - 1)
    with pytest.raises(ShapeError, match="cropped size"):
        run({"type": "crop1d", "cropping": 3}, (1, 5))


# ----------------------------------------------------------------------------------------------
# Kinds: every layer the issue lists is registered and refuses bad values
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "maxpool1d", "maxpool2d", "maxpool3d", "avgpool1d", "avgpool2d", "avgpool3d", "adaptive_avgpool2d",
        "adaptive_maxpool3d", "global_avgpool", "global_maxpool", "batchnorm2d", "layernorm", "groupnorm",
        "instancenorm2d", "local_response_norm", "lrn", "relu", "gelu", "silu", "swish", "hardswish", "prelu", "softmax", "dropout", "flatten",
        "unflatten", "linear", "dense", "upsample", "pixel_shuffle", "pixel_unshuffle", "zeropad2d", "identity", "embedding",
    ],
)  # fmt: skip
def test_kind_is_registered(name: str) -> None:
    assert lookup(name).formulas, "every kind states its formulas"


BAD: list[tuple[str, dict[str, object], tuple[int, ...], type[ConvcalcError], str]] = [
    ("groupnorm-indivisible", {"type": "groupnorm", "num_groups": 5}, (16, 4, 4), ShapeError, "divisible"),
    ("layernorm-wrong-shape", {"type": "layernorm", "normalized_shape": [4, 4]}, (16, 5, 5), ShapeError, "trailing"),
    ("batchnorm-num-features", {"type": "batchnorm2d", "num_features": 8}, (16, 5, 5), ShapeError, "num_features"),
    ("batchnorm1d-on-image", {"type": "batchnorm1d"}, (16, 5, 5), ShapeError, "batchnorm2d"),
    ("prelu-count", {"type": "prelu", "num_parameters": 3}, (16, 5, 5), ShapeError, "num_parameters"),
    ("pixel-shuffle-channels", {"type": "pixel_shuffle", "r": 2}, (6, 4, 4), ShapeError, "divisible"),
    ("softmax-other-dim", {"type": "softmax", "dim": 2}, (6, 4, 4), ShapeError, "dim"),
    ("dropout-probability", {"type": "dropout", "p": 1.5}, (6,), SpecError, "between 0 and 1"),
    (
        "upsample-align-nearest",
        {"type": "upsample", "scale_factor": 2, "align_corners": True},
        (1, 4, 4),
        SpecError,
        "align_corners",
    ),
    ("zeropad-mode", {"type": "zeropad2d", "padding": "same"}, (1, 4, 4), SpecError, "explicit"),
    ("pool-kernel-too-big", {"type": "maxpool2d", "kernel_size": 9}, (1, 4, 4), ShapeError, "larger than the padded input"),
    ("conv-on-vector", {"type": "conv2d", "out_channels": 2, "kernel_size": 1}, (16,), ShapeError, "spatial"),
    ("unflatten-sizes", {"type": "unflatten", "unflattened_size": [4, 2]}, (6, 5), ShapeError, "multiply to"),
    ("unflatten-batch", {"type": "unflatten", "dim": 0, "unflattened_size": [1, 1]}, (6,), ShapeError, "batch"),
]


@pytest.mark.parametrize(("raw", "shape", "error", "text"), [pytest.param(*b[1:], id=b[0]) for b in BAD])
def test_bad_layers_are_refused(raw: dict[str, object], shape: tuple[int, ...], error: type[ConvcalcError], text: str) -> None:
    with pytest.raises(error, match=text):
        run(raw, shape)


def _torch_refuses(make: Callable[[], nn.Module], shape: tuple[int, ...]) -> bool:
    try:
        return torch_shape(make(), shape) is None
    except (RuntimeError, ValueError):
        return True


def test_refusals_agree_with_torch() -> None:
    assert _torch_refuses(lambda: nn.GroupNorm(5, 16), (16, 4, 4))
    assert _torch_refuses(lambda: nn.PixelShuffle(2), (6, 4, 4))
    assert _torch_refuses(lambda: nn.MaxPool2d(3, padding=2), (1, 7, 7))


# ----------------------------------------------------------------------------------------------
# Channel selection: torch.chunk and slicing
# ----------------------------------------------------------------------------------------------


@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 8))
def test_chunk_matches_torch_chunk(channels: int, chunks: int, index: int) -> None:
    pieces = torch.zeros(1, channels, 3).chunk(chunks, dim=1)
    expected = tuple(pieces[index].shape[1:]) if index < len(pieces) else None
    assert convcalc_shape({"type": "chunk", "chunks": chunks, "index": index}, (channels, 3)) == expected


def test_channel_slice() -> None:
    assert run({"type": "channel_slice", "start": 2, "end": 5}, (8, 4, 4)).output_shape == (3, 4, 4)
    assert run({"type": "channel_slice", "start": 6}, (8,)).output_shape == (2,)
    with pytest.raises(ShapeError, match="non-empty range"):
        run({"type": "channel_slice", "start": 6, "end": 9}, (8, 4, 4))
