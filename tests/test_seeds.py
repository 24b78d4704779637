"""The worked examples of ../shared/seeds/, reproduced through the CLI (``--format json``).

Every expected number is written as the seed's own arithmetic, so a reader can check it against
the text: e.g. "128 x 3 x 3 x 3 x 5 x 5 = 86,400" (seed 001/002, depthwise separable section).
General formulas (ratios, spatially separable MACs, R(2+1)D mid channels) are checked with exact
Fractions over hypothesis-drawn sizes.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

try:
    import torch
except ImportError:  # the pure tests still run; the torch oracles below are skipped (needs_torch)
    torch = None  # type: ignore[assignment]

from hypothesis import example, given, settings
from hypothesis import strategies as st

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch (the reference oracle)")

# --------------------------------------------------------------------------------------------
# Depthwise separable: 7x7x3 -> 5x5x128 (seeds 001, 002) and 12x12x3 -> 8x8x256 (seed 003)
# --------------------------------------------------------------------------------------------

SEPARABLE_SEEDS = [
    pytest.param(
        "3x7x7",
        128,
        3,
        [128, 5, 5],
        128 * 3 * 3 * 3 * 5 * 5,  # "128 x 3 x 3 x 3 x 5 x 5 = 86,400"
        3 * 3 * 3 * 1 * 5 * 5,  # "3x3x3x1x5x5 = 675"
        128 * 1 * 1 * 3 * 5 * 5,  # "128 x 1 x 1 x 3 x 5 x 5 = 9,600"
        id="7x7x3->5x5x128",
    ),
    pytest.param(
        "3x12x12",
        256,
        5,
        [256, 8, 8],
        256 * 3 * 5 * 5 * 8 * 8,  # "256x3x5x5x8x8=1,228,800"
        3 * 5 * 5 * 8 * 8,  # "3x5x5x8x8 = 4,800"
        256 * 1 * 1 * 3 * 8 * 8,  # "256x1x1x3x8x8=49,152"
        id="12x12x3->8x8x256",
    ),
]


@pytest.mark.parametrize(("shape", "c_out", "k", "out_shape", "standard", "depthwise", "pointwise"), SEPARABLE_SEEDS)
def test_depthwise_separable_seed_multiplications(cli_json, shape, c_out, k, out_shape, standard, depthwise, pointwise):
    conv = cli_json(["flops", "conv2d", "--in", shape, "-o", c_out, "-k", k])
    sep = cli_json(["flops", "separable2d", "--in", shape, "-o", c_out, "-k", k])
    assert conv["output_shape"] == out_shape
    assert sep["output_shape"] == out_shape
    assert conv["macs"] == standard
    assert [s["name"] for s in sep["stages"]] == ["depthwise", "pointwise"]
    assert [s["macs"] for s in sep["stages"]] == [depthwise, pointwise]
    assert sep["macs"] == depthwise + pointwise
    # FLOPs are 2 x MACs (never MACs under another name, STYLE.md), bias additions apart.
    assert conv["flops"] == 2 * standard
    assert sep["flops"] == 2 * (depthwise + pointwise)


def test_seed_totals_literally():
    """The seeds' printed totals, so a typo in a formula above cannot hide (seed 003 prints 52,952 once: a typo)."""
    assert 128 * 3 * 3 * 3 * 5 * 5 == 86_400
    assert 675 + 9_600 == 10_275
    assert 256 * 3 * 5 * 5 * 8 * 8 == 1_228_800
    assert 4_800 + 49_152 == 53_952


def test_seed_7x7x3_through_compare(cli_json):
    """`convcalc compare` gives the same numbers and the seed's ratio 10,275 / 86,400 (about 12%)."""
    rows = cli_json(["compare", "conv2d", "separable2d", "--in", "3x7x7", "-o", "128", "-k", "3"])
    by_type = {row["type"]: row for row in rows}
    assert by_type["conv2d"]["macs"] == 86_400
    assert by_type["separable2d"]["macs"] == 10_275
    assert Fraction(10_275, 86_400) == Fraction(1, 128) + Fraction(1, 3 * 3)  # seed: (h·h + Nc)/(h·h·Nc)


# --------------------------------------------------------------------------------------------
# Spatially separable: 5x5 input, 3x3 kernel, 1 channel: 81 vs 72 (= 45 + 27) (seeds 000, 001)
# --------------------------------------------------------------------------------------------


def test_spatially_separable_seed_81_vs_72(cli_json):
    normal = cli_json(["flops", "conv2d", "--in", "1x5x5", "-o", "1", "-k", "3"])
    sep = cli_json(["flops", "spatial_separable2d", "--in", "1x5x5", "-o", "1", "-k", "3"])
    assert normal["macs"] == 9 * 9  # "9 different positions ... 9 element-wise multiplications"
    # stage 1: 3x1 kernel at 5 x 3 = 15 positions, 3 multiplications each; output 3 x 5
    # stage 2: 1x3 kernel at 3 x 3 = 9 positions, 3 multiplications each
    assert [s["output_shape"] for s in sep["stages"]] == [[1, 3, 5], [1, 3, 3]]
    assert [s["macs"] for s in sep["stages"]] == [15 * 3, 9 * 3]
    assert sep["macs"] == 45 + 27 == 72
    # parameters: "reduced from 9 to 6" (weights; bias is extra)
    assert normal["weights"] == 3 * 3
    assert sep["weights"] == 3 + 3


@settings(max_examples=60)
@given(m=st.integers(1, 7), extra=st.integers(0, 12))
@example(m=3, extra=2)  # the seed's 5x5 / 3x3 example
def test_spatially_separable_general_formula(cli_json, m, extra):
    """Seed 000 §14.1: n x n input, m x m kernel, s=1, p=0, one channel:
    normal (n-m+1)²·m², separable n·(n-m+1)·m + (n-m+1)²·m = (n-m+1)·m·(2n-m+1)."""
    n = m + extra
    sep = cli_json(["flops", "spatial_separable2d", "--in", f"1x{n}x{n}", "-o", "1", "-k", m])
    normal = cli_json(["flops", "conv2d", "--in", f"1x{n}x{n}", "-o", "1", "-k", m])
    assert normal["macs"] == (n - m + 1) ** 2 * m**2
    assert sep["macs"] == n * (n - m + 1) * m + (n - m + 1) ** 2 * m
    assert sep["macs"] == (n - m + 1) * m * (2 * n - m + 1)
    # the seed's ratio: 2/m asymptotically; exactly (2n-m+1) / (m·(n-m+1))
    assert Fraction(sep["macs"], normal["macs"]) == Fraction(2 * n - m + 1, m * (n - m + 1))


# --------------------------------------------------------------------------------------------
# Parameters: 16 -> 32 channels, 3x3, no bias: 4,608 vs 656 (seed 004)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial", ["7x7", "32x32", "3x3"], ids=lambda s: f"in16x{s}")
def test_separable_params_seed_4608_vs_656(cli_json, spatial):
    conv = cli_json(["params", "conv2d", "--in", f"16x{spatial}", "-o", "32", "-k", "3", "--no-bias"])
    sep = cli_json(["params", "separable2d", "--in", f"16x{spatial}", "-o", "32", "-k", "3", "--no-bias"])
    assert conv["params"] == 16 * 32 * 3 * 3 == 4_608
    assert sep["params"] == 16 * 3 * 3 + 16 * 32 * 1 * 1 == 656
    assert conv["biases"] == sep["biases"] == 0


def test_separable_params_with_bias_and_depth_multiplier(cli_json):
    """Keras SeparableConv2D: depthwise C_in·dm·k·k (no bias) + pointwise C_in·dm·C_out + C_out bias."""
    sep = cli_json(["params", "separable2d", "--in", "16x7x7", "-o", "32", "-k", "3", "--depth-multiplier", "2"])
    assert sep["weights"] == 16 * 2 * 3 * 3 + 16 * 2 * 32
    assert sep["biases"] == 32
    assert [s["output_shape"][0] for s in sep["stages"]] == [16 * 2, 32]


# --------------------------------------------------------------------------------------------
# Grouped convolution parameters, relations 15.1 (2D) and 15.2 (3D) (seed 000 ch. 15)
# --------------------------------------------------------------------------------------------

GROUPED_2D = [
    pytest.param(c_in, c_out, g, id=f"2d-cin{c_in}-cout{c_out}-g{g}")
    for c_in, c_out in ((16, 32), (12, 24), (8, 8))
    for g in (1, 2, 4)
] + [pytest.param(8, 8, 8, id="2d-cin8-cout8-g8-depthwise-like")]


@pytest.mark.parametrize(("c_in", "c_out", "g"), GROUPED_2D)
def test_grouped_params_relation_15_1(cli_json, c_in, c_out, g):
    k_h, k_w = 3, 5
    out = cli_json(["params", "conv2d", "--in", f"{c_in}x9x9", "-o", c_out, "-k", f"{k_h}x{k_w}", "-g", g])
    assert out["params"] == ((c_in // g) * k_h * k_w) * c_out + c_out  # (15.1): #weights + #biases
    assert out["weights"] == (c_in // g) * k_h * k_w * c_out
    assert out["biases"] == c_out
    # seed 001/002: "2 x (h x w x Din/2 x Dout/2) = (1/2) x (h x w x Din x Dout)": weights shrink by exactly g
    assert out["weights"] * g == k_h * k_w * c_in * c_out
    assert out["output_shape"] == [c_out, 9 - k_h + 1, 9 - k_w + 1]


@pytest.mark.parametrize(("c_in", "c_out", "g"), [(8, 16, 1), (8, 16, 2), (8, 16, 4), (6, 12, 3), (4, 4, 4)], ids=str)
def test_grouped_params_relation_15_2(cli_json, c_in, c_out, g):
    k_d, k_h, k_w = 2, 3, 3
    out = cli_json(["params", "conv3d", "--in", f"{c_in}x5x6x7", "-o", c_out, "-k", f"{k_d}x{k_h}x{k_w}", "-g", g])
    assert out["params"] == ((c_in // g) * k_d * k_h * k_w) * c_out + c_out  # (15.2)
    assert out["output_shape"] == [c_out, 5 - k_d + 1, 6 - k_h + 1, 7 - k_w + 1]


def test_grouped_equals_depthwise_when_g_equals_c_in(cli_json):
    """Seed 000: with g = C_in each filter is (1, k_H, k_W); with C_out = C_in that is a depthwise conv."""
    grouped = cli_json(["params", "conv2d", "--in", "8x9x9", "-o", "8", "-k", "3", "-g", "8"])
    depthwise = cli_json(["params", "depthwise2d", "--in", "8x9x9", "-k", "3"])
    assert grouped["params"] == depthwise["params"] == 1 * 3 * 3 * 8 + 8
    assert grouped["output_shape"] == depthwise["output_shape"] == [8, 7, 7]


def test_pointwise_grouped_seed(cli_json):
    """Seed 001 §12 (ShuffleNet): group convolution of 1x1 filters: weights C_out·C_in/g."""
    out = cli_json(["params", "pointwise", "--in", "240x28x28", "-o", "240", "-g", "3"])
    assert out["weights"] == 240 * (240 // 3) * 1 * 1
    assert out["output_shape"] == [240, 28, 28]


# --------------------------------------------------------------------------------------------
# Transposed convolution: 2x2 -> 5x5 (k3 s2) and 2x2 -> 4x4 (k3 s1) (seeds 001, 004)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stride", "expected"),
    [pytest.param(2, [1, 5, 5], id="k3-s2-2x2->5x5"), pytest.param(1, [1, 4, 4], id="k3-s1-2x2->4x4")],
)
def test_transposed_seed_shapes(cli_json, stride, expected):
    out = cli_json(["shape", "conv_transpose2d", "--in", "1x2x2", "-o", "1", "-k", "3", "-s", stride])
    assert out["output_shape"] == expected
    # counted per INPUT position: 2·2 inputs × 3·3 taps (STYLE.md: the bug several counters shipped)
    assert out["macs"] == 2 * 2 * 1 * 1 * 3 * 3


def test_transposed_undoes_the_seed_convolution_shape(cli_json):
    """Seed 004: 5x5, stride 2, no padding, 3x3 kernel -> 2x2; the transposed conv gives 5x5 back."""
    down = cli_json(["shape", "conv2d", "--in", "1x5x5", "-o", "1", "-k", "3", "-s", "2"])
    assert down["output_shape"] == [1, 2, 2]
    up = cli_json(["shape", "deconv2d", "--in", "1x2x2", "-o", "1", "-k", "3", "-s", "2"])
    assert up["output_shape"] == [1, 5, 5]


# --------------------------------------------------------------------------------------------
# Dilated convolution: receptive fields (seeds 001, 004)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "field"), [(1, 3), (2, 5), (4, 9)], ids=str)
def test_dilated_single_layer_field(cli_json, d, field):
    """Seed 004: "A 3x3 kernel with a dilation rate of 2 will have the same field of view as a 5x5 kernel,
    while only using 9 parameters"; one layer's field is d·(k-1)+1."""
    out = cli_json(["rf", "atrous2d", "--in", "1x32x32", "-o", "1", "-k", "3", "-d", d, "--no-bias"])
    assert [axis["size"] for axis in out["receptive_field"]] == [field, field]
    assert out["params"] == 3 * 3


def test_dilated_stack_1_2_4_gives_3_7_15(cli_json):
    """Seed 001 §7 (Yu & Koltun): stacking 3x3 with l = 1, 2, 4 gives fields 3, 7, 15.

    Each layer's own field comes from convcalc; composing stride-1 layers adds (r_i - 1)."""
    total, seen = 1, []
    for d in (1, 2, 4):
        out = cli_json(["rf", "conv2d", "--in", "1x64x64", "-o", "1", "-k", "3", "-d", d])
        sizes = {axis["size"] for axis in out["receptive_field"]}
        strides = {axis["stride"] for axis in out["receptive_field"]}
        assert len(sizes) == 1 and strides == {1}
        total += sizes.pop() - 1
        seen.append(total)
    assert seen == [3, 7, 15]


# --------------------------------------------------------------------------------------------
# Ratio formulas with exact Fractions over random sizes
# --------------------------------------------------------------------------------------------


@settings(max_examples=80)
@given(
    c_in=st.integers(1, 8),
    c_out=st.integers(1, 300),
    k_h=st.integers(1, 7),
    k_w=st.integers(1, 7),
    extra_h=st.integers(0, 6),
    extra_w=st.integers(0, 6),
    stride=st.integers(1, 3),
)
@example(c_in=3, c_out=128, k_h=3, k_w=3, extra_h=4, extra_w=4, stride=1)
@example(c_in=3, c_out=256, k_h=5, k_w=5, extra_h=7, extra_w=7, stride=1)
def test_separable_vs_standard_ratio(cli_json, c_in, c_out, k_h, k_w, extra_h, extra_w, stride):
    """Seed 001 §8.2: separable / standard multiplications = 1/C_out + 1/(h·w), exactly."""
    h, w = k_h + extra_h, k_w + extra_w
    rows = cli_json(
        ["compare", "conv2d", "separable2d", "--in", f"{c_in}x{h}x{w}", "-o", c_out, "-k", f"{k_h}x{k_w}", "-s", stride]
    )
    conv, sep = rows
    assert (conv["type"], sep["type"]) == ("conv2d", "separable2d")
    assert Fraction(sep["macs"], conv["macs"]) == Fraction(1, c_out) + Fraction(1, k_h * k_w)
    # and the seed's closed form for the separable total: (h·w + Nc) · D · H_out · W_out
    h_out, w_out = (h - k_h) // stride + 1, (w - k_w) // stride + 1
    assert sep["macs"] == (k_h * k_w + c_out) * c_in * h_out * w_out
    assert conv["macs"] == c_out * k_h * k_w * c_in * h_out * w_out


# --------------------------------------------------------------------------------------------
# R(2+1)D (Tran et al. 2018): mid channels and parameters of a torch-built block
# --------------------------------------------------------------------------------------------


def tran_mid_channels(t: int, d: int, n_in: int, n_out: int) -> int:
    """Tran et al. 2018 §3.5: M_i = floor(t·d²·N_{i-1}·N_i / (d²·N_{i-1} + t·N_i)).

    (torchvision VideoResNet writes the same for t = d = 3: ``(inplanes * planes * 3 * 3 * 3) //
    (inplanes * 3 * 3 + 3 * planes)``.)"""
    return (t * d * d * n_in * n_out) // (d * d * n_in + t * n_out)


def torch_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@needs_torch
@pytest.mark.parametrize(
    ("n_in", "n_out", "t", "d"),
    [(64, 64, 3, 3), (64, 128, 3, 3), (3, 64, 3, 7), (128, 256, 3, 3), (5, 7, 2, 3)],
    ids=str,
)
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_r2plus1d_mid_channels_and_params(cli_json, n_in, n_out, t, d, bias):
    m = tran_mid_channels(t, d, n_in, n_out)
    flag = "--bias" if bias else "--no-bias"
    out = cli_json(["params", "conv2plus1d", "--in", f"{n_in}x4x9x9", "-o", n_out, "-k", f"{t}x{d}x{d}", flag])
    spatial, temporal = out["stages"]
    assert spatial["output_shape"][0] == m
    assert temporal["input_shape"][0] == m
    block = torch.nn.Sequential(
        torch.nn.Conv3d(n_in, m, (1, d, d), bias=bias),
        torch.nn.Conv3d(m, n_out, (t, 1, 1), bias=bias),
    )
    assert out["params"] == torch_params(block)
    # the formula's purpose: the (2+1)D weights equal the full t x d x d conv's up to less than one
    # mid channel's worth (d²·N_in + t·N_out weights)
    full = torch_params(torch.nn.Conv3d(n_in, n_out, (t, d, d), bias=False))
    per_mid = d * d * n_in + t * n_out
    assert out["weights"] == m * per_mid
    assert 0 <= full - out["weights"] < per_mid


def test_r2plus1d_explicit_mid_channels(cli_json):
    out = cli_json(["params", "r2plus1d", "--in", "16x4x9x9", "-o", "32", "-k", "3", "--mid-channels", "10", "--no-bias"])
    assert out["weights"] == 16 * 10 * 1 * 3 * 3 + 10 * 32 * 3 * 1 * 1
    assert out["output_shape"] == [32, 2, 7, 7]
