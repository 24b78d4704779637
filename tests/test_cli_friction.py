"""Friction a new user hits (issue 8): framework class names, channels-last shapes, compare with
flags only some types take, run refusing layer flags on a network, check warnings and CI outputs,
check --update."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from convcalc.kinds.base import lookup

SPECS = Path(__file__).resolve().parent.parent / "specs"

# (framework class name, the kind it names): the class names are PyTorch's torch.nn, Keras' layers
# and TensorFlow's tf.nn functions; the kind is the operation that class computes.
FRAMEWORK_NAMES = [
    ("Conv1d", "conv1d"), ("Conv2d", "conv2d"), ("Conv3d", "conv3d"),
    ("Conv1D", "conv1d"), ("Conv2D", "conv2d"), ("Conv3D", "conv3d"),
    ("ConvTranspose1d", "conv_transpose1d"), ("ConvTranspose2d", "conv_transpose2d"), ("ConvTranspose3d", "conv_transpose3d"),
    ("Conv1DTranspose", "conv_transpose1d"), ("Conv2DTranspose", "conv_transpose2d"), ("Conv3DTranspose", "conv_transpose3d"),
    ("conv2d_transpose", "conv_transpose2d"), ("atrous_conv2d", "conv2d"),
    ("SeparableConv1D", "separable1d"), ("SeparableConv2D", "separable2d"), ("separable_conv2d", "separable2d"),
    ("DepthwiseConv1D", "depthwise1d"), ("DepthwiseConv2D", "depthwise2d"), ("DepthwiseConv3D", "depthwise3d"),
    ("depthwise_conv2d", "depthwise2d"), ("DeformConv2d", "deformable2d"), ("ChannelShuffle", "channel_shuffle"),
    ("MaxPool2d", "maxpool2d"), ("MaxPooling2D", "maxpool2d"), ("AvgPool2d", "avgpool2d"), ("AveragePooling2D", "avgpool2d"),
    ("AdaptiveAvgPool2d", "adaptive_avgpool2d"), ("AdaptiveMaxPool1d", "adaptive_maxpool1d"),
    ("GlobalAveragePooling2D", "global_avgpool"), ("GlobalMaxPooling1D", "global_maxpool"), ("GlobalAvgPool2D", "global_avgpool"),
    ("BatchNorm2d", "batchnorm2d"), ("BatchNormalization", "batchnorm"), ("LayerNorm", "layernorm"),
    ("LayerNormalization", "layernorm"), ("GroupNorm", "groupnorm"), ("GroupNormalization", "groupnorm"),
    ("InstanceNorm2d", "instancenorm2d"), ("LocalResponseNorm", "local_response_norm"),
    ("ReLU", "relu"), ("ReLU6", "relu6"), ("LeakyReLU", "leaky_relu"), ("SiLU", "silu"), ("Hardswish", "hardswish"),
    ("LogSoftmax", "log_softmax"), ("Dropout2d", "dropout"), ("SpatialDropout2D", "dropout"),
    ("Linear", "linear"), ("Dense", "linear"), ("Flatten", "flatten"), ("Embedding", "embedding"),
    ("PixelShuffle", "pixel_shuffle"), ("UpSampling2D", "upsample"), ("ZeroPad2d", "zeropad2d"),
    ("ZeroPadding2D", "zeropad2d"), ("Cropping2D", "crop2d"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kind"), FRAMEWORK_NAMES)
def test_framework_class_names_are_aliases(name: str, kind: str) -> None:
    assert lookup(name).name == kind
    assert lookup(name.upper()).name == kind
    assert lookup(name.lower()).name == kind


def test_torch_class_names_exist_and_resolve() -> None:
    """The PyTorch spellings in the table are real torch.nn classes (so the table is not invented)."""
    nn = pytest.importorskip("torch.nn")
    for name, _ in FRAMEWORK_NAMES:
        if (name[0].isupper() and name[-2:-1].isdigit() and name[-1] == "d" and name != "DeformConv2d") or name in ("ReLU", "LeakyReLU", "LayerNorm", "Linear"):
            assert hasattr(nn, name), name


def test_framework_names_in_a_network_spec(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "keras.yaml"
    spec.write_text(
        "input: 3x32x32\nlayers:\n"
        "  - {type: Conv2D, filters: 8, kernel_size: 3}\n  - {type: BatchNorm2d}\n  - {type: ReLU}\n"
        "  - {type: MaxPool2d, kernel_size: 2}\n  - {type: GlobalAveragePooling2D, keepdims: false}\n"
        "  - {type: Dense, units: 10}\n"
    )
    result = run_cli(["net", str(spec), "--format", "json"])
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    # conv 3->8 k3: 8*3*9 + 8; BN: 2*8; dense 8->10: 8*10 + 10
    assert data["totals"]["params"] == 8 * 3 * 9 + 8 + 2 * 8 + 8 * 10 + 10


def test_unknown_name_still_suggests(run_cli) -> None:
    result = run_cli(["shape", "Conv2DD", "--in", "3x8x8", "-o", "1", "-k", "3"])
    assert result.code == 2
    assert "Did you mean" in result.stderr and "Traceback" not in result.output


def test_channels_last_looking_input_warns(run_cli) -> None:
    result = run_cli(["shape", "conv2d", "--in", "224x224x3", "-o", "64", "-k", "3"])
    assert result.code == 0
    assert "warning:" in result.stderr and "3x224x224" in result.stderr and "--layout channels_last" in result.stderr
    for args in (["--in", "3x224x224"], ["--in", "224x224x3", "--layout", "channels_last"], ["--in", "64x8x8"]):
        quiet = run_cli(["shape", "conv2d", *args, "-o", "64", "-k", "3"])
        assert quiet.code == 0 and quiet.stderr == "", quiet.stderr


def test_channels_last_warning_keeps_json_clean(run_cli) -> None:
    result = run_cli(["shape", "conv2d", "--in", "224x224x3", "-o", "64", "-k", "3", "--format", "json"])
    assert result.code == 0
    json.loads(result.stdout)


def test_linear_takes_a_flat_input(cli_json) -> None:
    data = cli_json(["layer", "linear", "--in", "25088", "-o", "4096"])
    assert data["output_shape"] == [4096]
    assert data["params"] == 25088 * 4096 + 4096  # torchvision VGG16 classifier[0]
    assert data["macs"] == 25088 * 4096


def test_conv_refuses_a_flat_input(run_cli) -> None:
    result = run_cli(["shape", "conv2d", "--in", "25088", "-o", "4", "-k", "3"])
    assert result.code == 2 and "Traceback" not in result.output


def _rows(result_stdout: str) -> list[dict[str, object]]:
    return json.loads(result_stdout)


def test_compare_groups_note_and_honest_baseline(run_cli) -> None:
    args = ["compare", "conv2d", "separable2d", "--in", "32x56x56", "-o", "64", "-k", "3", "-g", "4"]
    text = run_cli(args)
    assert text.code == 0, text.stderr
    assert "groups=4 applies to conv2d; not to separable2d" in text.stdout
    assert "relative to conv2d groups=4" in text.stdout
    data = json.loads(run_cli([*args, "--format", "json"]).stdout)
    assert [d["label"] for d in data] == ["conv2d groups=4", "separable2d"]
    # the baseline row is a grouped conv: weights C_out * C_in/g * 9 + bias
    assert data[0]["params"] == 64 * (32 // 4) * 9 + 64


def test_compare_never_repeats_a_label(run_cli) -> None:
    result = run_cli(["compare", "conv2d", "Conv2D", "separable2d", "conv2d", "--in", "8x9x9", "-o", "8", "-k", "3", "-f", "json"])
    assert result.code == 0, result.stderr
    labels = [d["label"] for d in json.loads(result.stdout)]
    assert labels == ["conv2d", "separable2d"]
    text = run_cli(["compare", "conv2d", "Conv2D", "--in", "8x9x9", "-o", "8", "-k", "3"]).stdout
    assert "compared once" in text


@pytest.mark.parametrize("flags", [["-o", "5"], ["-k", "3", "-s", "2"], ["--groups", "2"], ["--layout", "channels_last"]])
def test_run_refuses_layer_flags_on_a_network(run_cli, flags: list[str]) -> None:
    result = run_cli(["run", str(SPECS / "vgg16.yaml"), *flags])
    assert result.code == 2
    assert "do not apply to a network run" in result.stderr and "Traceback" not in result.output


# -- check ------------------------------------------------------------------------------------------

NO_EXPECT = "input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n"


def test_check_warns_on_a_spec_without_expectations(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "bare.yaml"
    spec.write_text(NO_EXPECT)
    text = run_cli(["check", str(spec)])
    assert text.code == 0
    assert "WARN" in text.stdout and "no expectations" in text.stdout
    github = run_cli(["check", str(spec), "--format", "github"])
    assert any(line.startswith("::warning ") and "no expectations" in line for line in github.stdout.splitlines())


def test_github_annotations_use_relative_paths(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "sub" / "bad.yaml"
    spec.parent.mkdir()
    spec.write_text(NO_EXPECT + "expect:\n  params: 1\n")
    monkeypatch.chdir(tmp_path)
    result = run_cli(["check", str(spec.resolve()), "--format", "github"])
    assert result.code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert errors and all(f"file={os.path.join('sub', 'bad.yaml')}," in line for line in errors), errors
    assert str(tmp_path) not in result.stdout


def test_junit_has_time_file_and_line(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "one.yaml"
    spec.write_text(NO_EXPECT + "expect:\n  params: 1\n  macs: 3888\n")
    result = run_cli(["check", str(spec), "--format", "junit"])
    assert result.code == 1
    root = ET.fromstring(result.stdout)
    cases = root.findall(".//testcase")
    assert all(c.get("file") and c.get("time") is not None for c in cases)
    float(root.get("time") or "x")
    by_name = {c.get("name"): c for c in cases}
    assert by_name["params"].get("line") == "5" and by_name["macs"].get("line") == "6"  # lines of the YAML text above
    assert by_name["params"].find("failure") is not None and by_name["macs"].find("failure") is None



@pytest.mark.parametrize(
    ("spec", "override", "changed"),
    [("resnet50.yaml", ["--in", "3x448x448"], "--in 3x448x448"), ("deeplab_aspp.yaml", ["--in", "2048x9x9", "--set", "size=9"], "size=9")],
    ids=["in", "set"],
)
def test_junit_reports_skipped_expectations_as_skipped_cases(run_cli, spec: str, override: list[str], changed: str) -> None:
    """Every expectation of the spec's own ``expect`` block is a case; those the override made
    inapplicable carry ``<skipped message=...>`` saying why, and the counts include them."""
    path = str(SPECS / spec)
    result = run_cli(["check", path, *override, "--format", "junit"])
    assert result.code == 0, result.output
    root = ET.fromstring(result.stdout)
    (suite,) = root.findall("testsuite")
    plain = run_cli(["check", path, "--format", "junit"])  # the same spec as written: nothing skipped
    written = [c.get("name") for c in ET.fromstring(plain.stdout).iter("testcase")]
    assert ET.fromstring(plain.stdout).get("skipped") == "0"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == written  # no expectation left out
    skipped = {c.get("name"): c.find("skipped") for c in cases if c.find("skipped") is not None}
    assert skipped and all(c.find("failure") is None and c.find("error") is None for c in cases)
    assert "macs" in skipped and "evaluates" not in skipped
    for name, node in skipped.items():
        message = node.get("message") or ""
        assert f"{name}: skipped, the spec states it for its own input and variables" in message and changed in message
    assert suite.get("skipped") == root.get("skipped") == str(len(skipped))
    assert suite.get("tests") == root.get("tests") == str(len(written))
    doc = json.loads(run_cli(["net", path, *override, "-f", "json"]).stdout)  # the same verdicts as the JSON report
    assert sorted(skipped) == sorted(e["what"] for e in doc["expectations"] if e["skipped"])


def test_step_summary_is_appended(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli(["check", str(SPECS / "vgg16.yaml"), str(SPECS / "resnet50.yaml")])
    assert result.code == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 3 and "vgg16" in table[1] and "resnet50" in table[2] and "pass" in table[1]


def _outside_expect(text: str) -> str:
    """Everything but the top-level expect block (from 'expect:' to the next column-0 key or EOF)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("expect:"):
            inside = True
            continue
        if inside and line.strip() and not line[0].isspace():
            inside = False
        if not inside:
            out.append(line)
    return "".join(out)


@pytest.mark.parametrize("name", ["resnet50.yaml", "vgg16.yaml", "mobilenet_v2.yaml"])
def test_check_update_keeps_the_rest_byte_for_byte(run_cli, tmp_path: Path, name: str) -> None:
    original = (SPECS / name).read_bytes()
    spec = tmp_path / name
    head, sep, block = original.partition(b"\nexpect:")
    broken = head + sep + block.replace(b"params:", b"params: 1 #", 1)  # a wrong total to overwrite
    spec.write_bytes(broken)
    updated = run_cli(["check", "--update", str(spec)])
    assert updated.code == 0, updated.stderr + updated.stdout
    after = spec.read_bytes()
    assert _outside_expect(after.decode()) == _outside_expect(original.decode())
    assert run_cli(["check", str(spec)]).code == 0


def test_check_update_appends_a_block_and_keeps_crlf(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "bare.yaml"
    text = "# a comment\r\ninput: 3x8x8   # kept\r\nlayers:\r\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\r\n"
    spec.write_bytes(text.encode())
    assert run_cli(["check", "--update", str(spec)]).code == 0
    after = spec.read_bytes().decode()
    assert after.startswith(text)
    assert "expect:\r\n" in after and "  params: 112\r\n" in after  # 4*3*9 + 4
    result = run_cli(["check", str(spec), "--format", "junit"])
    assert result.code == 0
    assert {c.get("name") for c in ET.fromstring(result.stdout).findall(".//testcase")} >= {"output_shape", "params", "macs"}


def test_check_update_keeps_keys_after_the_block(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "mid.yaml"
    text = "input: 3x8x8\nexpect:\n  params: 5   # wrong\n\n# about the layers\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n"
    spec.write_text(text)
    assert run_cli(["check", "--update", str(spec)]).code == 0
    after = spec.read_text()
    assert after.startswith("input: 3x8x8\nexpect:\n")
    assert after.endswith("\n\n# about the layers\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n")
    assert run_cli(["check", str(spec)]).code == 0


def test_check_update_refuses_a_bad_spec_untouched(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    text = "input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 30}\n"
    spec.write_text(text)
    result = run_cli(["check", "--update", str(spec)])
    assert result.code == 2 and "Traceback" not in result.output
    assert spec.read_text() == text
    assert run_cli(["check", "--update", "-"], input=text).code == 2


# -- tables fit the terminal ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["net", str(SPECS / "resnet50.yaml")], ["types"], ["net", str(SPECS / "inception_v3.yaml")]])
def test_tables_fit_80_columns(run_cli, args: list[str]) -> None:
    narrow = run_cli(args, columns=80)
    assert narrow.code == 0, narrow.stderr
    too_long = [line for line in narrow.stdout.splitlines() if len(line) > 80]
    assert too_long == []
    assert "hidden to fit 80 columns" in narrow.stdout


def test_narrow_types_keeps_every_word_of_each_summary(run_cli) -> None:
    from convcalc.kinds.base import all_kinds

    words = run_cli(["types"], columns=80).stdout.split()
    for kind in all_kinds():
        assert " ".join(kind.summary.split()) in " ".join(words), kind.name


def test_narrow_network_keeps_names_and_totals(run_cli) -> None:
    narrow = run_cli(["net", str(SPECS / "resnet50.yaml")], columns=80).stdout
    wide = run_cli(["net", str(SPECS / "resnet50.yaml")]).stdout
    assert "params: 25,557,032" in narrow  # torchvision ResNet50_Weights num_params
    wide_names = [line.split()[0] for line in wide.split("\n\n")[0].splitlines()[2:]]
    narrow_names = [line.split()[0] for line in narrow.split("\n\n")[0].splitlines()[2:] if not line.startswith((" ", "("))]
    assert narrow_names == wide_names


def test_wide_terminals_keep_the_full_table(run_cli) -> None:
    for args in (["net", str(SPECS / "resnet50.yaml")], ["types"]):
        assert run_cli(args, columns=1000).stdout == run_cli(args).stdout
    assert "centre" in run_cli(["net", str(SPECS / "resnet50.yaml")], columns=1000).stdout


def test_aligned_drops_in_order_then_folds() -> None:
    from convcalc.render.table import aligned

    headers = ["a", "b", "c", "long"]
    rows = [["1", "22", "333", "one two three four five six seven"]]
    full = aligned(headers, rows)
    assert max(map(len, full)) == 1 + 2 + 2 + 2 + 3 + 2 + 33
    no_b = aligned(headers, rows, width=42, drop=(1, 2))
    assert no_b[0].split() == ["a", "c", "long"] and "hidden to fit 42 columns: b;" in " ".join(no_b[2:])
    folded = aligned(headers, rows, width=26, drop=(1, 2), fold=3)
    note = next(i for i, line in enumerate(folded) if line.startswith("(hidden"))
    body = folded[1:note]
    assert all(len(line) <= 26 for line in folded)
    assert " ".join(" ".join(line.split()[1:]) if i == 0 else line.strip() for i, line in enumerate(body)) == rows[0][3]


# -- shell completion -------------------------------------------------------------------------------


def _complete(words: str, cwd: Path | None = None) -> list[str]:
    """What bash completion offers for ``words`` (the last word is the one being completed), through
    typer's completion protocol in a fresh process, as the installed shell hook asks."""
    import subprocess
    import sys

    parts = words.split(" ")
    env = {
        **os.environ,
        "_CONVCALC_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
        "PYTHONPATH": str(SPECS.parent),
    }
    code = "from convcalc.cli.app import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd or SPECS.parent, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_commands() -> None:
    assert _complete("convcalc sh") == ["shape"]
    assert {"net", "check", "run", "types", "compare"} <= set(_complete("convcalc "))


def test_completion_type_names() -> None:
    offered = _complete("convcalc shape sep")
    assert offered == ["separable1d", "separable2d", "separable3d"]
    assert "maxpool2d" in _complete("convcalc layer max")
    assert "depthwise2d" in _complete("convcalc run dep")


def test_completion_set_field_names() -> None:
    assert _complete("convcalc shape conv2d --set ker") == ["kernel_size="]
    offered = _complete("convcalc shape deformable2d --set off")
    assert offered == ["offset_groups="]
    # without a type: every field of every type
    assert "output_size=" in _complete("convcalc shape --set out")


def test_completion_spec_paths(tmp_path: Path) -> None:
    offered = _complete("convcalc net specs/res")
    assert offered == ["specs/resnet18.yaml", "specs/resnet50.yaml", "specs/resnext50_32x4d.yaml"]
    assert "specs/examples/tiny_resnet.yaml" in _complete("convcalc check specs/examples/")
    assert "specs/vgg16.yaml" in _complete("convcalc run specs/v")
    (tmp_path / "mine.yaml").write_text(NO_EXPECT)
    (tmp_path / "notes.txt").write_text("")
    elsewhere = _complete("convcalc net ", cwd=tmp_path)
    assert "mine.yaml" in elsewhere and "notes.txt" not in elsewhere
    assert "resnet50" in elsewhere  # the shipped library by name, from any directory
    assert _complete("convcalc net resnet5", cwd=tmp_path) == ["resnet50"]
    assert _complete("convcalc draw rf resnet5", cwd=tmp_path) == ["resnet50"]  # draw rf's SPEC too


def test_install_completion_is_offered(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--show-completion`` is a flag: typer detects the shell from the process tree (shellingham),
    which finds none when the tests run under a non-shell parent, so the detection is pinned."""
    import typer.completion

    help_text = run_cli(["--help"]).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    script = run_cli(["--show-completion"])
    assert script.code == 0 and "_CONVCALC_COMPLETE" in script.stdout and "complete " in script.stdout


def test_check_update_edits_values_in_place(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "inplace.yaml"
    head = "input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n"
    spec.write_text(head + "expect:\n    receptive_field: [3, 3]   # kept\n    params: 7   # from the paper\n    macs: 3_888\n")
    assert run_cli(["check", "--update", str(spec)]).code == 0
    # the wrong params replaced with its comment; macs held (3_888 kept as written); the
    # receptive field kept; the missing output shape added with the block's indentation
    assert spec.read_text() == head + (
        "expect:\n    receptive_field: [3, 3]   # kept\n    params: 112   # from the paper\n    macs: 3_888\n"
        "    output_shape: [4, 6, 6]\n"
    )
    assert run_cli(["check", str(spec)]).code == 0


def test_check_update_rewrites_a_flow_style_block(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "flow.yaml"
    spec.write_text(NO_EXPECT + "expect: {params: 1}  # one line\n")
    assert run_cli(["check", "--update", str(spec)]).code == 0
    assert spec.read_text() == NO_EXPECT + "expect:\n  output_shape: [4, 6, 6]\n  params: 112\n  macs: 3888\n"


def test_check_update_refuses_overrides(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "one.yaml"
    spec.write_text(NO_EXPECT)
    result = run_cli(["check", "--update", str(spec), "--in", "3x16x16"])
    assert result.code == 2 and "--update" in result.stderr
    assert spec.read_text() == NO_EXPECT


def test_run_set_on_a_network_is_a_variable_not_a_layer_flag(run_cli) -> None:
    result = run_cli(["run", str(SPECS / "vgg16.yaml"), "--set", "nonexistent=3"])
    assert result.code == 2
    assert "layer flags do not apply" not in result.stderr and "variable" in result.stderr
