"""Hostile input (issue 8): work is bounded, not only output; numbers whose size hides work are
refused; messages name file:line and quote the user's text; output carries no control characters.

Cases that used to hang run in a subprocess with a timeout and with a limit lowered (so each stays
well under two seconds once bounded; before the fix the timeout fails them instead of hanging the
suite). The rest run in-process through the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 20.0
"""Seconds a bounded case may take in a subprocess (generous for a loaded machine: each needs < 2 s)."""


def run_limited(args: list[str], limits: dict[str, int], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``convcalc ARGS`` in a fresh interpreter with module limits lowered (``"module:NAME": value``)."""
    patches = "".join(
        f"import {module}; {module}.{name} = {value}\n" for key, value in limits.items() for module, name in [key.split(":")]
    )
    code = patches + f"import sys; sys.argv = ['convcalc', *{args!r}]\nfrom convcalc.cli.app import main\nmain()\n"
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- work is bounded ----------------------------------------------------------------------------------

NESTED_SKIPS = """\
input: 3x8x8
layers:
  - repeat: 1000
    layers:
      - repeat: 1000
        layers:
          - {type: relu, repeat: 1000, when: false}
"""

TEMPLATE_BREADTH = """\
input: 3x8x8
define:
  t:
    params: {d: 0}
    layers:
      - {type: t, d: $d + 1, when: $d < 30}
      - {type: t, d: $d + 1, when: $d < 30}
layers: [t]
"""

# 10^5 expanded nodes from 60 distinct ones, used as 'when' by 5,000 repetitions: walked once
SHARED = (
    "input: 3x8x8\nvariables:\n  a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    + "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 5))
    + "layers:\n  - {repeat: 5000, when: *a4, layers: [{type: relu, when: false}]}\n"
)


def test_loops_that_produce_no_layer_are_bounded(tmp_path: Path) -> None:
    done = run_limited(["net", write(tmp_path, NESTED_SKIPS)], {"convcalc.network.evaluate:MAX_PASSES": 10_000})
    assert done.returncode == 2, done.stderr
    assert "more than 10,000 item passes" in done.stderr
    assert "spec.yaml:" in done.stderr and "Traceback" not in done.stderr


def test_template_calls_are_bounded_not_only_their_depth(tmp_path: Path) -> None:
    done = run_limited(["net", write(tmp_path, TEMPLATE_BREADTH)], {"convcalc.network.evaluate:MAX_CALLS": 1000})
    assert done.returncode == 2, done.stderr
    assert "more than 1,000 template calls" in done.stderr and "Traceback" not in done.stderr


def test_a_shared_yaml_value_is_walked_once(tmp_path: Path) -> None:
    done = run_limited(["net", write(tmp_path, SHARED), "--format", "json"], {})
    # every relu is skipped: the network has no layer, which is an honest (empty) result
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr


def test_the_node_limit_is_enforced_while_composing(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("input: 3x8x8\nlayers:\n" + "- relu\n" * 300_000)  # 2 MiB, 300,000 nodes
    done = run_limited(["net", str(flat)], {"convcalc.parse.yaml:MAX_NODES": 10_000})
    assert done.returncode == 2, done.stderr
    assert "more than 10,000 nodes" in done.stderr
    line = int(done.stderr.split("flat.yaml:")[1].split(":")[0])
    assert line < 20_000  # refused where the limit was reached, not after reading everything
    assert "MemoryError" not in done.stderr and "Traceback" not in done.stderr


def test_deep_yaml_nesting_is_refused_while_composing(tmp_path: Path) -> None:
    deep = "input: 3x8x8\nlayers: " + "[" * 5000 + "]" * 5000 + "\n"
    done = run_limited(["net", write(tmp_path, deep)], {})
    assert done.returncode == 2 and "nests deeper than 64" in done.stderr, done.stderr


def test_stdin_is_read_up_to_the_size_limit_only() -> None:
    done = run_limited(["net", "-"], {"convcalc.parse.yaml:MAX_BYTES": 1000}, stdin="y\n" * 100_000)
    assert done.returncode == 2 and "larger than 1,000 bytes" in done.stderr, done.stderr


def test_stdin_read_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from convcalc.errors import LimitError
    from convcalc.parse import yaml as loader

    class Endless:
        """``yes |``: any read returns what was asked for; an unbounded read() never returns."""

        def read(self, size: int = -1) -> bytes:
            assert size >= 0, "stdin read without a limit"
            assert size <= loader.MAX_BYTES + 1, f"read {size} bytes, more than the limit + 1"
            return b"y" * size

    class Stdin:
        buffer = Endless()

        def read(self, size: int = -1) -> str:
            raise AssertionError("characters read: the byte limit would not hold for multi-byte text")

    monkeypatch.setattr(sys, "stdin", Stdin())
    with pytest.raises(LimitError, match="larger than"):
        loader.read_stdin()


def test_stdin_that_is_not_utf8_is_bad_input() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convcalc", "net", "-"],
        input=b"input: \xff\xfe\n",
        capture_output=True,
        check=False,
        timeout=TIMEOUT,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2 and b"<stdin>" in done.stderr and b"Traceback" not in done.stderr, done.stderr


# -- numbers whose size hides work --------------------------------------------------------------------

HUGE = "9" * 5000


def test_a_tiny_exponent_is_refused_quickly() -> None:
    done = run_limited(["shape", "upsample", "--in", "3x8x8", "--set", "scale_factor=1e-100000000"], {})
    assert done.returncode == 2 and "'scale_factor'" in done.stderr and "exponent" in done.stderr, done.stderr


def test_a_tiny_exponent_in_yaml_is_refused_quickly(tmp_path: Path) -> None:
    spec = write(tmp_path, "input: 3x8x8\nlayers:\n  - {type: upsample, scale_factor: 1e-100000000}\n")
    done = run_limited(["net", spec], {})
    assert done.returncode == 2 and "spec.yaml:3" in done.stderr and "'scale_factor'" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["shape", "conv2d", "--in", "3x8x8", "-k", "3", "-o", HUGE], id="flag"),
        pytest.param(["shape", "conv2d", "--in", "3x8x8", "-k", "3", "-o", "4", "--set", f"dilation={HUGE}"], id="set"),
        pytest.param(["shape", "conv2d", "--in", f"3x8x{HUGE}", "-k", "3", "-o", "4"], id="input"),
    ],
)
def test_a_huge_integer_on_the_command_line_is_bad_input(run_cli, args: list[str]) -> None:
    result = run_cli(args)
    assert result.code == 2, result.output
    assert "5,000 digits" in result.stderr and "internal error" not in result.output


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        (f"input: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: {HUGE}, kernel_size: 3}}\n", "out_channels", 3),
        (f"input: 3x8x8\nlayers:\n  - {{type: relu, repeat: {HUGE}}}\n", "repeat", 3),
        (f"input: 3x8x8\nlayers:\n  - {{type: relu, repeat: '{HUGE}'}}\n", "repeat", 3),
        (f"input: 3x8x8\nlayers: [relu]\nexpect: {{params: '{HUGE}'}}\n", "params", 3),
        (f"input: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: '${{{'9' * 150}}}', kernel_size: 3}}\n", "", 3),
    ],
    ids=["field", "repeat", "repeat-string", "expect", "expression"],
)
def test_a_huge_integer_in_a_spec_is_bad_input(run_cli, tmp_path: Path, text: str, field: str, line: int) -> None:
    result = run_cli(["net", write(tmp_path, text)])
    assert result.code == 2, result.output
    assert f"spec.yaml:{line}" in result.stderr and f"'{field}" in result.stderr
    assert "digits" in result.stderr or "2^62" in result.stderr


def test_check_goes_on_after_a_spec_with_a_huge_integer(run_cli, tmp_path: Path) -> None:
    bad = write(tmp_path, f"input: 3x8x8\nlayers:\n  - {{type: relu, repeat: {HUGE}}}\n", "bad.yaml")
    good = write(tmp_path, "input: 3x8x8\nlayers: [relu]\nexpect: {params: 0}\n", "good.yaml")
    result = run_cli(["check", bad, good])
    assert result.code == 2, result.output
    assert "internal error" not in result.output
    assert "1 passed" in result.output and "good.yaml" in result.output


# -- messages ---------------------------------------------------------------------------------------


def test_compare_on_a_shape_without_spatial_axes_is_bad_input(run_cli) -> None:
    result = run_cli(["compare", "--in", "3"])
    assert result.code == 2, result.output
    assert "no standard set" in result.stderr and "--in 3x7x7" in result.stderr


@pytest.mark.parametrize(
    ("text", "line", "must"),
    [
        ("input: 2001-12-14\nlayers: [relu]\n", 1, "'2001-12-14'"),
        ("name: n\ninput:\n  shape: 3x8x8\n  batch: x\nlayers: [relu]\n", 4, "'batch'"),
        ("name: n\ninput:\n  shape: 3xax8\nlayers: [relu]\n", 3, "'input'"),
        ("input: 3x8x8\nlayers: [relu]\n? [a]\n: 1\n", 3, "mapping key"),
        ("input: 3x8x8\nlayers: [relu]\n? {a: 1}\n: 1\n", 3, "mapping key"),
    ],
    ids=["date", "batch", "shape", "list-key", "mapping-key"],
)
def test_errors_in_input_and_keys_name_the_line(run_cli, tmp_path: Path, text: str, line: int, must: str) -> None:
    result = run_cli(["net", write(tmp_path, text)])
    assert result.code == 2, result.output
    assert f"spec.yaml:{line}:" in result.stderr and must in result.stderr
    assert "datetime" not in result.stderr


@pytest.mark.parametrize("expression", ["$2 * 3", "$ * 3", "$"])
def test_a_dollar_without_a_name_says_what_is_wrong(run_cli, tmp_path: Path, expression: str) -> None:
    spec = write(tmp_path, f"input: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: '{expression}', kernel_size: 3}}\n")
    result = run_cli(["net", spec])
    assert result.code == 2, result.output
    assert "spec.yaml:3" in result.stderr and "'$' must start a name" in result.stderr


# -- output hygiene ---------------------------------------------------------------------------------

ESCAPE = "\\e]0;owned\\a"


@pytest.mark.parametrize(
    "text",
    [
        f'input: 3x8x8\nlayers:\n  - {{type: relu, name: "a{ESCAPE}"}}\n',
        'input: 3x8x8\nlayers:\n  - {type: relu, name: "two\\nlines"}\n',
        f'name: "net{ESCAPE}"\ninput: 3x8x8\nlayers: [relu]\n',
        f'input: 3x8x8\nlayers:\n  - {{type: relu, repeat: 2, name: "r{ESCAPE}"}}\n',
    ],
    ids=["layer", "newline", "network", "repeat"],
)
@pytest.mark.parametrize("fmt", ["table", "csv", "markdown", "json"])
def test_names_with_control_characters_are_refused(run_cli, tmp_path: Path, text: str, fmt: str) -> None:
    result = run_cli(["net", write(tmp_path, text), "--format", fmt])
    assert result.code == 2, result.output
    assert "control characters" in result.stderr
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_a_single_layer_name_with_an_escape_is_refused(run_cli) -> None:
    result = run_cli(["layer", "--spec", "-"], input='type: relu\ninput: 3x8x8\nname: "x\\e[2J"\n')
    assert result.code == 2, result.output
    assert "\x1b" not in result.output


def test_error_messages_escape_control_characters(run_cli, tmp_path: Path) -> None:
    result = run_cli(["net", write(tmp_path, f'input: 3x8x8\nlayers:\n  - {{type: "re{ESCAPE}lu"}}\n')])
    assert result.code == 2, result.output
    assert "\x1b" not in result.output and "\\x1b" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["net", "specs/resnet18.yaml"],
        ["net", "specs/resnet18.yaml", "--format", "markdown"],
        ["check", "specs/resnet18.yaml", "specs/unet.yaml"],
        ["shape", "conv2d", "--in", "3x8x8", "-k", "3", "-o", "4"],
        ["types"],
        ["compare", "--in", "3x8x8", "-o", "4", "-k", "3"],
        ["net", "--bogus"],
        ["run", "specs/textcnn.yaml"],
    ],
    ids=lambda args: "-".join(a.replace("/", "_") for a in args[:3]),
)
def test_no_escape_sequence_with_no_color(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convcalc", *args],
        check=False,
        capture_output=True,
        timeout=60,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "NO_COLOR": "1", "TERM": "xterm-256color"},
    )
    assert done.returncode in (0, 2), done.stderr
    assert b"\x1b" not in done.stdout + done.stderr


def test_no_progress_bar_on_a_terminal_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numpy")
    from convcalc.execute import session

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    advance, _ = session._progress(10, True)
    assert advance is None


def test_json_output_of_a_limit_error_is_not_written(run_cli, tmp_path: Path) -> None:
    """A refused spec writes its error to stderr and no half JSON document to stdout."""
    result = run_cli(["net", write(tmp_path, f"input: 3x8x8\nlayers:\n  - {{type: relu, repeat: {HUGE}}}\n"), "--format", "json"])
    assert result.code == 2
    if result.stdout.strip():
        json.loads(result.stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["net", "specs/resnet18.yaml", "--batch", "9" * 4299],
        ["compare", "conv2d", "--in", "3x8x8", "-o", "4", "-k", "3", "--batch", "9" * 4299],
        ["net", "specs/resnet18.yaml", "--batch", "100000000"],
    ],
    ids=["net", "compare", "net-over-max-dim"],
)
def test_a_huge_batch_flag_is_bad_input(run_cli, args: list[str]) -> None:
    result = run_cli([a.replace("specs/", f"{REPO}/specs/") for a in args])
    assert result.code == 2, result.output
    assert "'batch'" in result.stderr and "internal error" not in result.output
    assert len(result.stderr) < 300  # the message does not quote thousands of digits
