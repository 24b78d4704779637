"""Padding modes and forms: valid, same, full, causal, ints, per-axis values, (before, after) pairs.

References:
* Keras ``conv_utils.conv_output_length`` / ``deconv_output_length`` (restated below, TF/Keras source):
  conv: valid ``ceil((i - k_eff + 1)/s)``, same/causal ``ceil(i/s)``, full ``ceil((i + k_eff - 1)/s)``;
  transposed with ``output_padding=None``: valid ``i·s + max(k_eff - s, 0)``, same ``i·s``;
  with ``output_padding`` set: ``(i-1)·s + k_eff - 2·pad + output_padding`` with pad ``k_eff // 2``
  (same) or 0 (valid).
* torch executes explicit (before, after) padding with ``ConstantPad`` + a padding-free conv.
"""

from __future__ import annotations

from fractions import Fraction

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


def convcalc(kind: str, shape: tuple[int, ...], **fields: object) -> dict[str, object]:
    return layer_to_dict(evaluate_layer(parse_layer({"type": kind, **fields}), shape))


def keras_conv_length(i: int, k: int, padding: str, s: int, d: int) -> int:
    k_eff = k + (k - 1) * (d - 1)
    before_stride = {"same": i, "causal": i, "valid": i - k_eff + 1, "full": i + k_eff - 1}[padding]
    return (before_stride + s - 1) // s  # ceil


def keras_deconv_length(i: int, k: int, padding: str, output_padding: int | None, s: int, d: int) -> int:
    k_eff = k + (k - 1) * (d - 1)
    if output_padding is None:
        return i * s + max(k_eff - s, 0) if padding == "valid" else i * s
    pad = k_eff // 2 if padding == "same" else 0
    return (i - 1) * s + k_eff - 2 * pad + output_padding


def torch_padded_shape(rank: int, shape: tuple[int, ...], kernel, stride, dilation, pairs) -> tuple[int, ...]:
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[rank](shape[0], 1, kernel, stride=stride, dilation=dilation)
    pad = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}[rank](tuple(v for p in reversed(pairs) for v in p), 0.0)
    with torch.no_grad():
        return tuple(conv(pad(torch.zeros(1, *shape))).shape[2:])


# --------------------------------------------------------------------------------------------
# Convolution padding modes
# --------------------------------------------------------------------------------------------


@needs_torch
@settings(max_examples=300)
@given(
    rank=st.integers(1, 3),
    mode=st.sampled_from(["valid", "same", "full"]),
    data=st.data(),
)
def test_conv_modes_follow_keras_and_torch(rank, mode, data):
    size = data.draw(st.lists(st.integers(1, 12), min_size=rank, max_size=rank))
    kernel = data.draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
    stride = data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    dilation = data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    want = [keras_conv_length(i, k, mode, s, d) for i, k, s, d in zip(size, kernel, stride, dilation, strict=True)]
    shape = (2, *size)
    fields = {"out_channels": 1, "kernel_size": kernel, "stride": stride, "dilation": dilation, "padding": mode}
    if min(want) < 1:  # 'valid' with a kernel larger than the input
        with pytest.raises(ConvcalcError):
            convcalc(f"conv{rank}d", shape, **fields)
        return
    ours = convcalc(f"conv{rank}d", shape, **fields)
    assert ours["output_shape"] == [1, *want]
    if mode == "full":  # d·(k-1) on both sides (Dumoulin & Visin §2.2.3), executed by torch
        pairs = [(d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation, strict=True)]
        assert list(torch_padded_shape(rank, shape, kernel, stride, dilation, pairs)) == want
    if mode == "valid":
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[rank](2, 1, kernel, stride=stride, dilation=dilation, padding="valid")
        with torch.no_grad():
            assert list(conv(torch.zeros(1, *shape)).shape[2:]) == want


@needs_torch
@pytest.mark.parametrize(
    ("size", "k", "s", "d", "pair", "out"),
    [
        pytest.param(224, 7, 2, 1, (2, 3), 112, id="resnet-stem-224-k7-s2"),
        pytest.param(5, 3, 1, 1, (1, 1), 5, id="k3-s1-symmetric"),
        pytest.param(6, 4, 1, 1, (1, 2), 6, id="even-kernel-odd-unit-at-end"),
        pytest.param(5, 3, 2, 1, (1, 1), 3, id="k3-s2-odd-input"),
        pytest.param(6, 3, 2, 1, (0, 1), 3, id="k3-s2-even-input-odd-unit-at-end"),
        pytest.param(7, 3, 1, 2, (2, 2), 7, id="dilated-k3-d2"),
        pytest.param(5, 1, 3, 1, (0, 0), 2, id="kernel-smaller-than-stride-no-padding"),
    ],
)
def test_same_padding_pair_is_shown(run_cli, cli_json, size, k, s, d, pair, out):
    """TF 'same': total = max((out-1)·s + d(k-1) + 1 - i, 0), before = total // 2 (odd unit at the end).
    The chosen pair is shown (table and JSON notes) and executed by torch."""
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    assert pair == (total // 2, total - total // 2)
    assert out == -(-size // s)
    args = ["shape", "conv1d", "--in", f"1x{size}", "-o", "1", "-k", k, "-s", s, "-d", d, "-p", "same"]
    data = cli_json(args)
    assert data["output_shape"] == [1, out]
    assert any(f"L: {pair[0]}+{pair[1]}" in note for note in data["notes"]), data["notes"]
    table = run_cli(args)  # the text table shows the pair too
    assert f"L: {pair[0]}+{pair[1]}" in table.stdout
    assert torch_padded_shape(1, (1, size), (k,), (s,), (d,), [pair]) == (out,)
    pytorch_note = [n for n in data["notes"] if "PyTorch rejects padding='same'" in n]
    assert len(pytorch_note) == (1 if s > 1 else 0)


def test_same_padding_is_per_axis(cli_json):
    data = cli_json(["shape", "conv2d", "--in", "1x6x7", "-o", "1", "-k", "4x3", "-s", "1x2", "-p", "same"])
    assert data["output_shape"] == [1, 6, 4]
    assert any("H: 1+2, W: 1+1" in note for note in data["notes"]), data["notes"]


@pytest.mark.parametrize(
    "kind",
    ["separable2d", "depthwise2d", "spatial_separable2d", "flattened2d", "shuffle_grouped2d"],
)
def test_same_keeps_the_size_for_2d_types(cli_json, kind):
    args = ["shape", kind, "--in", "4x9x10", "-k", "3x5", "-p", "same"]
    if kind != "depthwise2d":
        args += ["-o", "8"]
    data = cli_json(args)
    assert data["output_shape"][1:] == [9, 10]


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_same_keeps_the_size_for_p3d_and_lets_branches_add(cli_json, variant):
    data = cli_json(["shape", "p3d", "--in", "4x5x9x9", "-o", "4", "-k", "3", "-p", "same", "--variant", variant])
    assert data["output_shape"] == [4, 5, 9, 9]


# --------------------------------------------------------------------------------------------
# Causal (1D)
# --------------------------------------------------------------------------------------------


@needs_torch
@settings(max_examples=100)
@given(size=st.integers(1, 16), k=st.integers(1, 5), s=st.integers(1, 3), d=st.integers(1, 4))
@example(size=10, k=2, s=1, d=4)  # WaveNet-style dilated causal layer
def test_causal_padding(size, k, s, d):
    """Keras/WaveNet causal: d·(k-1) before, nothing after; output t sees inputs <= t·s only."""
    ours = convcalc("conv1d", (1, size), out_channels=1, kernel_size=k, stride=s, dilation=d, padding="causal")
    assert ours["output_shape"] == [1, keras_conv_length(size, k, "causal", s, d)]
    assert ours["output_shape"][1:] == list(torch_padded_shape(1, (1, size), (k,), (s,), (d,), [(d * (k - 1), 0)]))
    (axis,) = ours["receptive_field"]
    assert axis["size"] == d * (k - 1) + 1
    # the first output's field ends exactly at input pixel 0: centre + (size - 1)/2 == 0
    assert Fraction(axis["start"]) + Fraction(axis["size"] - 1, 2) == 0  # fractions come as exact "a/b" strings


# --------------------------------------------------------------------------------------------
# The same padding written in every accepted form
# --------------------------------------------------------------------------------------------

SAME_PADDING = [
    pytest.param(["-p", "1"], id="flag-int"),
    pytest.param(["-p", "1x1"], id="flag-per-axis"),
    pytest.param(["-p", "1,1"], id="flag-comma"),
    pytest.param(["-p", "1:1x1:1"], id="flag-pairs"),
    pytest.param(["--set", "padding=1"], id="set"),
]


@pytest.mark.parametrize("flags", SAME_PADDING)
def test_padding_forms_agree(cli_json, flags):
    data = cli_json(["layer", "conv2d", "--in", "3x8x8", "-o", "4", "-k", "3", *flags])
    assert data["output_shape"] == [4, 8, 8]


@pytest.mark.parametrize(
    "yaml_padding",
    ["1", "[1, 1]", "[[1, 1], [1, 1]]", "'1:1x1:1'", "'1x1'"],
)
def test_padding_forms_agree_in_yaml(cli_json, tmp_path, yaml_padding):
    spec = tmp_path / "layer.yaml"
    spec.write_text(f"type: conv2d\ninput: 3x8x8\nout_channels: 4\nkernel_size: 3\npadding: {yaml_padding}\n")
    assert cli_json(["layer", "--spec", str(spec)])["output_shape"] == [4, 8, 8]


@needs_torch
def test_asymmetric_pairs_flags_and_yaml_agree_with_torch(cli_json, tmp_path):
    pairs = [(0, 1), (2, 0)]
    spec = tmp_path / "layer.yaml"
    spec.write_text("type: conv2d\ninput: 3x7x7\nout_channels: 4\nkernel_size: 3\nstride: 2\npadding: [[0, 1], [2, 0]]\n")
    from_yaml = cli_json(["layer", "--spec", str(spec)])
    from_flags = cli_json(["layer", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "3", "-s", "2", "-p", "0:1x2:0"])
    want = torch_padded_shape(2, (3, 7, 7), (3, 3), (2, 2), (1, 1), pairs)
    assert (
        from_yaml["output_shape"][1:]
        == from_flags["output_shape"][1:]
        == list(want)
        == [(7 + 1 - 3) // 2 + 1, (7 + 2 - 3) // 2 + 1]
    )
    assert from_yaml["macs"] == from_flags["macs"]


def test_padding_mode_is_case_insensitive(cli_json):
    assert cli_json(["shape", "conv2d", "--in", "3x9x9", "-o", "1", "-k", "3", "-p", "SAME"])["output_shape"] == [1, 9, 9]


# --------------------------------------------------------------------------------------------
# Transposed convolution: Keras Conv*DTranspose 'same' / 'valid', output_padding None vs set
# --------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    i=st.integers(1, 10),
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    d=st.integers(1, 3),
    mode=st.sampled_from(["same", "valid"]),
    op=st.none() | st.integers(0, 3),
)
@example(i=2, k=3, s=2, d=1, mode="valid", op=None)  # seed: 2x2 -> 5x5
@example(i=4, k=3, s=2, d=1, mode="same", op=None)  # Keras 'same' doubles: 8
@example(i=4, k=3, s=2, d=1, mode="same", op=0)  # ... but with output_padding=0 it gives 7
@example(i=3, k=1, s=3, d=1, mode="valid", op=None)  # kernel smaller than the stride
@example(i=1, k=2, s=1, d=1, mode="same", op=0)  # crop k_eff//2 = 1 per side: output 0, refused
def test_transposed_modes_follow_keras(i, k, s, d, mode, op):
    fields: dict[str, object] = {"out_channels": 1, "kernel_size": k, "stride": s, "dilation": d, "padding": mode}
    if op is not None:
        fields["output_padding"] = op
    want = keras_deconv_length(i, k, mode, op, s, d)
    if (op is not None and op >= max(s, d)) or want < 1:
        # PyTorch's rule (output_padding < max(stride, dilation)) and a positive size; Keras is stricter (< stride)
        with pytest.raises(ConvcalcError):
            convcalc("conv_transpose1d", (1, i), **fields)
        return
    ours = convcalc("conv_transpose1d", (1, i), **fields)
    assert ours["output_shape"] == [1, want]
    note = " ".join(ours["notes"])
    # the output says which Keras formula applied (they differ: 4 -> 8 with None, 4 -> 7 with 0)
    assert ("with output_padding=None: out =" in note) == (op is None), note
    assert ("with output_padding set" in note) == (op is not None), note
    assert ours["macs"] == i * k  # per input position, whatever the crop


@pytest.mark.parametrize("mode", ["full", "causal"])
def test_transposed_refuses_full_and_causal(run_cli, mode):
    result = run_cli(["shape", "conv_transpose2d", "--in", "1x4x4", "-o", "1", "-k", "3", "-p", mode])
    assert result.code == 2
    assert f"'{mode}' padding does not apply to a transposed convolution" in result.stderr
    assert "'same' or 'valid'" in result.stderr
