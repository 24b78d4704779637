"""``training_only`` items (auxiliary heads): params count in both modes, work only in ``train`` mode.

Expected values are written as the arithmetic they count: a 3x3 conv from 4 to 8 channels on an
8x8 map has ``8·4·9 + 8`` params and ``8·8·8·4·9`` MACs (8x8 outputs, 8 filters of 4·9 taps).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from convcalc.network.evaluate import evaluate_network
from convcalc.network.result import NetResult
from convcalc.network.spec import parse_network
from convcalc.parse.yaml import load_text
from convcalc.render.network import net_to_dict, render_csv, render_markdown, render_table

SPEC = """
name: aux_demo
input: 4x8x8
define:
  head:
    params: {}
    layers:
      - {type: conv2d, name: conv, out_channels: 8, kernel_size: 3, padding: 1}
      - {type: global_avgpool, name: pool, keepdims: false}
      - {type: linear, name: fc, out_features: 10}
layers:
  - {type: conv2d, name: stem, out_channels: 4, kernel_size: 1}
  - {type: head, name: aux, training_only: true}
  - {type: conv2d, name: body, input: stem, out_channels: 4, kernel_size: 3, padding: 1}
"""
STEM = (4 * 4 + 4, 8 * 8 * 4 * 4)  # (params, MACs) of a 1x1 conv 4 -> 4 on 8x8
BODY = (4 * 4 * 9 + 4, 8 * 8 * 4 * 4 * 9)
AUX_CONV = (8 * 4 * 9 + 8, 8 * 8 * 8 * 4 * 9)
AUX_FC = (10 * 8 + 10, 10 * 8)


def net(text: str = SPEC, mode: str = "eval") -> NetResult:
    return evaluate_network(parse_network(load_text(text, "aux.yaml"), "aux.yaml"), mode=mode)


def test_eval_counts_the_params_but_not_the_work() -> None:
    result = net()
    totals = result.totals()
    assert totals.params == STEM[0] + BODY[0] + AUX_CONV[0] + AUX_FC[0]
    assert totals.macs == STEM[1] + BODY[1]
    aux = [r for r in result.rows if r.training_only]
    assert [r.name for r in aux] == ["aux.conv", "aux.pool", "aux.fc"]
    assert all(r.macs == r.other_ops == r.bias_adds == r.moved == 0 for r in aux)
    assert totals.activations == 2 * 4 * 8 * 8  # stem and body only
    assert result.output_shape == (4, 8, 8), "the main path goes on from the stem"


def test_train_mode_counts_everything() -> None:
    totals = net(mode="train").totals()
    assert totals.params == STEM[0] + BODY[0] + AUX_CONV[0] + AUX_FC[0]
    assert totals.macs == STEM[1] + BODY[1] + AUX_CONV[1] + AUX_FC[1]
    assert totals.activations == 2 * 4 * 8 * 8 + 8 * 8 * 8 + 8 + 10


def test_every_format_marks_the_rows() -> None:
    result = net()
    layers = {d["name"]: d for d in net_to_dict(result)["layers"]}  # type: ignore[attr-defined]
    assert layers["aux.conv"]["training_only"] is True and "training_only" not in layers["stem"]
    assert (layers["aux.conv"]["macs"], layers["aux.conv"]["params"]) == (0, AUX_CONV[0])
    assert net_to_dict(result)["mode"] == "eval"
    table = render_table(result)
    assert "aux.conv [train]" in table and "[train] training only:" in table and "mode: eval" in table
    assert "| aux.fc [train] |" in render_markdown(result)
    header, *lines = render_csv(result).splitlines()
    column = header.split(",").index("training_only")
    assert {line.split(",")[0]: line.split(",")[column] for line in lines} == {
        "stem": "false", "aux.conv": "true", "aux.pool": "true", "aux.fc": "true", "body": "false",
    }  # fmt: skip


def test_flag_on_blocks_and_repeats() -> None:
    text = SPEC.replace(
        "  - {type: head, name: aux, training_only: true}\n",
        "  - name: aux\n    training_only: $train\n    layers:\n"
        "      - {type: conv2d, out_channels: 4, kernel_size: 1, repeat: 2}\n",
    ).replace("layers:\n  - {type: conv2d, name: stem", "variables: {train: true}\nlayers:\n  - {type: conv2d, name: stem")
    result = net(text)
    assert [r.name for r in result.rows if r.training_only] == ["aux.0.0", "aux.0.1"]
    assert result.totals().macs == STEM[1] + BODY[1]


def test_a_flag_that_is_not_a_boolean_is_an_error(run_cli: Callable[..., object], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("training_only: true", "training_only: 3"))
    result = run_cli(["net", str(path)])
    assert result.code == 2  # type: ignore[attr-defined]
    assert "'training_only' must be true or false, got 3" in result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]


def test_cli_mode_on_net_and_check(run_cli: Callable[..., object], tmp_path: Path) -> None:
    path = tmp_path / "aux.yaml"
    path.write_text(SPEC + f"expect: {{macs: {STEM[1] + BODY[1]}}}\n")
    for mode, macs, code in (("eval", STEM[1] + BODY[1], 0), ("train", STEM[1] + BODY[1] + AUX_CONV[1] + AUX_FC[1], 1)):
        doc = json.loads(run_cli(["net", str(path), "--mode", mode, "-f", "json"]).stdout)  # type: ignore[attr-defined]
        assert (doc["mode"], doc["totals"]["macs"]) == (mode, macs)
        assert run_cli(["check", str(path), "--mode", mode]).code == code  # type: ignore[attr-defined]
    assert run_cli(["net", str(path), "--mode", "infer"]).code == 2  # type: ignore[attr-defined]


def test_run_skips_training_only_rows_in_eval_mode(run_cli: Callable[..., object], tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    path = tmp_path / "aux.yaml"
    path.write_text(SPEC)
    for mode, names in (("eval", ["stem", "body"]), ("train", ["stem", "aux.conv", "aux.pool", "aux.fc", "body"])):
        result = run_cli(["run", str(path), "--mode", mode, "--repeats", "1", "--warmup", "0", "-f", "json"])
        assert result.code == 0, result.stderr  # type: ignore[attr-defined]
        doc = json.loads(result.stdout)  # type: ignore[attr-defined]
        assert [row["name"] for row in doc["layers"]] == names
