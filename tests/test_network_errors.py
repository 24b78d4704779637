"""Bad network specs: every case fails with a clear error naming ``file:line`` (and the layer where
there is one), exit code 2 through the CLI, quickly, never a hang and never a traceback."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from convcalc.errors import ConvcalcError, LimitError, ShapeError, SpecError
from convcalc.network.evaluate import evaluate_file
from convcalc.network.result import NetworkError
from convcalc.network.spec import MAX_LAYERS

SECONDS = 5.0
"""Every case must fail within this time (the work is bounded by the documented limits)."""


@dataclass(frozen=True)
class Bad:
    text: str
    error: type[ConvcalcError]
    line: int | None  # the line the message must name (None: the file alone)
    must: tuple[str, ...]


def case(id_: str, text: str, error: type[ConvcalcError], line: int | None, *must: str) -> object:
    return pytest.param(Bad(text, error, line, must), id=id_)


HEAD = "input: 3x16x16\nlayers:\n"
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 8)
)
NESTED_YAML = "input: 3x8x8\nlayers:\n  - " + "{layers: [" * 40 + "relu" + "]}" * 40 + "\n"
TEMPLATE_CHAIN = "input: 3x8x8\ndefine:\n" + "".join(f"  t{i}: [t{i + 1}]\n" for i in range(40)) + "  t40: [relu]\nlayers: [t0]\n"

CASES = [
    # --- references --------------------------------------------------------------------------------
    case("unknown-reference", HEAD + "  - {type: conv2d, name: stem, out_channels: 4, kernel_size: 1}\n  - {type: add, inputs: [stem, nope]}\n",
         SpecError, 4, "unknown reference 'nope'", "layer '1'"),
    case("reference-typo", HEAD + "  - {type: conv2d, name: stem, out_channels: 4, kernel_size: 1}\n  - {type: relu, input: stme}\n",
         SpecError, 4, "unknown reference 'stme'", "Did you mean 'stem'"),
    case("cycle", HEAD + "  - {type: relu, name: a, input: b}\n  - {type: relu, name: b, input: a}\n",
         SpecError, 3, "'b' is referenced before it is evaluated (it is defined at line 4)", "cycle"),
    case("self-reference", HEAD + "  - relu\n  - {type: add, name: loop, inputs: [previous, loop]}\n",
         SpecError, 4, "'loop' is referenced before it is evaluated", "layer 'loop'"),
    case("duplicate-names", HEAD + "  - {type: relu, name: act}\n  - {type: relu, name: act}\n",
         SpecError, 4, "the name 'act' is used twice", "first at line 3"),
    case("duplicate-through-unnamed-block", HEAD + "  - {type: relu, name: act}\n  - layers: [{type: relu, name: act}]\n",
         SpecError, 4, "the name 'act' is used twice in the network"),
    case("reserved-name", HEAD + "  - {type: relu, name: a.b}\n", SpecError, 3, "the name 'a.b' is not allowed"),
    # --- templates -----------------------------------------------------------------------------------
    case("template-missing-parameter",
         "input: 3x8x8\ndefine:\n  blk:\n    params: {width: required}\n    layers: [{type: conv2d, out_channels: $width, kernel_size: 1}]\n"
         "layers:\n  - {type: blk, name: b1}\n", SpecError, 7, "template 'blk' needs the parameter 'width'", "test.yaml:3"),
    case("template-unknown-parameter",
         "input: 3x8x8\ndefine:\n  blk:\n    params: {width: 4}\n    layers: [{type: conv2d, out_channels: $width, kernel_size: 1}]\n"
         "layers:\n  - {type: blk,\n     widht: 8}\n", SpecError, 8, "template 'blk' has no parameter 'widht'", "Did you mean 'width'"),
    case("template-named-like-a-type", "input: 3x8x8\ndefine:\n  conv2d: [relu]\nlayers: [relu]\n",
         SpecError, 3, "template 'conv2d' has the name of the layer type 'conv2d'"),
    case("expression-unknown-name",
         "input: 3x8x8\ndefine:\n  blk:\n    params: {width: 4}\n    layers:\n      - {type: conv2d, out_channels: $width * $growth, kernel_size: 1}\n"
         "layers: [blk]\n", SpecError, 6, "uses the unknown name 'growth'", "layer '0.0'"),
    case("expression-not-allowed", HEAD + "  - {type: conv2d, out_channels: \"${__import__('os')}\", kernel_size: 1}\n",
         SpecError, 3, "which template expressions do not allow"),
    case("recursive-template-without-stop",
         "input: 3x8x8\ndefine:\n  loop:\n    layers:\n      - relu\n      - loop\nlayers: [loop]\n",
         LimitError, 6, f"nest deeper than {32} levels", "loop -> loop", "'when'"),
    case("template-chain-too-deep", TEMPLATE_CHAIN, LimitError, None, "nest deeper than 32 levels"),
    # --- layers ----------------------------------------------------------------------------------------
    case("unknown-type", HEAD + "  - relu\n  - rleu\n", SpecError, 4, "unknown layer type 'rleu'", "Did you mean 'relu'"),
    case("unknown-field", HEAD + "  - {type: conv2d, out_channels: 4,\n     kernal_size: 3}\n",
         SpecError, 4, "conv2d has no field 'kernal_size'", "Did you mean 'kernel_size'"),
    case("missing-field", HEAD + "  - {type: conv2d, name: c, kernel_size: 3}\n", SpecError, 3, "needs the field 'out_channels'", "layer 'c'"),
    case("rank-mismatch", "input: 3x16\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n",
         ShapeError, 3, "conv2d expects an input with 2 spatial axes"),
    case("kernel-too-large", HEAD + "  - {type: maxpool2d, kernel_size: 2}\n  - {type: conv2d, name: big, out_channels: 4, kernel_size: 9}\n",
         ShapeError, 4, "layer 'big'", "larger than the padded input"),
    case("not-a-mapping", HEAD + "  - 42\n", SpecError, 3, "must be a mapping"),
    case("type-and-layers", HEAD + "  - {type: relu, layers: [relu]}\n", SpecError, 3, "exactly one of 'type', 'layers'"),
    case("block-unknown-key", HEAD + "  - {layers: [relu], merge: add}\n", SpecError, 3, "a 'layers' block has no key 'merge'"),
    # --- merges ------------------------------------------------------------------------------------------
    case("add-shape-mismatch",
         HEAD + "  - {type: conv2d, name: a, out_channels: 8, kernel_size: 1}\n  - {type: conv2d, name: b, out_channels: 4, kernel_size: 1}\n"
         "  - {type: add, name: sum, inputs: [a, b]}\n", ShapeError, 5, "layer 'sum'", "'a' 8x16x16 and 'b' 4x16x16"),
    case("residual-mismatch-names-both-branches",
         HEAD + "  - {type: conv2d, name: stem, out_channels: 8, kernel_size: 1}\n  - name: block\n    residual:\n"
         "      - {type: conv2d, name: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}\n",
         ShapeError, 4, "layer 'block.add'", "'block.conv' 8x8x8 and 'stem' 8x16x16"),
    case("concat-spatial-mismatch",
         HEAD + "  - {type: maxpool2d, name: half, kernel_size: 2}\n  - {type: concat, inputs: [half, input]}\n",
         ShapeError, 4, "concat needs equal spatial sizes", "'half' 3x8x8", "'input' 3x16x16"),
    case("multiply-not-broadcastable",
         HEAD + "  - {type: conv2d, name: a, out_channels: 4, kernel_size: 1}\n  - {type: multiply, inputs: [a, input]}\n",
         ShapeError, 4, "multiply needs broadcastable shapes"),
    case("merge-without-inputs", HEAD + "  - {type: concat}\n", SpecError, 3, "concat needs 'inputs'"),
    case("one-branch", HEAD + "  - {branches: [[relu]], merge: add}\n", SpecError, 3, "at least two branches"),
    case("branches-without-merge", HEAD + "  - {branches: [[relu], []]}\n", SpecError, 3, "branches need 'merge"),
    # --- the top level ---------------------------------------------------------------------------------------
    case("unknown-top-key", "input: 3x8x8\nlayer: [relu]\n", SpecError, 2, "has no key 'layer'", "Did you mean 'layers'"),
    case("missing-input", "layers: [relu]\n", SpecError, 1, "the network has no 'input'"),
    case("bad-input-shape", "input: 1x2x3x4x5\nlayers: [relu]\n", SpecError, 1, "'input' must have 1 to 4 sizes"),
    case("empty-layers", "input: 3x8x8\nlayers: []\n", SpecError, 2, "'layers' must be a non-empty list"),
    case("unknown-default", "input: 3x8x8\ndefaults: {bais: false}\nlayers: [relu]\n",
         SpecError, 2, "'defaults' names 'bais'", "Did you mean 'bias'"),
    case("each-length", HEAD + "  - {type: relu, repeat: 3, each: {inplace: [true, false]}}\n",
         SpecError, 3, "'each: inplace' must be a list of 3 values"),
    case("expect-unknown-key", "input: 3x8x8\nlayers: [relu]\nexpect: {max_param: 3}\n", SpecError, 3, "has no key 'max_param'", "max_params"),
    case("expect-not-a-number", "input: 3x8x8\nlayers: [relu]\nexpect: {params: many}\n", SpecError, 3, "'params' must be a whole number"),
    case("malformed-yaml", "input: 3x8x8\nlayers:\n  - {type: relu\n", SpecError, 4, "malformed YAML"),
    # --- limits: refused at once, never a hang ----------------------------------------------------------------
    case("repeat-a-billion", HEAD + "  - {type: relu, repeat: 1000000000}\n", LimitError, 3,
         "repeat: 1,000,000,000 would exceed the limit of 100,000 layers"),
    case("nested-repeats-beyond-the-layer-limit",
         "input: 3x8x8\ndefine:\n  inner: [{type: relu, repeat: 400}]\nlayers:\n  - {type: inner, repeat: 400}\n",
         LimitError, 5, "repeat: 400 repetitions of 400 layers would exceed the limit of 100,000 layers"),
    case("alias-bomb", "input: 3x8x8\n" + BOMB + "layers: [relu]\n", LimitError, None, "an alias bomb"),
    case("recursive-alias", "input: 3x8x8\nlayers: &l [*l]\n", LimitError, None, "nests deeper than 64 levels"),
    case("deeply-nested-yaml", NESTED_YAML, LimitError, None, "nest"),
]  # fmt: skip


@pytest.mark.parametrize("bad", CASES)
def test_bad_spec_fails_clearly_and_quickly(tmp_path: Path, bad: Bad) -> None:
    spec = tmp_path / "test.yaml"
    spec.write_text(bad.text)
    started = time.perf_counter()
    with pytest.raises(ConvcalcError) as caught:
        evaluate_file(str(spec))
    assert time.perf_counter() - started < SECONDS
    err = caught.value.cause if isinstance(caught.value, NetworkError) else caught.value
    assert isinstance(err, bad.error), f"{type(err).__name__}: {err}"
    assert err.exit_code == 2
    message = str(caught.value)
    prefix = f"{spec}:{bad.line}:" if bad.line is not None else f"{spec}"
    assert message.startswith(prefix), message
    for text in bad.must:
        assert text.replace("test.yaml", str(spec)) in message, message


@pytest.mark.parametrize("bad", CASES[:4] + CASES[-4:])
def test_bad_spec_through_the_cli(run_cli, tmp_path: Path, bad: Bad) -> None:
    spec = tmp_path / "test.yaml"
    spec.write_text(bad.text)
    result = run_cli(["net", str(spec)])
    assert result.code == 2
    assert result.stderr.startswith(f"error: {spec}"), result.stderr
    assert result.stderr.count("\n") == 1, "one paragraph"
    assert "Traceback" not in result.output
    check = run_cli(["check", str(spec)])
    assert check.code == 2
    assert "ERROR" in check.stdout


def test_the_error_carries_the_rows_evaluated_before_it(tmp_path: Path) -> None:
    spec = tmp_path / "partial.yaml"
    spec.write_text(HEAD + "  - {type: conv2d, name: a, out_channels: 4, kernel_size: 3}\n  - {type: relu, name: r}\n  - rleu\n")
    with pytest.raises(NetworkError) as caught:
        evaluate_file(str(spec))
    partial = caught.value.partial
    assert not partial.complete
    assert [(r.name, r.output_shape) for r in partial.rows] == [("a", (4, 14, 14)), ("r", (4, 14, 14))]


def test_too_many_layers_without_repeat_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "wide.yaml"
    # 2 x 60,000 = 120,000 layers written out through a template: refused at the limit, in bounded time
    spec.write_text("input: 4\ndefine:\n  two: [relu, relu]\nlayers:\n  - {type: two, repeat: 60000}\n")
    started = time.perf_counter()
    with pytest.raises(NetworkError) as caught:
        evaluate_file(str(spec))
    assert isinstance(caught.value.cause, LimitError)
    assert f"{MAX_LAYERS:,}" in str(caught.value)
    assert time.perf_counter() - started < SECONDS
