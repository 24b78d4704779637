"""`convcalc solve`: the inverse questions, with every answer executed by torch.

* keep-size (no ``--out``): out = ceil(i/s); the TF 'same' pair and every listed symmetric padding
  really give that size in torch, and no other symmetric padding in [0, d(k-1)] does.
* ``--out``: every listed (kernel, stride, padding, dilation[, output_padding]) maps i to o in torch
  (Conv1d / ConvTranspose1d); with kernel and dilation fixed, the listed set equals an exhaustive
  torch search over the same bounds (stride <= 8, padding <= d(k-1), output_padding < max(s, d)).
"""

from __future__ import annotations

import functools

import pytest

try:
    import torch
    from torch import nn
except ImportError:  # the pure tests still run; the torch oracles below are skipped (needs_torch)
    nn = torch = None  # type: ignore[assignment]

from hypothesis import example, given, settings
from hypothesis import strategies as st

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch (the reference oracle)")

MAX_STRIDE = 8


@functools.cache
def torch_conv_size(i: int, k: int, s: int, before: int, after: int, d: int) -> int | None:
    conv = nn.Conv1d(1, 1, k, stride=s, dilation=d, bias=False)
    try:
        with torch.no_grad():
            return conv(nn.functional.pad(torch.zeros(1, 1, i), (before, after))).shape[-1]
    except RuntimeError:
        return None


@functools.cache
def torch_transposed_size(i: int, k: int, s: int, p: int, op: int, d: int) -> int | None:
    try:
        conv = nn.ConvTranspose1d(1, 1, k, stride=s, padding=p, output_padding=op, dilation=d, bias=False)
        with torch.no_grad():
            size = conv(torch.zeros(1, 1, i)).shape[-1]
    except RuntimeError:
        return None
    return size if size > 0 else None


def solve(cli_json, *args: object) -> list[dict[str, object]]:
    data = cli_json(["solve", *map(str, args), "--limit", "100000"])
    assert isinstance(data, list)
    return data


# --------------------------------------------------------------------------------------------
# Which padding keeps the size
# --------------------------------------------------------------------------------------------


@needs_torch
@settings(max_examples=120)
@given(i=st.integers(1, 64), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3))
@example(i=224, k=7, s=2, d=1)  # ResNet stem: TF pads 2+3, PyTorch uses p=3
@example(i=32, k=4, s=1, d=1)  # even kernel at stride 1: no symmetric padding keeps the size
@example(i=32, k=3, s=1, d=2)  # dilated: p = d·(k-1)/2 = 2
def test_keep_size(cli_json, i, k, s, d):
    (row,) = solve(cli_json, "--in", i, "-k", k, "-s", s, "-d", d)
    want = -(-i // s)
    assert (row["in"], row["kernel"], row["stride"], row["dilation"], row["out"]) == (i, k, s, d, want)
    before, after = row["same"]
    assert 0 <= after - before <= 1  # the odd unit at the end
    assert torch_conv_size(i, k, s, before, after, d) == want
    k_eff = d * (k - 1) + 1
    found = {p for p in range(k_eff) if torch_conv_size(i, k, s, p, p, d) == want}
    assert sorted(row["symmetric"]) == sorted(found)


def test_keep_size_defaults_and_axes(cli_json, run_cli):
    rows = solve(cli_json, "--in", "224x224", "-k", "7x3", "-s", "2x1")
    assert [(r["axis"], r["same"], r["symmetric"]) for r in rows] == [("H", [2, 3], [3]), ("W", [1, 1], [1])]
    # kernel defaults to 3, stride and dilation to 1
    (row,) = solve(cli_json, "--in", "10")
    assert (row["kernel"], row["stride"], row["dilation"], row["symmetric"]) == (3, 1, 1, [1])
    table = run_cli(["solve", "--in", "32", "-k", "4"])
    assert table.code == 0
    assert "none" in table.stdout  # an even kernel at stride 1 has no symmetric answer; 'same' pads 1+2
    assert "1, 2" in table.stdout


# --------------------------------------------------------------------------------------------
# Which kernel / stride / padding / dilation map i to o
# --------------------------------------------------------------------------------------------


@needs_torch
@settings(max_examples=100)
@given(i=st.integers(1, 40), o=st.integers(1, 40), k=st.integers(1, 5), d=st.integers(1, 3))
@example(i=5, o=2, k=3, d=1)  # seed: 5x5, k3, s2, p0 -> 2x2
@example(i=224, o=112, k=7, d=1)
def test_conv_solutions_map_i_to_o(cli_json, i, o, k, d):
    (row,) = solve(cli_json, "--in", i, "--out", o, "-k", k, "-d", d)
    listed = set()
    for sol in row["solutions"]:
        p_before, p_after = sol["padding"]
        assert (sol["kernel"], sol["dilation"], sol["output_padding"]) == (k, d, 0)
        assert torch_conv_size(i, k, sol["stride"], p_before, p_after, d) == o, sol
        listed.add((sol["stride"], p_before, p_after))
    k_eff = d * (k - 1) + 1
    everything = {(s, p, p) for s in range(1, MAX_STRIDE + 1) for p in range(k_eff) if torch_conv_size(i, k, s, p, p, d) == o}
    assert listed == everything


@needs_torch
@settings(max_examples=100)
@given(i=st.integers(1, 12), o=st.integers(1, 40), k=st.integers(1, 5), d=st.integers(1, 3))
@example(i=2, o=5, k=3, d=1)  # seed: 2x2 -> 5x5 (k3 s2)
@example(i=2, o=4, k=3, d=1)  # seed: 2x2 -> 4x4 (k3 s1)
def test_transposed_solutions_map_i_to_o(cli_json, i, o, k, d):
    (row,) = solve(cli_json, "--in", i, "--out", o, "-k", k, "-d", d, "--transposed")
    listed = set()
    for sol in row["solutions"]:
        p_before, p_after = sol["padding"]
        assert p_before == p_after and (sol["kernel"], sol["dilation"]) == (k, d)
        assert torch_transposed_size(i, k, sol["stride"], p_before, sol["output_padding"], d) == o, sol
        listed.add((sol["stride"], p_before, sol["output_padding"]))
    k_eff = d * (k - 1) + 1
    everything = {
        (s, p, op)
        for s in range(1, MAX_STRIDE + 1)
        for p in range(k_eff)
        for op in range(max(s, d))
        if torch_transposed_size(i, k, s, p, op, d) == o
    }
    assert listed == everything
    if (i, o, k, d) == (2, 5, 3, 1):
        assert (2, 0, 0) in listed
    if (i, o, k, d) == (2, 4, 3, 1):
        assert (1, 0, 0) in listed


@needs_torch
def test_free_kernel_search_is_verified(cli_json):
    """Nothing fixed but the sizes: every answer (kernels up to 11, dilation up to 4) is real."""
    (row,) = solve(cli_json, "--in", "17", "--out", "8")
    assert row["solutions"], "17 -> 8 has answers (e.g. k3 s2 p0)"
    for sol in row["solutions"]:
        p_before, p_after = sol["padding"]
        assert torch_conv_size(17, sol["kernel"], sol["stride"], p_before, p_after, sol["dilation"]) == 8, sol
    assert {"kernel": 3, "stride": 2, "padding": [0, 0], "dilation": 1, "output_padding": 0} in row["solutions"]


def test_per_axis_solutions(cli_json):
    rows = solve(cli_json, "--in", "5x7", "--out", "2x3", "-k", "3", "-p", "0", "-d", "1")
    assert [r["axis"] for r in rows] == ["H", "W"]
    assert [s["stride"] for s in rows[0]["solutions"]] == [2]  # floor((5-3)/2)+1 = 2
    assert [s["stride"] for s in rows[1]["solutions"]] == [2]  # floor((7-3)/2)+1 = 3
    # with the dilation free, W also maps 7 -> 3 with d = 2, s = 1: floor((7-5)/1)+1 = 3
    rows = solve(cli_json, "--in", "5x7", "--out", "2x3", "-k", "3", "-p", "0")
    assert {(s["stride"], s["dilation"]) for s in rows[1]["solutions"]} == {(2, 1), (1, 2)}


@needs_torch
def test_transposed_output_padding_can_rescue_a_size_below_1(cli_json):
    """1 -> 1 with k2 s2 p1: (1-1)·2 - 2 + 2 = 0 without output_padding; output_padding 1 (< s) gives 1.
    torch accepts it, so solve must list it (it used to skip every case whose op = 0 size was < 1)."""
    assert torch_transposed_size(1, 2, 2, 1, 1, 1) == 1
    (row,) = solve(cli_json, "--in", "1", "--out", "1", "-k", "2", "-d", "1", "--transposed")
    assert {"kernel": 2, "stride": 2, "padding": [1, 1], "dilation": 1, "output_padding": 1} in row["solutions"]


def test_no_solution_is_said(run_cli, cli_json):
    (row,) = solve(cli_json, "--in", "3", "--out", "40", "-k", "3")  # a conv cannot grow 3 -> 40
    assert row["solutions"] == []
    table = run_cli(["solve", "--in", "3", "--out", "40", "-k", "3"])
    assert table.code == 0
    assert "no solution" in table.stdout


def test_limit_caps_the_list(cli_json):
    data = cli_json(["solve", "--in", "64", "--out", "32", "--limit", "5"])
    assert len(data[0]["solutions"]) == 5


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--in", "0"], id="in-0"),
        pytest.param(["--in", "8", "--out", "0"], id="out-0"),
        pytest.param(["--in", "8", "--out", "4", "-k", "0"], id="kernel-0"),
        pytest.param(["--in", "8", "--out", "4", "-s", "0"], id="stride-0-was-an-internal-error"),
        pytest.param(["--in", "8", "--out", "4", "-d", "0"], id="dilation-0-listed-dilation-0-answers"),
        pytest.param(["--in", "8", "-s", "0"], id="keep-size-stride-0-silently-used-1"),
        pytest.param(["--in", "8", "--out", "4", "-p", "-1"], id="padding-negative"),
        pytest.param(["--in", "8x8", "--out", "4x4x4"], id="axes-mismatch"),
        pytest.param(["--in", "eight"], id="not-a-number"),
    ],
)
def test_solve_bad_input(run_cli, args):
    result = run_cli(["solve", *args])
    assert result.code == 2, result.stdout
    assert result.stderr.startswith("error: ") or "Usage" in result.stderr
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.output
