"""Bad input through the CLI: exit code 2, a one-paragraph message on stderr naming the field (or layer,
or file:line) and the fix, nothing on stdout, and never a traceback unless --debug is given."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from convcalc.errors import ConvcalcError, ShapeError

CONV = ["--in", "3x7x7", "-o", "4", "-k", "3"]


@dataclass(frozen=True)
class Bad:
    args: list[str]
    must: list[str]  # substrings of the message: what is wrong (field / layer / file:line) and the fix
    files: dict[str, str] = field(default_factory=dict)  # written to tmp_path first; "{dir}" in args is replaced
    stdin: str | None = None


def case(id_: str, args: list[str], *must: str, files: dict[str, str] | None = None, stdin: str | None = None):
    return pytest.param(Bad(args, list(must), files or {}, stdin), id=id_)


BOMB = (
    "\n".join(
        ["type: conv2d", "input: 3x7x7", "out_channels: 4", "kernel_size: 3", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    )
    + "\n"
)

CASES = [
    # --- unknown type ----------------------------------------------------------------------
    case("unknown-type", ["shape", "conv2dd", *CONV], "unknown layer type 'conv2dd'", "Did you mean 'conv2d'", "convcalc types"),
    case("misspelled-type", ["shape", "seperable2d", *CONV], "unknown layer type 'seperable2d'", "'separable2d'"),
    case(
        "unknown-type-in-spec",
        ["shape", "--spec", "{dir}/t.yaml"],
        "unknown layer type 'convolution'",
        "convcalc types",
        files={"t.yaml": "type: convolution\ninput: 3x7x7\nout_channels: 4\nkernel_size: 3\n"},
    ),
    case(
        "unknown-type-in-compare",
        ["compare", "conv2d", "sepconv", "--in", "3x7x7", "-o", "4", "-k", "3"],
        "unknown layer type 'sepconv'",
    ),
    case("unknown-type-in-types", ["types", "deconv"], "unknown layer type 'deconv'", "Did you mean"),
    # --- unknown field -----------------------------------------------------------------------
    case(
        "unknown-field-yaml",
        ["shape", "--spec", "{dir}/f.yaml"],
        "{dir}/f.yaml:3",
        "no field 'out_chanels'",
        "Did you mean 'out_channels'",
        files={"f.yaml": "type: conv2d\ninput: 3x7x7\nout_chanels: 4\nkernel_size: 3\n"},
    ),
    case("unknown-field-set", ["shape", "conv2d", *CONV, "--set", "kernal=3"], "no field 'kernal'", "'kernel_size'"),
    case(
        "field-of-another-type",
        ["shape", "conv2d", *CONV, "--depth-multiplier", "2"],
        "conv2d has no field 'depth_multiplier'",
        "Its fields are",
    ),
    case("output-padding-on-conv", ["shape", "conv2d", *CONV, "--output-padding", "1"], "no field 'output_padding'"),
    case("set-without-equals", ["shape", "conv2d", *CONV, "--set", "groups"], "--set expects name=value", "Example"),
    case(
        "field-given-twice-yaml",
        ["shape", "--spec", "{dir}/d.yaml"],
        "'kernel_size' is given twice",
        files={"d.yaml": "type: conv2d\ninput: 3x7x7\nout_channels: 4\nk: 3\nkernel_size: 3\n"},
    ),
    # --- missing field -----------------------------------------------------------------------
    case(
        "missing-out-channels",
        ["shape", "conv2d", "--in", "3x7x7", "-k", "3"],
        "needs the field 'out_channels'",
        "--out-channels",
    ),
    case("missing-kernel", ["shape", "conv2d", "--in", "3x7x7", "-o", "4"], "needs the field 'kernel_size'", "--kernel-size"),
    case("missing-input", ["shape", "conv2d", "-o", "4", "-k", "3"], "no input shape given", "--in"),
    case("missing-type", ["shape", "--in", "3x7x7"], "no layer type given", "type:"),
    case("missing-type-in-spec", ["shape", "--spec", "-"], "no layer type given", stdin="input: 3x7x7\n"),
    case("missing-input-compare", ["compare", "-o", "4", "-k", "3"], "compare needs an input shape", "--in"),
    # --- wrong value type --------------------------------------------------------------------
    case(
        "out-channels-not-int",
        ["shape", "conv2d", "--in", "3x7x7", "-o", "abc", "-k", "3"],
        "'out_channels' must be an integer",
        "whole number",
    ),
    case(
        "out-channels-fraction", ["shape", "conv2d", "--in", "3x7x7", "-o", "3.5", "-k", "3"], "'out_channels' must be an integer"
    ),
    case("kernel-not-int", ["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "3xa"], "'kernel_size' must be an integer"),
    case("input-not-int", ["shape", "conv2d", "--in", "3xfoo", "-o", "4", "-k", "3"], "'input' must be an integer"),
    case(
        "bias-not-bool-yaml",
        ["shape", "--spec", "{dir}/b.yaml"],
        "{dir}/b.yaml:5",
        "'bias' must be true or false",
        files={"b.yaml": "type: conv2d\ninput: 3x7x7\nout_channels: 4\nkernel_size: 3\nbias: maybe\n"},
    ),
    case(
        "kernel-mapping-yaml",
        ["shape", "--spec", "{dir}/k.yaml"],
        "{dir}/k.yaml:4",
        "'kernel_size' must be an integer",
        files={"k.yaml": "type: conv2d\ninput: 3x7x7\nout_channels: 4\nkernel_size: {a: 1}\n"},
    ),
    case(
        "variant-not-a-choice",
        ["shape", "p3d", "--in", "2x4x7x7", "-o", "2", "-k", "3", "--variant", "D"],
        "'variant' must be one of A, B, C",
    ),
    case("deformable-version", ["shape", "deformable2d", *CONV, "--set", "version=3"], "'version' must be 1", "or 2"),
    case("padding-pair-malformed", ["shape", "conv2d", *CONV, "-p", "1:2:3"], "'padding' must be an integer"),
    case(
        "padding-pairs-yaml-three",
        ["shape", "--spec", "{dir}/p.yaml"],
        "pairs must be [before, after]",
        files={"p.yaml": "type: conv2d\ninput: 3x7x7\nout_channels: 4\nkernel_size: 3\npadding: [[1, 1, 1], [0, 0]]\n"},
    ),
    case(
        "input-rank",
        ["shape", "conv2d", "--in", "3x7x7x7x7", "-o", "4", "-k", "3"],
        "'input' must have 2 to 4 sizes",
        "--in 3x224x224",
    ),
    case(
        "per-axis-count",
        ["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "3x3x3"],
        "'kernel_size' has 3 per-axis values",
        "2 spatial axes",
    ),
    case(
        "rank-mismatch",
        ["shape", "conv2d", "--in", "3x7", "-o", "4", "-k", "3"],
        "conv2d expects an input with 2 spatial axes",
        "CxHxW",
    ),
    case(
        "in-channels-disagree",
        ["shape", "conv2d", *CONV, "--set", "in_channels=4"],
        "in_channels = 4",
        "3 channels",
        "Drop in_channels",
    ),
    # --- zero / negative sizes ---------------------------------------------------------------
    case("input-zero", ["shape", "conv2d", "--in", "3x0x7", "-o", "4", "-k", "3"], "'input' must be >= 1, got 0"),
    case("input-channels-zero", ["shape", "conv2d", "--in", "0x7x7", "-o", "4", "-k", "3"], "'input' must be >= 1"),
    case("out-channels-zero", ["shape", "conv2d", "--in", "3x7x7", "-o", "0", "-k", "3"], "'out_channels' must be >= 1, got 0"),
    case("kernel-negative", ["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "-3"], "'kernel_size' must be >= 1, got -3"),
    case("stride-zero", ["shape", "conv2d", *CONV, "-s", "1x0"], "'stride' must be >= 1, got 0"),
    case("dilation-zero", ["shape", "conv2d", *CONV, "-d", "0"], "'dilation' must be >= 1"),
    case("groups-zero", ["shape", "conv2d", *CONV, "-g", "0"], "'groups' must be >= 1"),
    case("padding-negative", ["shape", "conv2d", *CONV, "-p", "-1"], "'padding' must be >= 0, got -1"),
    case("batch-zero", ["shape", "conv2d", *CONV, "--batch", "0"], "'batch' must be >= 1"),
    case(
        "depth-multiplier-zero",
        ["shape", "depthwise2d", "--in", "3x7x7", "-k", "3", "--depth-multiplier", "0"],
        "'depth_multiplier' must be >= 1",
    ),
    case("output-padding-negative", ["shape", "deconv2d", *CONV, "--output-padding", "-1"], "'output_padding' must be >= 0"),
    case("huge-size", ["shape", "conv2d", "--in", "3x7x99999999999", "-o", "4", "-k", "3"], "exceeds the limit"),
    # --- impossible layers -------------------------------------------------------------------
    case(
        "kernel-larger-than-input",
        ["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "9"],
        "along axis H",
        "effective size d·(k-1)+1 = 9",
        "larger than the padded input 7 + 0 + 0 = 7",
        "smaller kernel",
    ),
    case(
        "kernel-larger-on-last-axis-only",
        ["shape", "conv3d", "--in", "3x9x9x2", "-o", "4", "-k", "3"],
        "along axis W",
        "padded input 2 + 0 + 0 = 2",
    ),
    case(
        "dilation-too-large",
        ["shape", "atrous2d", "--in", "3x8x8", "-o", "4", "-k", "3", "-d", "4"],
        "effective size d·(k-1)+1 = 9",
        "dilation",
    ),
    case(
        "kernel-larger-in-a-stage",
        ["shape", "separable2d", "--in", "3x4x4", "-o", "4", "-k", "5"],
        "layer 'separable2d'",
        "along axis H",
        "larger than the padded input",
    ),
    case(
        "transposed-output-below-1",
        ["shape", "deconv1d", "--in", "1x1", "-o", "1", "-k", "2", "-p", "1"],
        "output size",
        "= 0 is < 1",
        "Reduce the padding",
    ),
    case(
        "in-channels-not-divisible",
        ["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "3", "-g", "2"],
        "in_channels = 3 is not divisible by groups = 2",
        "Choose groups that divides both 3 and 4",
    ),
    case(
        "out-channels-not-divisible",
        ["shape", "conv2d", "--in", "4x7x7", "-o", "3", "-k", "3", "-g", "2"],
        "out_channels = 3 is not divisible by groups = 2",
    ),
    case(
        "transposed-groups",
        ["shape", "deconv2d", "--in", "4x7x7", "-o", "6", "-k", "3", "-g", "4"],
        "out_channels = 6 is not divisible by groups = 4",
    ),
    case("shuffle-groups", ["shape", "channel_shuffle", "--in", "6x4x4", "-g", "4"], "6 channels to be divisible by groups = 4"),
    case("shuffle-one-group", ["shape", "shuffle_grouped2d", *CONV, "-g", "1"], "'groups' must be >= 2"),
    case(
        "output-padding-too-large",
        ["shape", "conv_transpose2d", "--in", "4x7x7", "-o", "3", "-k", "3", "-s", "2", "--output-padding", "2"],
        "output_padding = 2 must be smaller than max(stride, dilation) = 2",
        "lower it",
    ),
    case(
        "output-padding-too-large-last-axis",
        ["shape", "conv_transpose2d", "--in", "4x7x7", "-o", "3", "-k", "3", "-s", "2x1", "--output-padding", "1x1"],
        "along axis W output_padding = 1",
    ),
    case(
        "p3d-branches-disagree",
        ["shape", "p3d", "--in", "2x4x7x7", "-o", "2", "-k", "3", "--variant", "B"],
        "add needs equal shapes",
        "'spatial'",
        "'temporal'",
    ),
    case(
        "r2plus1d-no-mid-channels",
        ["shape", "conv2plus1d", "--in", "1x4x9x9", "-o", "1", "-k", "1x3x3"],
        "gives M = 0 mid channels",
        "--mid-channels",
    ),
    # --- padding modes that do not apply -----------------------------------------------------
    case(
        "same-full-on-transposed",
        ["shape", "conv_transpose2d", *CONV, "-p", "full"],
        "'full' padding does not apply to a transposed convolution",
        "'same' or 'valid'",
    ),
    case(
        "causal-on-transposed",
        ["shape", "conv_transpose1d", "--in", "3x7", "-o", "4", "-k", "3", "-p", "causal"],
        "'causal' padding does not apply to a transposed convolution",
    ),
    case(
        "causal-on-2d",
        ["shape", "conv2d", *CONV, "-p", "causal"],
        "'causal' padding applies to 1D layers only",
        "before:after pairs",
    ),
    case(
        "causal-on-3d",
        ["shape", "separable3d", "--in", "3x5x7x7", "-o", "4", "-k", "3", "-p", "causal"],
        "'causal' padding applies to 1D layers only",
    ),
    # --- spec files --------------------------------------------------------------------------
    case(
        "malformed-yaml",
        ["shape", "--spec", "{dir}/m.yaml"],
        "{dir}/m.yaml:4",
        "malformed YAML",
        "indentation and quoting",
        files={"m.yaml": "type: conv2d\ninput: 3x7x7\nout_channels: [4\nkernel_size: 3\n"},
    ),
    case(
        "malformed-yaml-tab",
        ["shape", "--spec", "{dir}/tab.yaml"],
        "{dir}/tab.yaml:5",
        "malformed YAML",
        files={"tab.yaml": "type: conv2d\ninput: 3x7x7\nout_channels: 4\nkernel_size: 3\n\tbias: true\n"},
    ),
    case(
        "malformed-yaml-stdin",
        ["shape", "--spec", "-"],
        "<stdin>:3",
        "malformed YAML",
        stdin="type: conv2d\nk: [3\nout_channels: 4\n",
    ),
    case(
        "missing-file",
        ["shape", "--spec", "{dir}/nope.yaml"],
        "the spec file '{dir}/nope.yaml' does not exist",
        "use '-' to read standard input",
    ),
    case("directory-not-file", ["shape", "--spec", "{dir}"], "does not exist"),
    case(
        "yaml-list",
        ["shape", "--spec", "{dir}/l.yaml"],
        "{dir}/l.yaml:1",
        "a single-layer spec must be a mapping",
        "got list",
        files={"l.yaml": "- type: conv2d\n  out_channels: 4\n"},
    ),
    case("yaml-scalar", ["shape", "--spec", "-"], "must be a mapping", stdin="conv2d\n"),
    case("yaml-empty", ["shape", "--spec", "{dir}/e.yaml"], "is empty", "Write a YAML mapping", files={"e.yaml": ""}),
    case(
        "yaml-duplicate-key",
        ["shape", "--spec", "{dir}/dup.yaml"],
        "{dir}/dup.yaml:5",
        "the key 'kernel_size' appears twice",
        files={"dup.yaml": "type: conv2d\ninput: 3x7x7\nout_channels: 4\nkernel_size: 3\nkernel_size: 5\n"},
    ),
    case(
        "network-spec",
        ["shape", "--spec", "{dir}/net.yaml"],
        "is a network spec",
        "convcalc net",
        files={"net.yaml": "input: 3x7x7\nlayers:\n  - type: conv2d\n    out_channels: 4\n    kernel_size: 3\n"},
    ),
    case("alias-bomb", ["shape", "--spec", "{dir}/bomb.yaml"], "alias bomb", files={"bomb.yaml": BOMB}),
    case(
        "named-layer",
        ["shape", "--spec", "{dir}/n.yaml"],
        "layer 'stem'",
        "larger than the padded input",
        files={"n.yaml": "type: conv2d\nname: stem\ninput: 3x7x7\nout_channels: 4\nkernel_size: 9\n"},
    ),
    # --- other commands ----------------------------------------------------------------------
    case("overlap-3d", ["overlap", "--in", "4x4x4", "-k", "3", "-s", "2"], "overlap prints a 1D row or a 2D grid", "L or HxW"),
    case(
        "overlap-output-padding",
        ["overlap", "--in", "4", "-k", "3", "-s", "2", "--output-padding", "2"],
        "output_padding = 2 must be smaller",
    ),
    case("overlap-too-large", ["overlap", "--in", "100000", "-k", "3", "-s", "2"], "overlap prints at most"),
]


def check_clean_error(result, must: list[str]) -> None:
    assert result.code == 2, f"exit {result.code}; stdout={result.stdout!r} stderr={result.stderr!r} exc={result.exception!r}"
    assert result.stdout == "", "nothing on stdout when the input is bad"
    assert "Traceback" not in result.output
    message = result.stderr
    assert message.startswith("error: "), message
    assert message.endswith("\n") and "\n\n" not in message.strip(), "one paragraph"
    assert len(message) < 800, "one paragraph, not a dump"
    for text in must:
        assert text in message, f"{text!r} not in {message!r}"


@pytest.mark.parametrize("bad", CASES)
def test_bad_input(run_cli, tmp_path, bad: Bad):
    for name, text in bad.files.items():
        (tmp_path / name).write_text(text)
    args = [a.replace("{dir}", str(tmp_path)) for a in bad.args]
    started = time.perf_counter()
    result = run_cli(args, input=bad.stdin)
    assert time.perf_counter() - started < 10
    check_clean_error(result, [m.replace("{dir}", str(tmp_path)) for m in bad.must])


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["shape", "conv2d", *CONV, "--kernal", "3"], id="unknown-option"),
        pytest.param(["shape", "conv2d", *CONV, "--layout", "nhwc"], id="layout-not-a-choice"),
        pytest.param(["shape", "conv2d", *CONV, "--format", "xml"], id="format-not-a-choice"),
        pytest.param(["shape", "conv2d", *CONV, "--batch", "two"], id="batch-not-int"),
        pytest.param(["nosuchcommand"], id="unknown-command"),
    ],
)
def test_usage_errors(run_cli, args):
    """Option-level mistakes are click usage errors: exit 2, a usage hint, no traceback."""
    result = run_cli(args)
    assert result.code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert "Usage:" in result.stderr and "Error" in result.stderr


def test_debug_lets_the_exception_through(run_cli):
    result = run_cli(["--debug", "shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "9"])
    assert isinstance(result.exception, ShapeError)
    result = run_cli(["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "9", "--debug"])
    assert isinstance(result.exception, ConvcalcError)
    # and --debug does not stick in the process (cli.STATE used to latch it): the next run is clean again
    check_clean_error(run_cli(["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "9"]), ["larger than the padded input"])


def test_convcalc_debug_environment_variable(monkeypatch):
    from typer.testing import CliRunner

    from convcalc.cli import app as cli

    args = ["shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "9"]
    monkeypatch.setenv("CONVCALC_DEBUG", "1")
    assert isinstance(CliRunner().invoke(cli.app, args).exception, ShapeError)
    monkeypatch.setenv("CONVCALC_DEBUG", "0")
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def test_debug_prints_a_traceback_in_a_real_process():
    args = [sys.executable, "-m", "convcalc", "--debug", "shape", "conv2d", "--in", "3x7x7", "-o", "4", "-k", "9"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ShapeError" in proc.stderr
    clean = subprocess.run([a for a in args if a != "--debug"], capture_output=True, text=True, timeout=60, check=False)
    assert clean.returncode == 2 and "Traceback" not in clean.stderr


def test_internal_errors_exit_3_without_traceback(run_cli, monkeypatch):
    """A bug (any non-convcalc exception) is reported as one line asking for a report, exit code 3."""
    import convcalc.engine

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(convcalc.engine, "evaluate_layer", broken)
    result = run_cli(["shape", "conv2d", *CONV])
    assert result.code == 3
    assert "Traceback" not in result.output
    assert "internal error: ZeroDivisionError: simulated bug" in result.stderr
    assert "--debug" in result.stderr
