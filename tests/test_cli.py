"""The command line: every command in every format, flags, specs, batch, layout, --explain, JSON contract."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from fractions import Fraction

import pytest

FORMATS = ["table", "json", "csv", "markdown"]

COMMANDS = {
    "shape": ["shape", "conv2d", "--in", "3x7x7", "-o", "128", "-k", "3"],
    "params": ["params", "separable2d", "--in", "16x7x7", "-o", "32", "-k", "3", "--no-bias"],
    "flops": ["flops", "separable2d", "--in", "3x7x7", "-o", "128", "-k", "3"],
    "rf": ["rf", "conv2d", "--in", "1x9x9", "-o", "1", "-k", "3x5", "-d", "1x2"],
    "layer": ["layer", "spatial_separable2d", "--in", "1x5x5", "-o", "1", "-k", "3"],
    "types": ["types"],
    "types-one": ["types", "conv_transpose2d"],
    "compare": ["compare", "--in", "3x7x7", "-o", "128", "-k", "3"],
    "solve-keep": ["solve", "--in", "224", "-k", "7", "-s", "2"],
    "solve": ["solve", "--in", "5", "--out", "2", "-k", "3", "-p", "0"],
    "overlap-1d": ["overlap", "--in", "5", "-k", "3", "-s", "2"],
    "overlap-2d": ["overlap", "--in", "3x3", "-k", "3", "-s", "2"],
}

# what each command's output must show: a token in the text formats (table with thousands separators
# removed), and a check on the parsed JSON
MUST_SHOW = {
    "shape": ("128x5x5", lambda d: d["output_shape"] == [128, 5, 5]),
    "params": ("656", lambda d: d["params"] == 16 * 3 * 3 + 16 * 32),
    "flops": ("10275", lambda d: d["macs"] == 675 + 9600),
    "rf": ("9", lambda d: [a["size"] for a in d["receptive_field"]] == [3, 2 * 4 + 1]),
    "layer": ("72", lambda d: d["macs"] == 45 + 27),
    "types": ("conv2plus1d", lambda d: "conv2plus1d" in [t["type"] for t in d]),
    "types-one": ("output_padding", lambda d: "output_padding" in [f["name"] for f in d["fields"]]),
    "compare": ("137/1152", lambda d: Fraction(d[1]["macs"], d[0]["macs"]) == Fraction(137, 1152)),
    "solve-keep": ("112", lambda d: d[0]["out"] == 112 and d[0]["same"] == [2, 3]),
    "solve": ("5", lambda d: [s["stride"] for s in d[0]["solutions"] if s["dilation"] == 1] == [2]),
    "overlap-1d": ("1 1 2 1 2 1 2 1 2 1 1", lambda d: d["axes"][0]["counts"] == [1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 1]),
    "overlap-2d": ("1 1 2 1 2 1 1", lambda d: d["grid"][2] == [2, 2, 4, 2, 4, 2, 2]),
}


def no_floats(value: object, path: str = "$") -> None:
    """Exact arithmetic: JSON numbers are ints (fractions are 'a/b' strings), never floats."""
    assert not isinstance(value, float), f"{path} is a float: {value!r}"
    if isinstance(value, dict):
        for key, item in value.items():
            no_floats(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            no_floats(item, f"{path}[{i}]")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_in_every_format(run_cli, command, fmt):
    result = run_cli([*COMMANDS[command], "--format", fmt])
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert out.strip()
    token, check = MUST_SHOW[command]
    if fmt == "json":
        data = json.loads(out)
        no_floats(data)
        assert check(data), out
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert len(rows) >= 2
        assert len({len(r) for r in rows}) == 1, "every CSV row has the header's width"
        assert any(token in cell for row in rows for cell in row), out
    elif fmt == "markdown":
        table = [ln for ln in out.splitlines() if ln.startswith("|")]
        assert len(table) >= 3 and set(table[1]) <= set("|-: ")
        assert len({ln.count("|") for ln in table}) == 1
        assert token in out
    else:
        assert any(line and set(line.replace(" ", "")) == {"-"} for line in out.splitlines()), "a header rule"
        assert token in out.replace(",", ""), out


def test_csv_and_markdown_have_exact_integers(run_cli):
    """Only the text table scales to K/M/G; CSV and Markdown keep exact integers."""
    args = ["flops", "conv2d", "--in", "3x12x12", "-o", "256", "-k", "5"]
    table = run_cli(args).stdout
    assert "1,228,800" in table
    assert "(1.23 M)" in table
    rows = list(csv.DictReader(io.StringIO(run_cli([*args, "-f", "csv"]).stdout)))
    assert rows[0]["MACs"] == str(256 * 3 * 5 * 5 * 8 * 8)
    assert rows[0]["FLOPs"] == str(2 * 256 * 3 * 5 * 5 * 8 * 8)
    assert f"| {256 * 3 * 5 * 5 * 8 * 8} |" in run_cli([*args, "-f", "markdown"]).stdout


# --------------------------------------------------------------------------------------------
# The JSON contract, for every type
# --------------------------------------------------------------------------------------------

CANONICAL_TYPES = {
    # type -> (input, extra flags)
    "conv1d": ("4x16", ["-o", "8", "-k", "3"]),
    "conv2d": ("4x9x9", ["-o", "8", "-k", "3"]),
    "conv3d": ("4x5x9x9", ["-o", "8", "-k", "3"]),
    "conv_transpose1d": ("4x6", ["-o", "8", "-k", "3", "-s", "2"]),
    "conv_transpose2d": ("4x6x6", ["-o", "8", "-k", "3", "-s", "2"]),
    "conv_transpose3d": ("4x3x6x6", ["-o", "8", "-k", "3", "-s", "2"]),
    "depthwise1d": ("4x16", ["-k", "3", "--depth-multiplier", "2"]),
    "depthwise2d": ("4x9x9", ["-k", "3"]),
    "depthwise3d": ("4x5x9x9", ["-k", "3"]),
    "separable1d": ("4x16", ["-o", "8", "-k", "3"]),
    "separable2d": ("4x9x9", ["-o", "8", "-k", "3"]),
    "separable3d": ("4x5x9x9", ["-o", "8", "-k", "3"]),
    "pointwise": ("4x9x9", ["-o", "8", "-g", "2"]),
    "spatial_separable2d": ("4x9x9", ["-o", "8", "-k", "3"]),
    "spatial_separable3d": ("4x5x9x9", ["-o", "8", "-k", "3"]),
    "flattened2d": ("4x9x9", ["-o", "8", "-k", "3"]),
    "flattened3d": ("4x5x9x9", ["-o", "8", "-k", "3"]),
    "shuffle_grouped2d": ("4x9x9", ["-o", "8", "-k", "3", "-g", "2"]),
    "channel_shuffle": ("4x9x9", ["-g", "2"]),
    "p3d": ("4x5x9x9", ["-o", "4", "-k", "3", "-p", "1", "--variant", "C"]),
    "conv2plus1d": ("4x5x9x9", ["-o", "8", "-k", "3"]),
    "deformable2d": ("4x9x9", ["-o", "8", "-k", "3", "--set", "version=2"]),
}
CONTRACT = (
    "type",
    "input_shape",
    "output_shape",
    "params",
    "weights",
    "biases",
    "macs",
    "flops",
    "bias_adds",
    "activation",
    "receptive_field",
    "stages",
    "notes",
    "batch",
)


def test_types_lists_every_type_the_issue_names(cli_json):
    listed = {entry["type"]: entry for entry in cli_json(["types"])}
    assert set(CANONICAL_TYPES) <= set(listed)
    assert {"deconv2d", "conv2d_transpose"} <= set(listed["conv_transpose2d"]["aliases"])
    assert "atrous2d" in listed["conv2d"]["aliases"]
    for kind in CANONICAL_TYPES:
        assert listed[kind]["fields"] and listed[kind]["formulas"] and listed[kind]["source"], kind


@pytest.mark.parametrize("kind", list(CANONICAL_TYPES))
def test_json_contract_for_every_type(cli_json, kind):
    shape, flags = CANONICAL_TYPES[kind]
    data = cli_json(["layer", kind, "--in", shape, *flags])
    assert set(CONTRACT) <= set(data)
    no_floats(data)
    assert data["type"] == kind
    assert data["input_shape"] == [int(v) for v in shape.split("x")]
    assert all(isinstance(v, int) and v >= 1 for v in data["output_shape"])
    assert data["params"] == data["weights"] + data["biases"]
    assert data["flops"] == 2 * data["macs"]
    assert data["macs"] == sum(s["macs"] for s in data["stages"])
    assert data["params"] == sum(s["params"] for s in data["stages"])
    assert data["output_shape"] == data["stages"][-1]["output_shape"]
    assert data["activation"] == _prod(data["output_shape"])
    if kind == "deformable2d":
        assert data["receptive_field"] == "data-dependent"  # never a silent number
    else:
        assert [axis["axis"] for axis in data["receptive_field"]] == {2: ["L"], 3: ["H", "W"], 4: ["D", "H", "W"]}[
            len(data["input_shape"])
        ]


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def test_composites_report_each_stage(cli_json):
    data = cli_json(["layer", "p3d", "--in", "4x5x9x9", "-o", "4", "-k", "3", "-p", "1", "--variant", "B"])
    assert [s["name"] for s in data["stages"]] == ["spatial", "temporal", "add"]
    assert [s["inputs"] for s in data["stages"]] == [["in"], ["in"], ["spatial", "temporal"]]
    spatial, temporal, add = data["stages"]
    assert spatial["weights"] == 4 * 4 * 1 * 3 * 3  # C_in · C_out · k_h · k_w
    assert temporal["weights"] == 4 * 4 * 3 * 1 * 1  # C_in · C_out · k_t
    assert add["other_ops"] == 4 * 5 * 9 * 9  # one addition per output element


# --------------------------------------------------------------------------------------------
# --explain
# --------------------------------------------------------------------------------------------


def test_explain_prints_substituted_formulas(run_cli):
    args = ["flops", "conv2d", "--in", "3x7x7", "-o", "128", "-k", "3"]
    plain = run_cli(args).stdout
    explained = run_cli([*args, "--explain"]).stdout
    assert "⌊(7 + 0 + 0 - 1·(3-1) - 1)/1⌋ + 1 = 5" in explained
    assert "= 25 × 128 × 3 × 9 = 86,400" in explained  # out positions × C_out × C_in/g × k_h·k_w
    assert "weights = C_out × C_in/g × k_h·k_w = 128 × 3 × 9 = 3,456" in explained
    assert "86,400" in plain and "⌊" not in plain and "×" not in plain


def test_explain_transposed_counts_input_positions(run_cli):
    out = run_cli(["flops", "deconv2d", "--in", "1x2x2", "-o", "1", "-k", "3", "-s", "2", "--explain"]).stdout
    assert "H_in·W_in" in out
    assert "= 4 × 1 × 1 × 9 = 36" in out
    assert "(2-1)·2 - 0 - 0 + 1·(3-1) + 0 + 1 = 5" in out


def test_explain_covers_every_stage(run_cli):
    out = run_cli(["layer", "separable2d", "--in", "3x7x7", "-o", "128", "-k", "3", "--explain"]).stdout
    assert "[depthwise]" in out and "[pointwise]" in out
    assert "= 25 × 3 × 1 × 9 = 675" in out
    assert "= 25 × 128 × 3 × 1 = 9,600" in out


def test_explain_in_markdown(run_cli):
    out = run_cli(["flops", "conv1d", "--in", "2x10", "-o", "4", "-k", "3", "-s", "2", "--explain", "-f", "markdown"]).stdout
    assert "⌊(10 + 0 + 0 - 1·(3-1) - 1)/2⌋ + 1 = 4" in out


# --------------------------------------------------------------------------------------------
# --batch, --layout, per-axis flags
# --------------------------------------------------------------------------------------------


def test_batch_scales_work_and_activations_not_params(cli_json, run_cli):
    args = ["layer", "separable2d", "--in", "3x7x7", "-o", "128", "-k", "3"]
    one, four = cli_json(args), cli_json([*args, "--batch", "4"])
    assert four["batch"] == 4
    for key in ("macs", "flops", "bias_adds", "activation"):
        assert four[key] == 4 * one[key], key
    for key in ("params", "weights", "biases"):
        assert four[key] == one[key], key
    assert four["output_shape"] == one["output_shape"]  # shapes stay per sample
    assert [s["macs"] for s in four["stages"]] == [4 * 675, 4 * 9600]
    assert [s["params"] for s in four["stages"]] == [s["params"] for s in one["stages"]]
    assert "batch 4" in run_cli([*args, "--batch", "4"]).stdout


def test_batch_in_compare(cli_json):
    rows = cli_json(["compare", "conv2d", "separable2d", "--in", "3x7x7", "-o", "128", "-k", "3", "--batch", "2"])
    assert [r["macs"] for r in rows] == [2 * 86_400, 2 * 10_275]
    assert [r["params"] for r in rows] == [128 * 3 * 3 * 3 + 128, 3 * 3 * 3 + 3 * 128 + 128]


def test_layout_channels_last(cli_json, run_cli):
    first = cli_json(["layer", "conv2d", "--in", "3x7x9", "-o", "8", "-k", "3"])
    last = cli_json(["layer", "conv2d", "--in", "7x9x3", "--layout", "channels_last", "-o", "8", "-k", "3"])
    assert last["input_shape"] == first["input_shape"] == [3, 7, 9]  # JSON is always channels first
    assert last["output_shape"] == first["output_shape"] == [8, 5, 7]
    assert last["macs"] == first["macs"] == 5 * 7 * 8 * 3 * 3 * 3
    table = run_cli(["layer", "conv2d", "--in", "7x9x3", "--layout", "channels_last", "-o", "8", "-k", "3"]).stdout
    assert "7x9x3 -> 5x7x8" in table  # shown as the user wrote it


def test_per_axis_flags(cli_json):
    data = cli_json(["layer", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "1x7", "-p", "0x3"])
    assert data["output_shape"] == [4, 7, 7]  # Inception-v3's 1x7 with padding (0, 3)
    assert data["weights"] == 4 * 3 * 1 * 7
    data = cli_json(["layer", "conv3d", "--in", "2x8x9x10", "-o", "2", "-k", "3x1x2", "-s", "1x2x3", "-d", "2x1x1"])
    assert data["output_shape"] == [2, (8 - 5) // 1 + 1, (9 - 1) // 2 + 1, (10 - 2) // 3 + 1]


def test_receptive_field_is_per_axis(cli_json, run_cli):
    """Not just the first axis (a bug other counters shipped)."""
    data = cli_json(["rf", "conv2d", "--in", "1x20x20", "-o", "1", "-k", "3x5", "-d", "1x2", "-s", "2x1"])
    assert [(a["axis"], a["size"], a["stride"]) for a in data["receptive_field"]] == [("H", 3, 2), ("W", 2 * 4 + 1, 1)]
    table = run_cli(["rf", "conv2d", "--in", "1x20x20", "-o", "1", "-k", "3x5", "-d", "1x2", "-s", "2x1"]).stdout
    assert "3x9 /2x1" in run_cli(["shape", "conv2d", "--in", "1x20x20", "-o", "1", "-k", "3x5", "-d", "1x2", "-s", "2x1"]).stdout
    assert len([ln for ln in table.splitlines() if ln.startswith("conv ")]) == 2  # one row per axis


def test_transposed_receptive_field_is_exact_fractions(cli_json):
    data = cli_json(["rf", "deconv1d", "--in", "1x4", "-o", "1", "-k", "3", "-s", "2"])
    (axis,) = data["receptive_field"]
    assert axis["stride"] == "1/2"  # fractionally strided: the jump is 1/s input pixels, no sentinel, no float


# --------------------------------------------------------------------------------------------
# --spec files and stdin
# --------------------------------------------------------------------------------------------

SPEC = """\
type: conv2d
name: stem
input: 3x32x32
out_channels: 16
kernel_size: [3, 5]
stride: 2
padding: [[1, 1], [2, 2]]
dilation: 1
groups: 1
bias: false
"""
FLAGS = ["conv2d", "--in", "3x32x32", "-o", "16", "-k", "3x5", "-s", "2", "-p", "1x2", "-d", "1", "-g", "1", "--no-bias"]


def _strip_name(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "name"}


def test_spec_file_equals_flags(cli_json, tmp_path):
    spec = tmp_path / "layer.yaml"
    spec.write_text(SPEC)
    from_file = cli_json(["layer", "--spec", str(spec)])
    from_flags = cli_json(["layer", *FLAGS])
    assert from_file["name"] == "stem"
    assert _strip_name(from_file) == _strip_name(from_flags)
    assert from_file["output_shape"] == [16, (32 + 2 - 3) // 2 + 1, (32 + 4 - 5) // 2 + 1]
    assert from_file["biases"] == 0


def test_spec_from_stdin(cli_json, tmp_path):
    from_stdin = cli_json(["layer", "--spec", "-"], input=SPEC)
    from_flags = cli_json(["layer", *FLAGS])
    assert _strip_name(from_stdin) == _strip_name(from_flags)


def test_spec_accepts_field_aliases(cli_json):
    aliased = "type: Conv2D\ninput: 3x32x32\nfilters: 16\nk: [3, 5]\ns: 2\np: [1, 2]\nuse_bias: false\n"
    assert _strip_name(cli_json(["layer", "--spec", "-"], input=aliased)) == _strip_name(cli_json(["layer", *FLAGS]))


def test_flags_override_the_spec(cli_json, tmp_path):
    spec = tmp_path / "layer.yaml"
    spec.write_text(SPEC.replace("kernel_size: [3, 5]", "k: [3, 5]") + "batch: 2\n")
    data = cli_json(["layer", "--spec", str(spec), "-o", "8", "-k", "1", "-p", "0", "--in", "3x16x16", "--bias", "--batch", "3"])
    assert data["output_shape"] == [8, 8, 8]  # 1x1, stride 2 (from the spec) on 16x16 (from the flag)
    assert data["biases"] == 8
    assert data["batch"] == 3
    assert data["macs"] == 3 * 8 * 8 * 8 * 3


def test_spec_batch_and_layout(cli_json):
    spec = "type: conv2d\ninput: 32x32x3\nlayout: channels_last\nbatch: 5\nout_channels: 4\nkernel_size: 3\n"
    data = cli_json(["layer", "--spec", "-"], input=spec)
    assert data["input_shape"] == [3, 32, 32]
    assert data["batch"] == 5
    assert data["macs"] == 5 * 30 * 30 * 4 * 3 * 3 * 3


def test_set_reaches_any_field(cli_json):
    data = cli_json(
        ["layer", "deformable2d", "--in", "4x9x9", "-o", "8", "-k", "3", "--set", "offset_groups=2", "--set", "version=2"]
    )
    assert data["stages"][0]["output_shape"][0] == 3 * 2 * 3 * 3  # 3·G·K offset+mask channels


# --------------------------------------------------------------------------------------------
# compare, types, overlap, help, version, python -m
# --------------------------------------------------------------------------------------------


def test_compare_default_set_and_ratio_note(run_cli, cli_json):
    rows = cli_json(["compare", "--in", "3x7x7", "-o", "128", "-k", "3"])
    assert [r["type"] for r in rows][:2] == ["conv2d", "separable2d"]
    table = run_cli(["compare", "--in", "3x7x7", "-o", "128", "-k", "3"]).stdout
    assert "1/C_out + 1/prod(k) = 1/128 + 1/9 = 137/1152" in table
    assert cli_json(["compare", "--in", "2x8x9x9", "-o", "8", "-k", "3"])[0]["type"] == "conv3d"
    assert cli_json(["compare", "--in", "2x9", "-o", "8", "-k", "3"])[0]["type"] == "conv1d"


def test_types_detail(run_cli, cli_json):
    detail = cli_json(["types", "deconv2d"])  # an alias finds the canonical type
    assert detail["type"] == "conv_transpose2d"
    assert "output_padding" in [f["name"] for f in detail["fields"]]
    assert any("INPUT position" in f for f in detail["formulas"])
    text = run_cli(["types", "--formulas"]).stdout
    assert "1/C_out + 1/prod(k)" in text


def test_overlap_2d_grid_in_table(run_cli):
    out = run_cli(["overlap", "--in", "3x3", "-k", "3", "-s", "2"]).stdout
    assert "UNEVEN (checkerboard)" in out
    assert "1 1 2 1 2 1 1" in out
    assert "2 2 4 2 4 2 2" in out  # the unevenness gets squared in 2D


@pytest.mark.parametrize("command", ["shape", "params", "flops", "rf", "layer", "types", "compare", "solve", "overlap"])
def test_help(run_cli, command):
    result = run_cli([command, "--help"])
    assert result.code == 0
    assert "Usage" in result.stdout


def test_version(run_cli):
    result = run_cli(["--version"])
    assert result.code == 0 and result.stdout.startswith("convcalc ")


@pytest.mark.parametrize("entry", [[sys.executable, "-m", "convcalc"], ["convcalc"]], ids=["python-m", "console-script"])
def test_real_process(entry):
    proc = subprocess.run(
        [*entry, "flops", "conv2d", "--in", "3x7x7", "-o", "128", "-k", "3", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["macs"] == 86_400
    bad = subprocess.run(
        [*entry, "shape", "conv2d", "--in", "3x7x7", "-o", "1", "-k", "9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == "" and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: ")


def test_one_receptive_field_vocabulary_for_layers_and_networks(run_cli, cli_json, tmp_path):
    """A field convcalc does not track says so in the table, the JSON and a network row alike
    (the table used to print "data-dependent" beside its own "not tracked" note); deformable
    sampling, whose positions do come from the data, stays "data-dependent"."""
    args = ["shape", "upsample", "--in", "3x5x5", "--set", "scale_factor=1.5"]
    table = run_cli(args).stdout
    assert "not tracked" in table and "data-dependent" not in table
    layer = cli_json(args)
    assert layer["receptive_field"] == "not tracked"
    assert [s["receptive_field"] for s in layer["stages"]] == ["not tracked"]
    spec = tmp_path / "up.yaml"
    spec.write_text("name: up\ninput: 3x5x5\nlayers:\n  - {type: upsample, scale_factor: 1.5}\n")
    (row,) = cli_json(["net", str(spec)])["layers"]
    assert row["receptive_field"] == layer["receptive_field"]
    deform = cli_json(["shape", "deformable2d", "--in", "4x9x9", "-o", "8", "-k", "3"])
    assert deform["receptive_field"] == "data-dependent"
    from convcalc.report import FIELD_STATUSES

    assert {layer["receptive_field"], deform["receptive_field"]} <= set(FIELD_STATUSES)
