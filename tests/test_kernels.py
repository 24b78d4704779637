"""Property tests of convcalc.execute kernels against torch.nn.functional.

Tolerances (max abs error):

* float64 runs: ``1e-10 * (1 + max|ref|)`` -- every algorithm (im2col, taps,
  Winograd, phase-decomposed transposed) is exact up to rounding, so float64
  exposes any indexing error.
* float32 runs: ``3e-5 * sqrt(K) * max|x| * max|w|`` with ``K`` the reduction
  size (``C_in/groups * prod(k)``): rounding of a K-term dot product grows like
  ``sqrt(K)``; the factor 3e-5 (about 250 float32 ulps) also covers the
  Winograd F(4, r) transforms, whose error amplification is ~10x direct.
* element-wise layers: ``1e-6 * (1 + max|ref|)`` in float32.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, reject, settings
from hypothesis import strategies as st

from convcalc.execute import conv as conv_mod
from convcalc.execute import kernels as K
from convcalc.execute import winograd as wg

torch.set_num_threads(1)
Case = dict[str, Any]
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAXP = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVGP = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
FAST = settings(max_examples=100, deadline=None)


def rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def assert_tight(y: np.ndarray, ref: np.ndarray) -> None:
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-10 * (1 + np.abs(ref).max()))


def assert_f32(y: np.ndarray, ref: np.ndarray, reduction: int, x: np.ndarray, w: np.ndarray) -> None:
    assert y.shape == ref.shape and y.dtype == np.float32
    tol = 3e-5 * math.sqrt(reduction) * np.abs(x).max() * np.abs(w).max()
    np.testing.assert_allclose(y, ref, rtol=0, atol=tol)


def flat_pad(pads: tuple[tuple[int, int], ...]) -> list[int]:
    """torch F.pad order: last axis first."""
    return [v for pair in reversed(pads) for v in pair]


# ------------------------------------------------------------------ convolution


@st.composite
def conv_cases(draw: st.DrawFn, depthwise: bool = False) -> Case:
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cin_g = 1 if depthwise else draw(st.integers(1, 3))
    cout_g = draw(st.integers(1, 3))
    maxk = 3 if nd < 3 else 2
    kernel = tuple(draw(st.integers(1, maxk)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    size = tuple(draw(st.integers(1, 9 if nd < 3 else 5)) for _ in range(nd))
    for n, k, d, (pb, pa) in zip(size, kernel, dilation, pads, strict=True):
        assume(n + pb + pa >= d * (k - 1) + 1)
    return {
        "x": (draw(st.integers(1, 2)), cin_g * groups, *size),
        "w": (cout_g * groups, cin_g, *kernel),
        "stride": stride,
        "padding": pads,
        "dilation": dilation,
        "groups": groups,
        "seed": draw(st.integers(0, 2**16)),
    }


def torch_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, case: Case) -> np.ndarray:
    xt = F.pad(torch.from_numpy(x), flat_pad(case["padding"]))
    op = CONV[x.ndim - 2]
    return op(xt, torch.from_numpy(w), torch.from_numpy(b), case["stride"], 0, case["dilation"], case["groups"]).numpy()


def run_conv(case: Case, dtype: type, algorithm: Any = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(case["seed"])
    x, w, b = rand(rng, case["x"], dtype), rand(rng, case["w"], dtype), rand(rng, (case["w"][0],), dtype)
    y = K.conv(x, w, b, case["stride"], case["padding"], case["dilation"], case["groups"], algorithm=algorithm)
    return y, torch_conv(x, w, b, case), x, w


def applicable_paths(case: Case) -> list[str]:
    spec_args = (case["x"], case["w"], case["stride"], case["padding"], case["dilation"], case["groups"])
    paths = ["auto", "im2col"]
    names: tuple[Any, ...] = ("taps", "rowsum", "winograd", "matmul")
    for name in names:
        try:
            K.plan_conv(*spec_args, algorithm=name)
        except ValueError:
            continue
        paths.append(name)
    return paths


@FAST
@given(conv_cases())
def test_conv_matches_torch_all_paths(case: Case) -> None:
    for path in applicable_paths(case):
        y, ref, _, _ = run_conv(case, np.float64, path)
        assert_tight(y, ref)


@FAST
@given(conv_cases())
def test_conv_float32(case: Case) -> None:
    y, ref, x, w = run_conv(case, np.float32)
    assert_f32(y, ref, math.prod(case["w"][1:]), x, w)


@FAST
@given(conv_cases(depthwise=True))
def test_depthwise_with_multiplier(case: Case) -> None:
    """groups = C_in, C_out = C_in * multiplier: output o reads input channel o // multiplier."""
    case = dict(case, groups=case["x"][1], w=(case["x"][1] * case["w"][0] // case["groups"], 1, *case["w"][2:]))
    y, ref, _, _ = run_conv(case, np.float64)
    assert_tight(y, ref)
    assert K.plan_conv(case["x"], case["w"], case["stride"], case["padding"], case["dilation"], case["groups"]).path in (
        "taps",
        "rowsum",
        "matmul",
        "im2col",
    )


@pytest.mark.parametrize(
    ("x", "w", "padding", "dilation", "groups"),
    [
        ((2, 5, 9, 7), (5, 1, 3, 3), ((1, 1), (1, 1)), (1, 1), 5),
        ((1, 4, 6, 8), (12, 1, 3, 5), ((0, 3), (3, 5)), (2, 2), 4),
        ((3, 3, 7, 1), (3, 1, 2, 3), ((1, 0), (2, 0)), (1, 1), 3),
        ((1, 2, 5, 3), (4, 1, 4, 5), ((2, 1), (1, 3)), (1, 1), 2),
        ((1, 6, 4, 6), (6, 1, 1, 1), ((0, 0), (0, 0)), (1, 1), 6),
        ((1, 3, 5, 2), (3, 1, 3, 5), ((1, 1), (4, 4)), (1, 2), 3),
        ((2, 4, 1, 1), (4, 1, 3, 3), ((1, 1), (1, 1)), (1, 1), 4),
        ((2, 8, 9, 7), (8, 4, 3, 3), ((1, 1), (1, 1)), (1, 1), 2),
        ((1, 8, 6, 10), (16, 2, 3, 5), ((2, 2), (4, 0)), (2, 1), 4),
        ((2, 12, 5, 6), (12, 3, 4, 5), ((2, 1), (1, 3)), (1, 1), 4),
        ((1, 4, 5, 6), (8, 4, 1, 3), ((0, 0), (1, 1)), (1, 1), 1),
    ],
)
@pytest.mark.parametrize("budget", [None, 3000])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_rowsum_matches_torch(
    x: tuple[int, ...],
    w: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, int],
    groups: int,
    budget: Any,
    layout: str,
) -> None:
    """Two-stage rowsum path (stride-1 same-width 2-D: depthwise with multipliers, grouped, dense),
    blocked over samples and groups by a small budget, reading a strided input (row by row) and
    writing a strided ``out`` (through its block buffer), in float32 and float64."""
    case = {"x": x, "w": w, "stride": (1, 1), "padding": padding, "dilation": dilation, "groups": groups, "seed": 3}
    spec_args = (x, w, (1, 1), padding, dilation, groups)
    with K.workspace_budget(budget or K.get_workspace_budget()):
        y32, ref32, x32, w32 = run_conv(case, np.float32, "rowsum")
        assert_f32(y32, ref32, math.prod(w[1:]), x32, w32)
        plan = K.plan_conv(*spec_args, dtype=np.float64, algorithm="rowsum")
        assert plan.path == "rowsum" and (budget is None or plan.workspace_bytes <= budget or plan.block == (1, 1))
        rng = np.random.default_rng(4)
        xa, wa, b = rand(rng, x), rand(rng, w), rand(rng, (w[0],))
        xin = xa
        if layout == "strided":
            wide = np.full((*x, 2), np.nan)
            wide[..., 0] = xa
            xin = wide[..., 0]
        big = np.full((x[0], w[0] + 3, *ref32.shape[2:], 2), np.nan)
        out = big[:, 1 : 1 + w[0], ..., 1] if layout == "strided" else np.empty((x[0], w[0], *ref32.shape[2:]))
        with conv_mod.reserve(plan.workspace_bytes) as ws:
            conv_mod.execute_conv(plan, xin, wa, b, out, ws)
    assert_tight(out, torch_conv(xa, wa, b, case))
    if layout == "strided":
        assert np.isnan(big[:, 0]).all() and np.isnan(big[:, 1 + w[0] :]).all() and np.isnan(big[..., 0]).all()


@FAST
@given(conv_cases(depthwise=True), st.integers(1, 3))
def test_rowsum_depthwise_property(case: Case, mult: int) -> None:
    """Any stride-1 same-width 2-D depthwise case (hypothesis: sizes, kernel, dilation, asymmetric
    padding, batch, multiplier) through the rowsum path gives torch's answer."""
    nd = len(case["x"]) - 2
    assume(nd == 2)
    pads = case["padding"]
    kernel, dilation = case["w"][2:], case["dilation"]
    assume(sum(pads[1]) == dilation[1] * (kernel[1] - 1))
    c = case["x"][1]
    case = dict(case, stride=(1, 1), groups=c, w=(c * mult, 1, *kernel))
    y, ref, _, _ = run_conv(case, np.float64, "rowsum")
    assert_tight(y, ref)
    auto = K.plan_conv(case["x"], case["w"], (1, 1), pads, dilation, c, budget=64 << 20)
    assert (auto.path == "rowsum") == (math.prod(kernel) > 1)


@pytest.mark.parametrize(
    ("x", "w", "padding", "dilation", "groups"),
    [
        ((2, 8, 9, 7), (8, 4, 3, 3), ((1, 1), (1, 1)), (1, 1), 2),
        ((1, 4, 6, 8), (6, 2, 3, 5), ((0, 3), (3, 5)), (2, 2), 2),
        ((3, 3, 7, 1), (2, 3, 2, 3), ((1, 0), (2, 0)), (1, 1), 1),
        ((2, 12, 5, 6), (12, 3, 4, 5), ((2, 1), (1, 3)), (1, 1), 4),
    ],
)
@pytest.mark.parametrize("budget", [None, 1000])
def test_im2col_wrapped_rows(
    x: tuple[int, ...],
    w: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, int],
    groups: int,
    budget: Any,
) -> None:
    """Stride-1 same-width im2col through rows of pitch W (wrapped taps masked), row-blocked too."""
    case = {"x": x, "w": w, "stride": (1, 1), "padding": padding, "dilation": dilation, "groups": groups, "seed": 5}
    with K.workspace_budget(budget or K.get_workspace_budget()):
        plan = K.plan_conv(x, w, (1, 1), padding, dilation, groups, np.float64, "im2col")
        assert conv_mod._wraps(plan.spec)
        assert budget is None or plan.block[1] < plan.spec.out_shape[0]
        y, ref, _, _ = run_conv(case, np.float64, "im2col")
    assert_tight(y, ref)


@pytest.mark.parametrize(
    ("x", "w", "padding", "dilation", "groups"),
    [
        ((2, 32, 13, 11), (32, 32, 3, 3), ((1, 1), (1, 1)), (1, 1), 1),
        ((1, 32, 17, 9), (32, 16, 3, 3), ((2, 0), (1, 3)), (2, 1), 2),
        ((2, 24, 40), (24, 24, 3), ((8, 0),), (4,), 1),
        ((1, 16, 5, 12, 10), (16, 16, 3, 3, 3), ((1, 1), (1, 1), (1, 1)), (1, 1, 1), 1),
        ((1, 16, 6, 10, 9), (16, 16, 2, 3, 2), ((1, 0), (0, 2), (1, 1)), (2, 2, 1), 1),
        ((2, 20, 9, 9), (20, 20, 2, 2), ((0, 1), (1, 0)), (1, 1), 1),
    ],
)
def test_winograd_against_direct_and_torch(
    x: tuple[int, ...], w: tuple[int, ...], padding: tuple[tuple[int, int], ...], dilation: tuple[int, ...], groups: int
) -> None:
    """Winograd F(4, r): float64 tight vs torch; float32 error <= 1e-5 * sqrt(K) * max|x| * max|w|.

    Measured: F(4x4, 3x3) float32 error is 2-30x the direct path's (largest
    for dilated tiles), i.e. ~1e-6 of the scale above.
    """
    case = {"x": x, "w": w, "stride": (1,) * len(padding), "padding": padding, "dilation": dilation, "groups": groups}
    case["seed"] = 7
    y64, ref64, _, _ = run_conv(case, np.float64, "winograd")
    assert_tight(y64, ref64)
    y32, _, x32, w32 = run_conv(case, np.float32, "winograd")
    direct, _, _, _ = run_conv(case, np.float32, "im2col")
    scale = math.sqrt(math.prod(w[1:])) * np.abs(x32).max() * np.abs(w32).max()
    assert np.abs(y32 - ref64).max() <= 1e-5 * scale
    assert np.abs(direct - ref64).max() <= 1e-6 * scale


@pytest.mark.parametrize("m", [2, 4, 6])
def test_winograd_each_tile_size(m: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every candidate F(m, 3) / F(m, 2) is exact in float64 and within the float32 bound."""
    monkeypatch.setattr(wg, "TILES", (m,))
    conv_mod._plan.cache_clear()
    try:
        for w, dil in [((24, 24, 3, 3), (2, 1)), ((24, 24, 2, 3), (1, 3))]:
            case: Case = {"x": (2, 24, 15, 14), "w": w, "stride": (1, 1), "padding": ((1, 2), (2, 1)), "dilation": dil}
            case.update(groups=1, seed=m)
            plan = K.plan_conv(case["x"], w, 1, case["padding"], dil, algorithm="winograd")
            assert plan.winograd is not None and set(plan.winograd.m) == {m}
            y64, ref64, _, _ = run_conv(case, np.float64, "winograd")
            assert_tight(y64, ref64)
            y32, _, x32, w32 = run_conv(case, np.float32, "winograd")
            scale = math.sqrt(math.prod(w[1:])) * np.abs(x32).max() * np.abs(w32).max()
            assert np.abs(y32 - ref64).max() <= 1e-5 * scale
    finally:
        conv_mod._plan.cache_clear()


def test_winograd_chosen_for_resnet_layer() -> None:
    plan = K.plan_conv((1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1)
    assert plan.path == "winograd"
    assert plan.executed_macs < plan.spec.macs


# ------------------------------------------------------------------ transposed


@st.composite
def conv_t_cases(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    out_pad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
    size = tuple(draw(st.integers(1, 6 if nd < 3 else 4)) for _ in range(nd))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    for n, k, s, d, p, o in zip(size, kernel, stride, dilation, pad, out_pad, strict=True):
        assume((n - 1) * s + d * (k - 1) + 1 - 2 * p + o >= 1)
    return {
        "x": (draw(st.integers(1, 2)), draw(st.integers(1, 3)) * groups, *size),
        "cout_g": draw(st.integers(1, 3)),
        "kernel": kernel,
        "stride": stride,
        "padding": pad,
        "output_padding": out_pad,
        "dilation": dilation,
        "groups": groups,
        "seed": draw(st.integers(0, 2**16)),
    }


def run_conv_t(case: Case, dtype: type, algorithm: Any = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(case["seed"])
    c_in = case["x"][1]
    x = rand(rng, case["x"], dtype)
    w = rand(rng, (c_in, case["cout_g"], *case["kernel"]), dtype)
    b = rand(rng, (case["cout_g"] * case["groups"],), dtype)
    pads = tuple((p, p) for p in case["padding"])
    y = K.conv_transpose(
        x, w, b, case["stride"], pads, case["output_padding"], case["dilation"], case["groups"], algorithm=algorithm
    )
    ref = CONV_T[x.ndim - 2](
        torch.from_numpy(x),
        torch.from_numpy(w),
        torch.from_numpy(b),
        case["stride"],
        case["padding"],
        case["output_padding"],
        case["groups"],
        case["dilation"],
    ).numpy()
    return y, ref, x, w


@settings(max_examples=150, deadline=None)
@given(conv_t_cases())
def test_conv_transpose_matches_torch(case: Case) -> None:
    y, ref, _, _ = run_conv_t(case, np.float64)
    assert_tight(y, ref)


@FAST
@given(conv_t_cases())
def test_conv_transpose_float32(case: Case) -> None:
    y, ref, x, w = run_conv_t(case, np.float32)
    assert_f32(y, ref, case["x"][1] // case["groups"] * math.prod(case["kernel"]), x, w)


@settings(max_examples=150, deadline=None)
@given(conv_t_cases())
def test_conv_transpose_col2im_matches_torch(case: Case) -> None:
    """The col2im path (one GEMM + strided scatter-adds), forced on every case."""
    y, ref, _, _ = run_conv_t(case, np.float64, algorithm="col2im")
    assert_tight(y, ref)
    y32, _, x32, w32 = run_conv_t(case, np.float32, algorithm="col2im")
    assert_f32(y32, ref.astype(np.float32), case["x"][1] // case["groups"] * math.prod(case["kernel"]), x32, w32)


@pytest.mark.parametrize(
    ("x", "w", "stride", "pad"),
    [
        ((1, 512, 4, 4), (512, 256, 4, 4), (2, 2), (1, 1)),  # DCGAN's second layer: few positions
        ((1, 64, 32, 32), (64, 3, 4, 4), (2, 2), (1, 1)),  # DCGAN's last layer: few output channels
    ],
)
def test_col2im_is_chosen_where_it_pays(x: tuple[int, ...], w: tuple[int, ...], stride: tuple[int, ...], pad: tuple[int, ...]) -> None:
    assert K.plan_conv_transpose(x, w, stride, tuple((p, p) for p in pad), 0, 1, 1).path.startswith("col2im")


@pytest.mark.parametrize(
    "case",
    [
        {"x": (2, 8, 5, 6), "cout_g": 16, "kernel": (4, 4), "stride": (2, 2), "padding": (1, 1), "output_padding": (0, 1)},
        {"x": (1, 6, 7), "cout_g": 20, "kernel": (5,), "stride": (3,), "padding": (2,), "output_padding": (1,)},
        {"x": (1, 4, 3, 4, 3), "cout_g": 16, "kernel": (3, 2, 3), "stride": (2, 2, 1), "padding": (1, 0, 1), "output_padding": (0, 0, 0)},
        {"x": (2, 6, 4, 5), "cout_g": 17, "kernel": (3, 3), "stride": (2, 3), "padding": (2, 0), "output_padding": (1, 0), "groups": 2},
        {"x": (1, 4, 6, 6), "cout_g": 16, "kernel": (3, 3), "stride": (2, 2), "padding": (1, 2), "output_padding": (0, 0), "dilation": (2, 2)},
    ],
    ids=["2d", "1d", "3d", "groups", "dilated"],
)
def test_channels_last_col2im_matches_torch(case: Case) -> None:
    """col2im with >= 16 output channels per group keeps its columns channels-last."""
    case = {"dilation": (1,) * len(case["kernel"]), "groups": 1, "seed": 4, **case}
    plan = K.plan_conv_transpose(
        case["x"], (case["x"][1], case["cout_g"], *case["kernel"]), case["stride"], tuple((p, p) for p in case["padding"]),
        case["output_padding"], case["dilation"], case["groups"], algorithm="col2im",
    )  # fmt: skip
    assert plan.path == "col2im-cl"
    y, ref, _, _ = run_conv_t(case, np.float64, algorithm="col2im")
    assert_tight(y, ref)


@pytest.mark.parametrize(
    ("x", "w", "stride", "pad", "out_pad", "groups"),
    [
        ((2, 32, 6, 7), (32, 16, 4, 4), (2, 2), (1, 1), (0, 0), 1),
        ((1, 32, 5, 6), (32, 16, 4, 4), (2, 2), (1, 0), (0, 0), 1),
        ((2, 24, 9), (24, 24, 4), (2,), (1,), (0,), 1),
        ((1, 32, 6, 6), (32, 16, 4, 4), (2, 2), (1, 2), (0, 1), 2),
        ((1, 20, 5, 4), (20, 20, 6, 6), (3, 3), (2, 1), (2, 0), 1),
    ],
)
def test_conv_transpose_shared_winograd(
    x: tuple[int, ...], w: tuple[int, ...], stride: tuple[int, ...], pad: tuple[int, ...], out_pad: tuple[int, ...], groups: int
) -> None:
    """Stride phases with equal sub-kernels share one Winograd input transform (shifted filters)."""
    plan = K.plan_conv_transpose(x, w, stride, tuple((p, p) for p in pad), out_pad, 1, groups, algorithm="phases")
    assert "shared-winograd" in plan.path
    case = {"x": x, "cout_g": w[1], "kernel": w[2:], "stride": stride, "padding": pad, "output_padding": out_pad}
    case.update(dilation=(1,) * len(stride), groups=groups, seed=11)
    y, ref, _, _ = run_conv_t(case, np.float64, algorithm="phases")
    assert_tight(y, ref)
    y32, _, x32, w32 = run_conv_t(case, np.float32, algorithm="phases")
    scale = math.sqrt(x[1] // groups * math.prod(w[2:])) * np.abs(x32).max() * np.abs(w32).max()
    assert np.abs(y32 - ref).max() <= 1e-5 * scale


def test_conv_transpose_asymmetric_crop() -> None:
    """(before, after) crops: equal to torch with symmetric padding min, then a slice."""
    rng = np.random.default_rng(3)
    x, w = rand(rng, (1, 3, 5, 6)), rand(rng, (3, 2, 4, 3))
    y = K.conv_transpose(x, w, None, (2, 2), ((1, 2), (0, 1)), 0, 1, 1)
    full = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2).numpy()
    assert_tight(y, full[:, :, 1:-2, 0:-1])


# ------------------------------------------------------------------ deformable


def deform_reference(
    x: np.ndarray, off: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int, d: int, mask: np.ndarray | None
) -> np.ndarray:
    """Direct loops over (n, c, tap, ho, wo) with torchvision's bilinear rule."""
    n_, c_, h_, w_ = x.shape
    co, cg, kh, kw = w.shape
    groups, k = c_ // cg, kh * kw
    og = off.shape[1] // (2 * k)
    ho_, wo_ = off.shape[2:]

    def sample(img: np.ndarray, h: float, ww: float) -> float:
        if h <= -1 or h >= h_ or ww <= -1 or ww >= w_:
            return 0.0
        h0, w0 = math.floor(h), math.floor(ww)
        lh, lw = h - h0, ww - w0

        def v(a: int, c: int) -> float:
            return float(img[a, c]) if 0 <= a < h_ and 0 <= c < w_ else 0.0

        return (
            (1 - lh) * (1 - lw) * v(h0, w0)
            + (1 - lh) * lw * v(h0, w0 + 1)
            + lh * (1 - lw) * v(h0 + 1, w0)
            + lh * lw * v(h0 + 1, w0 + 1)
        )

    cols = np.zeros((n_, c_, k, ho_, wo_))
    for n, c, i, j, ho, wo in itertools.product(range(n_), range(c_), range(kh), range(kw), range(ho_), range(wo_)):
        g, t = c // (c_ // og), i * kw + j
        dy, dx = off[n, g * 2 * k + 2 * t, ho, wo], off[n, g * 2 * k + 2 * t + 1, ho, wo]
        m = 1.0 if mask is None else mask[n, g * k + t, ho, wo]
        cols[n, c, t, ho, wo] = m * sample(x[n, c], ho * s - p + i * d + dy, wo * s - p + j * d + dx)
    y = np.zeros((n_, co, ho_, wo_))
    cog = co // groups
    for g in range(groups):
        wg = w[g * cog : (g + 1) * cog].reshape(cog, -1)
        y[:, g * cog : (g + 1) * cog] = np.einsum("ok,nkhw->nohw", wg, cols[:, g * cg : (g + 1) * cg].reshape(n_, -1, ho_, wo_))
    return np.asarray(y + b[None, :, None, None])


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 2),
    st.sampled_from([(2, 1, 1), (4, 2, 2), (4, 1, 4), (6, 3, 3)]),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 1),
    st.integers(1, 2),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_deform_conv2d(
    n: int, chans: tuple[int, ...], cout_g: int, k: int, s: int, p: int, d: int, modulated: bool, seed: int
) -> None:
    c, groups, og = chans
    rng = np.random.default_rng(seed)
    h, w_ = 5, 6
    ho, wo = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w_ + 2 * p - d * (k - 1) - 1) // s + 1
    assume(ho >= 1 and wo >= 1)
    x = rand(rng, (n, c, h, w_))
    wt = rand(rng, (cout_g * groups, c // groups, k, k))
    b = rand(rng, (cout_g * groups,))
    off = rng.uniform(-2.5, 2.5, (n, 2 * og * k * k, ho, wo))
    off[..., 0, :] = np.round(off[..., 0, :])  # exact integer positions, incl. borders
    mask = rng.uniform(0, 1, (n, og * k * k, ho, wo)) if modulated else None
    y = K.deform_conv2d(x, off, wt, b, s, p, d, mask)
    assert_tight(y, deform_reference(x, off, wt, b, s, p, d, mask))
    zero = K.deform_conv2d(x, np.zeros_like(off), wt, b, s, p, d, None if mask is None else np.ones_like(mask))
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), s, p, d, groups).numpy()
    assert_tight(zero, ref)


# ------------------------------------------------------------------ MAC counts


def brute_conv_pairs(
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    dil: tuple[int, ...],
) -> int:
    """Count (output position, tap) pairs by enumerating output positions of the padded input."""
    count = 0
    out_ranges = []
    for n, k, s, (pb, pa), d in zip(size, kernel, stride, pads, dil, strict=True):
        out_ranges.append([o for o in range(n + pb + pa) if o * s + d * (k - 1) <= n + pb + pa - 1])
    for _ in itertools.product(*out_ranges):
        count += math.prod(kernel)
    return count


@pytest.mark.parametrize(
    ("x", "w", "stride", "pads", "dil", "groups"),
    [
        ((2, 6, 9, 8), (4, 3, 3, 2), (2, 1), ((1, 0), (2, 2)), (1, 2), 2),
        ((1, 8, 12), (16, 1, 3), (1,), ((1, 1),), (2,), 8),
        ((1, 32, 10, 10), (32, 32, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
        ((1, 4, 5, 6, 7), (6, 2, 2, 3, 1), (1, 2, 3), ((0, 1), (1, 1), (0, 0)), (2, 1, 1), 2),
    ],
)
def test_conv_mac_count(
    x: tuple[int, ...],
    w: tuple[int, ...],
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    dil: tuple[int, ...],
    groups: int,
) -> None:
    rng = np.random.default_rng(0)
    with K.kernel_stats() as stats:
        K.conv(rand(rng, x), rand(rng, w), None, stride, pads, dil, groups)
    pairs = brute_conv_pairs(x[2:], w[2:], stride, pads, dil)
    assert stats.macs == x[0] * pairs * w[0] * (x[1] // groups)
    assert len(stats.records) == 1 and stats.records[0].op == "conv"


@pytest.mark.parametrize(
    ("x", "w", "stride", "pad", "out_pad", "dil", "groups"),
    [
        ((2, 4, 5, 6), (4, 3, 4, 3), (2, 2), (1, 0), (1, 0), (1, 1), 2),
        ((1, 6, 7), (6, 2, 3), (3,), (2,), (2,), (2,), 3),
        ((1, 2, 3, 4, 2), (2, 5, 2, 3, 3), (2, 1, 2), (0, 1, 1), (1, 0, 0), (1, 2, 1), 1),
    ],
)
def test_conv_transpose_mac_count(
    x: tuple[int, ...],
    w: tuple[int, ...],
    stride: tuple[int, ...],
    pad: tuple[int, ...],
    out_pad: tuple[int, ...],
    dil: tuple[int, ...],
    groups: int,
) -> None:
    """Per INPUT position: every (input position, tap) pair scatters C_in * C_out/g products."""
    rng = np.random.default_rng(0)
    with K.kernel_stats() as stats:
        K.conv_transpose(rand(rng, x), rand(rng, w), None, stride, tuple((p, p) for p in pad), out_pad, dil, groups)
    pairs = sum(1 for _ in itertools.product(*(range(n) for n in x[2:]), *(range(k) for k in w[2:])))
    assert stats.macs == x[0] * pairs * x[1] * w[1]
    assert stats.records[0].op == "conv_transpose"


@pytest.mark.parametrize("modulated", [False, True])
def test_deform_mac_count(modulated: bool) -> None:
    rng = np.random.default_rng(0)
    n, c, h, w_, co, k, groups, og = 2, 4, 6, 5, 6, 3, 2, 2
    ho, wo = h - k + 3, w_ - k + 3
    x, wt = rand(rng, (n, c, h, w_)), rand(rng, (co, c // groups, k, k))
    off = rand(rng, (n, 2 * og * k * k, ho, wo))
    mask = rand(rng, (n, og * k * k, ho, wo)) if modulated else None
    with K.kernel_stats() as stats:
        K.deform_conv2d(x, off, wt, None, 1, 1, 1, mask)
    sites = sum(1 for _ in itertools.product(range(n), range(c), range(k * k), range(ho), range(wo)))
    outputs_taps = sum(1 for _ in itertools.product(range(n), range(ho), range(wo), range(k * k)))
    assert stats.macs == outputs_taps * co * (c // groups)
    assert stats.sampling_macs == sites * (5 if modulated else 4)


# ------------------------------------------------------------------ workspace


@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "auto"])
def test_workspace_stays_within_budget(algorithm: Any) -> None:
    """A 3-D conv whose full im2col would need ~170 MiB runs within an 8 MiB budget."""
    budget = 8 << 20
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 12, 48, 48), dtype=np.float32)
    w = rng.standard_normal((16, 16, 3, 3, 3), dtype=np.float32)
    K.release_workspace()
    with K.workspace_budget(budget):
        plan = K.plan_conv(x.shape, w.shape, 1, 1, 1, 1, algorithm=algorithm)
        assert plan.workspace_bytes <= budget
        tracemalloc.start()
        y = K.conv(x, w, None, 1, 1, 1, algorithm=algorithm)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak - y.nbytes <= budget + (1 << 20)
    ref = F.conv3d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    assert_f32(y, ref, 16 * 27, x, w)


def test_reported_workspace_matches_plans() -> None:
    """Kernel records carry the planned scratch size (what the runner reports before running)."""
    rng = np.random.default_rng(0)
    x, w = rand(rng, (1, 8, 12, 12), np.float32), rand(rng, (8, 8, 3, 3), np.float32)
    off = rand(rng, (1, 18, 12, 12), np.float32)
    with K.kernel_stats() as stats:
        K.conv(x, w, None, 1, 1)
        K.conv_transpose(x, w, None, 2, 1)
        K.deform_conv2d(x, off, w, None, 1, 1)
    planned = [
        K.plan_conv(x.shape, w.shape, 1, 1).workspace_bytes,
        K.plan_conv_transpose(x.shape, w.shape, 2, 1).workspace_bytes,
        K.deform_workspace_bytes(x.shape, off.shape, w.shape, None, 1, 1),
    ]
    assert [r.workspace_bytes for r in stats.records] == planned
    assert stats.peak_workspace_bytes == max(planned)


def test_transposed_workspace_within_budget() -> None:
    budget = 4 << 20
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 32, 48, 48), dtype=np.float32)
    w = rng.standard_normal((32, 32, 4, 4), dtype=np.float32)
    K.release_workspace()
    with K.workspace_budget(budget):
        tracemalloc.start()
        y = K.conv_transpose(x, w, None, 2, 1)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak - y.nbytes <= budget + (1 << 20)


# ------------------------------------------------------------------ pooling


@st.composite
def pool_cases(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(1, 8 if nd < 3 else 5)) for _ in range(nd))
    for n, k, p, d in zip(size, kernel, pad, dil, strict=True):
        assume(n + 2 * p >= d * (k - 1) + 1)
    return {
        "x": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size),
        "kernel": kernel,
        "stride": stride,
        "pad": pad,
        "dil": dil,
        "ceil": draw(st.booleans()),
        "cip": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=80, deadline=None)
@given(pool_cases())
def test_max_pool(case: Case) -> None:
    x = rand(np.random.default_rng(case["seed"]), case["x"], np.float32)
    y = K.max_pool(x, case["kernel"], case["stride"], [(p, p) for p in case["pad"]], case["dil"], case["ceil"])
    op = MAXP[x.ndim - 2]
    ref = op(torch.from_numpy(x), case["kernel"], case["stride"], case["pad"], case["dil"], case["ceil"]).numpy()
    np.testing.assert_array_equal(y, ref)


@settings(max_examples=80, deadline=None)
@given(pool_cases())
def test_avg_pool(case: Case) -> None:
    x = rand(np.random.default_rng(case["seed"]), case["x"], np.float32)
    y = K.avg_pool(x, case["kernel"], case["stride"], [(p, p) for p in case["pad"]], case["ceil"], case["cip"])
    op = AVGP[x.ndim - 2]
    try:
        ref = op(torch.from_numpy(x), case["kernel"], case["stride"], case["pad"], case["ceil"], case["cip"]).numpy()
    except RuntimeError:  # torch's avg_pool3d also rejects kernels larger than the unpadded input
        reject()
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6 * (1 + np.abs(ref).max()))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.data())
def test_adaptive_pools(nd: int, data: st.DataObject) -> None:
    size = tuple(data.draw(st.integers(1, 9)) for _ in range(nd))
    out = tuple(data.draw(st.integers(1, 11)) for _ in range(nd))
    x = rand(np.random.default_rng(0), (2, 3, *size), np.float32)
    t = torch.from_numpy(x)
    avg: Callable[..., torch.Tensor] = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[nd]
    mx: Callable[..., torch.Tensor] = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[nd]
    np.testing.assert_allclose(K.adaptive_avg_pool(x, out), avg(t, out).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(K.adaptive_max_pool(x, out), mx(t, out).numpy())
    np.testing.assert_allclose(K.global_avg_pool(x), avg(t, 1).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(K.global_max_pool(x), mx(t, 1).numpy())


# ------------------------------------------------------------------ other layers


def test_norms_and_linear() -> None:
    rng = np.random.default_rng(1)
    x = rand(rng, (3, 6, 5, 4))
    t = torch.from_numpy(x)
    m, v = rand(rng, (6,)), rng.uniform(0.5, 2, 6)
    w, b = rand(rng, (6,)), rand(rng, (6,))
    tt = torch.from_numpy
    assert_tight(K.batch_norm(x, m, v, w, b, 1e-3), F.batch_norm(t, tt(m), tt(v), tt(w), tt(b), eps=1e-3).numpy())
    lw, lb = rand(rng, (5, 4)), rand(rng, (5, 4))
    assert_tight(K.layer_norm(x, (5, 4), lw, lb), F.layer_norm(t, (5, 4), tt(lw), tt(lb)).numpy())
    assert_tight(K.group_norm(x, 3, w, b), F.group_norm(t, 3, tt(w), tt(b)).numpy())
    assert_tight(K.group_norm(x, 6), F.group_norm(t, 6).numpy())
    lin, lb2 = rand(rng, (7, 4)), rand(rng, (7,))
    assert_tight(K.linear(x, lin, lb2), F.linear(t, tt(lin), tt(lb2)).numpy())


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("relu", F.relu),
        ("relu6", F.relu6),
        ("leaky_relu", F.leaky_relu),
        ("sigmoid", torch.sigmoid),
        ("tanh", torch.tanh),
        ("gelu", F.gelu),
        ("silu", F.silu),
        ("swish", F.silu),
        ("hardswish", F.hardswish),
        ("hardsigmoid", F.hardsigmoid),
    ],
)
def test_activations(name: str, ref: Callable[[torch.Tensor], torch.Tensor]) -> None:
    x = np.concatenate([np.linspace(-12, 12, 2001), rand(np.random.default_rng(2), (500,)) * 4])
    got = getattr(K, name)(x)
    assert_tight(got, ref(torch.from_numpy(x)).numpy())
    x32 = x.astype(np.float32)
    got32 = getattr(K, name)(x32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref(torch.from_numpy(x32)).numpy(), rtol=0, atol=2e-6)


def test_gelu_tanh_and_softmax() -> None:
    x = rand(np.random.default_rng(3), (4, 5, 6))
    t = torch.from_numpy(x)
    assert_tight(K.gelu(x, "tanh"), F.gelu(t, approximate="tanh").numpy())
    for axis in (0, 1, 2):
        assert_tight(K.softmax(x, axis), F.softmax(t, axis).numpy())


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 3),
    st.data(),
    st.booleans(),
    st.booleans(),
)
def test_upsample(nd: int, data: st.DataObject, by_scale: bool, align: bool) -> None:
    size = tuple(data.draw(st.integers(1, 7)) for _ in range(nd))
    x = rand(np.random.default_rng(4), (2, 2, *size), np.float32)
    if by_scale:
        scale = tuple(data.draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])) for _ in range(nd))
        assume(all(math.floor(n * s) >= 1 for n, s in zip(size, scale, strict=True)))
        kw: Case = {"scale_factor": scale}
    else:
        kw = {"size": tuple(data.draw(st.integers(1, 12)) for _ in range(nd))}
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(K.upsample_nearest(x, **kw), F.interpolate(t, mode="nearest", **kw).numpy())
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
    ref = F.interpolate(t, mode=mode, align_corners=align, **kw).numpy()
    np.testing.assert_allclose(K.upsample_linear(x, align_corners=align, **kw), ref, rtol=0, atol=2e-6)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3))
def test_shuffles(r: int, c: int, groups: int) -> None:
    rng = np.random.default_rng(5)
    x = rand(rng, (2, c * r * r, 3, 4))
    np.testing.assert_array_equal(K.pixel_shuffle(x, r), F.pixel_shuffle(torch.from_numpy(x), r).numpy())
    z = rand(rng, (2, c, 3 * r, 2 * r))
    np.testing.assert_array_equal(K.pixel_unshuffle(z, r), F.pixel_unshuffle(torch.from_numpy(z), r).numpy())
    assert np.array_equal(K.pixel_unshuffle(K.pixel_shuffle(x, r), r), x)
    v = rand(rng, (2, c * groups, 3))
    ref = torch.from_numpy(v).reshape(2, groups, c, 3).transpose(1, 2).reshape(2, c * groups, 3).numpy()
    np.testing.assert_array_equal(K.channel_shuffle(v, groups), ref)
    x3 = rand(rng, (1, 2 * r**3, 2, 1, 2))
    y3 = K.pixel_shuffle(x3, r)
    assert y3.shape == (1, 2, 2 * r, r, 2 * r)
    assert np.array_equal(K.pixel_unshuffle(y3, r), x3)


def test_zero_pad_and_flatten() -> None:
    x = rand(np.random.default_rng(6), (2, 3, 4, 5))
    got = K.zero_pad(x, ((1, 2), (0, 3)))
    np.testing.assert_array_equal(got, F.pad(torch.from_numpy(x), (0, 3, 1, 2)).numpy())
    np.testing.assert_array_equal(K.zero_pad(x, ((-1, 2), (1, -2))), F.pad(torch.from_numpy(x), (1, -2, -1, 2)).numpy())
    assert K.flatten(x).shape == (2, 60)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "call",
    [
        lambda: K.conv(np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3))),
        lambda: K.conv(np.zeros((1, 4, 5, 5)), np.zeros((2, 2, 3, 3)), groups=3),
        lambda: K.conv(np.zeros((1, 4, 2, 2)), np.zeros((2, 4, 3, 3))),
        lambda: K.conv(np.zeros((1, 4, 5, 5)), np.zeros((2, 4, 3, 3)), np.zeros(3)),
        lambda: K.conv_transpose(np.zeros((1, 4, 5)), np.zeros((3, 2, 3))),
        lambda: K.deform_conv2d(np.zeros((1, 2, 5, 5)), np.zeros((1, 17, 3, 3)), np.zeros((2, 2, 3, 3))),
        lambda: K.max_pool(np.zeros((1, 2, 2)), 5),
        lambda: K.group_norm(np.zeros((1, 6, 2)), 4),
        lambda: K.pixel_shuffle(np.zeros((1, 3, 2, 2)), 2),
        lambda: K.linear(np.zeros((2, 3)), np.zeros((4, 5))),
    ],
)
def test_inconsistent_shapes_raise_value_error(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------------ threads


def _with_threads(count: int, fn: Callable[[], np.ndarray]) -> np.ndarray:
    from convcalc.execute import parallel

    with parallel.using(count):
        return fn()



def _packed_rowsum(x_shape: tuple[int, ...]) -> np.ndarray | None:
    """Rowsum weights packed once (``pack_conv``) for the grouped threads case (split by samples)."""
    w = np.linspace(-1, 1, 12 * 3 * 9, dtype=np.float32).reshape(12, 3, 3, 3)
    plan = K.plan_conv(x_shape, w.shape, 1, 1, 1, 2, algorithm="rowsum")
    return K.pack_conv(w, plan)


THREADED = {
    "im2col batch 4": lambda x4, x1: K.conv(x4, np.ones((16, 6, 3, 3), np.float32) * 0.1, np.arange(16, dtype=np.float32), 2, 1),
    "stride 1 batch 4": lambda x4, x1: K.conv(x4, np.full((16, 6, 3, 3), 0.05, np.float32), None, 1, 1),
    "depthwise taps batch 1": lambda x4, x1: K.conv(x1, np.linspace(-1, 1, 96 * 9, dtype=np.float32).reshape(96, 1, 3, 3), None, 2, 1, 1, 48),
    "grouped rowsum batch 4": lambda x4, x1: K.conv(
        x4,
        np.linspace(-1, 1, 12 * 3 * 9, dtype=np.float32).reshape(12, 3, 3, 3),
        None,
        1,
        1,
        1,
        2,
        algorithm="rowsum",
        packed=_packed_rowsum(x4.shape),
    ),
    "winograd batch 1": lambda x4, x1: K.conv(x1[:, :32], np.linspace(-1, 1, 32 * 32 * 9, dtype=np.float32).reshape(32, 32, 3, 3), None, 1, 1),
    "im2col batch 1": lambda x4, x1: K.conv(x1, np.linspace(-1, 1, 32 * 48 * 9, dtype=np.float32).reshape(32, 48, 3, 3), None, 2, 1),
    "batch_norm": lambda x4, x1: K.batch_norm(x4, np.zeros(6, np.float32), np.ones(6, np.float32), np.full(6, 2, np.float32)),
    "col2im batch 4": lambda x4, x1: K.conv_transpose(x4, np.linspace(-1, 1, 6 * 16 * 16, dtype=np.float32).reshape(6, 16, 4, 4), None, 2, 1),
    "relu": lambda x4, x1: K.relu(x1),
    "relu6": lambda x4, x1: K.relu6(x4 * 10),
}


BLAS_THREADED = {"winograd batch 1", "im2col batch 1"}
"""A single sample's GEMM paths are not split by the pool (the BLAS threads them)."""


@pytest.mark.parametrize("name", list(THREADED))
def test_two_threads_compute_what_torch_does(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work split among two threads (samples, channels) gives torch's answer, as one thread
    does; the pool really ran two parts where it splits (the size threshold is lowered so these
    small arrays split), and none for a single sample's GEMM paths."""
    from convcalc.execute import conv as conv_module
    from convcalc.execute import parallel

    rng = np.random.default_rng(5)
    x4 = rng.standard_normal((4, 6, 40, 70), dtype=np.float32)
    x1 = rng.standard_normal((1, 48, 70, 70), dtype=np.float32)
    one = _with_threads(1, lambda: THREADED[name](x4, x1))
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1 << 12)
    monkeypatch.setattr(conv_module, "PARALLEL_MIN_MACS", 1 << 12)
    split: list[int] = []
    real_run = parallel.run
    monkeypatch.setattr(parallel, "run", lambda tasks: (split.append(len(tasks)), real_run(tasks))[1])
    two = _with_threads(2, lambda: THREADED[name](x4, x1))
    assert (max(split, default=0) >= 2) == (name not in BLAS_THREADED), split
    reference = {
        "im2col batch 4": lambda: F.conv2d(torch.from_numpy(x4), torch.full((16, 6, 3, 3), 0.1), torch.arange(16.0), 2, 1),
        "stride 1 batch 4": lambda: F.conv2d(torch.from_numpy(x4), torch.full((16, 6, 3, 3), 0.05), None, 1, 1),
        "depthwise taps batch 1": lambda: F.conv2d(
            torch.from_numpy(x1), torch.linspace(-1, 1, 96 * 9).reshape(96, 1, 3, 3), None, 2, 1, 1, 48
        ),
        "grouped rowsum batch 4": lambda: F.conv2d(
            torch.from_numpy(x4), torch.linspace(-1, 1, 12 * 3 * 9).reshape(12, 3, 3, 3), None, 1, 1, 1, 2
        ),
        "winograd batch 1": lambda: F.conv2d(
            torch.from_numpy(x1[:, :32]), torch.linspace(-1, 1, 32 * 32 * 9).reshape(32, 32, 3, 3), None, 1, 1
        ),
        "im2col batch 1": lambda: F.conv2d(torch.from_numpy(x1), torch.linspace(-1, 1, 32 * 48 * 9).reshape(32, 48, 3, 3), None, 2, 1),
        "batch_norm": lambda: F.batch_norm(torch.from_numpy(x4), torch.zeros(6), torch.ones(6), torch.full((6,), 2.0)),
        "col2im batch 4": lambda: F.conv_transpose2d(torch.from_numpy(x4), torch.linspace(-1, 1, 6 * 16 * 16).reshape(6, 16, 4, 4), None, 2, 1),
        "relu": lambda: F.relu(torch.from_numpy(x1)),
        "relu6": lambda: F.relu6(torch.from_numpy(x4 * 10)),
    }[name]().numpy()
    np.testing.assert_allclose(two, reference, rtol=0, atol=1e-4 * (1 + np.abs(reference).max()))  # float32 Winograd rounding
    np.testing.assert_allclose(two, one, rtol=1e-6, atol=1e-5)


def test_packed_winograd_weights_give_torchs_answer() -> None:
    """Weights transformed once (``pack_conv``) and passed in give what torch computes; a pack
    made for another convolution is refused."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 32, 20, 20))
    w = rng.standard_normal((32, 32, 3, 3))
    plan = K.plan_conv(x.shape, w.shape, 1, 1, dtype=np.float64)
    assert plan.path == "winograd"
    packed = K.pack_conv(w, plan)
    assert packed is not None
    y = K.conv(x, w, None, 1, 1, packed=packed)
    assert_tight(y, F.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, 1, 1).numpy())
    with pytest.raises(ValueError, match="packed"):
        K.conv(x, w[:, :16], None, 1, 1, 1, 2, packed=packed)


def test_packed_rowsum_weights_give_torchs_answer() -> None:
    """Grouped (and depthwise-multiplier) weights re-arranged once for the rowsum path
    (``pack_conv``) give torch's answer, as the per-call re-arrangement does; a pack for another
    grouping is refused."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 32, 15, 11))
    w = rng.standard_normal((32, 8, 3, 3))
    plan = K.plan_conv(x.shape, w.shape, 1, 1, 1, 4, dtype=np.float64)
    assert plan.path == "rowsum"
    packed = K.pack_conv(w, plan)
    assert packed is not None and packed.shape == (4, 8 * 3, 8 * 3)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, 1, 1, 1, 4).numpy()
    assert_tight(K.conv(x, w, None, 1, 1, 1, 4, packed=packed), want)
    assert_tight(K.conv(x, w, None, 1, 1, 1, 4), want)
    with pytest.raises(ValueError, match="packed"):
        K.conv(x, w[:, :4], None, 1, 1, 1, 8, packed=packed)
    wm, bm = rng.standard_normal((96, 1, 3, 3)), rng.standard_normal(96)  # depthwise, multiplier 3
    plan_m = K.plan_conv(x.shape, wm.shape, 1, 1, 1, 32, dtype=np.float64)
    packed_m = K.pack_conv(wm, plan_m)
    assert plan_m.path == "rowsum" and packed_m is not None and packed_m.shape == (32, 3 * 3, 3)
    want_m = F.conv2d(torch.from_numpy(x), torch.from_numpy(wm), torch.from_numpy(bm), 1, 1, 1, 32).numpy()
    assert_tight(K.conv(x, wm, bm, 1, 1, 1, 32, packed=packed_m), want_m)


@pytest.mark.parametrize("gate_first", [True, False])
def test_multiply_broadcasts_a_gate_in_either_order(gate_first: bool) -> None:
    """A squeeze-and-excitation gate ``N x C x 1 x 1`` times ``N x C x H x W`` is torch's
    broadcasting product whichever input comes first (the spec's merge lists the gate first;
    this crashed ``convcalc run specs/efficientnet_b0.yaml``)."""
    from convcalc.execute import layers

    rng = np.random.default_rng(11)
    x, gate = rng.standard_normal((2, 5, 4, 3)), rng.standard_normal((2, 5, 1, 1))
    inputs = [gate, x] if gate_first else [x, gate]
    got = layers.multiply(inputs)
    assert_tight(got, (torch.from_numpy(inputs[0]) * torch.from_numpy(inputs[1])).numpy())
    assert not np.shares_memory(got, x) and not np.shares_memory(got, gate)
