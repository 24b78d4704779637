"""Fuzz the CLI in-process (issue 8): generated flags and mutated shipped specs never crash.

Whatever the input, ``convcalc`` answers with exit 0, 1 (a failed check) or 2 (bad input) — never
3 (an internal error), never a traceback — and ``--format json`` that succeeds writes a JSON
document. Specs are the shipped ones, mutated: keys dropped, numbers made huge, negative, zero or
strings, items duplicated, wrapped in nested ``repeat``s, switched off with ``when``.

Bounded: the ``ci`` profile (derandomised) runs :data:`EXAMPLES` examples per test within
:data:`BUDGET` seconds; ``HYPOTHESIS_PROFILE=dev`` runs many more, with new random examples.
The evaluation limits are lowered while fuzzing (so a mutation that multiplies a repeat stays
fast); the real limits have their own tests in ``test_hostile.py``. Every crash found is pinned
below as an ``@example``.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from convcalc.network import evaluate as net_evaluate
from convcalc.parse import yaml as loader

SPECS = Path(__file__).resolve().parents[1] / "specs"
SHIPPED = sorted(p for p in SPECS.rglob("*.yaml"))
DEV = os.environ.get("HYPOTHESIS_PROFILE") == "dev"
EXAMPLES = 400 if DEV else 30
BUDGET = 120.0 if DEV else 6.0
"""Seconds of fuzzing per test: examples drawn after it pass without running (a slow machine
runs fewer examples, never a longer test)."""
LIMITS = {"MAX_LAYERS": 2_000, "MAX_REPEAT": 2_000, "MAX_PASSES": 20_000, "MAX_CALLS": 2_000}
"""Evaluation limits while fuzzing (module attributes of :mod:`convcalc.network.evaluate`)."""

HOSTILE_TEXT = [
    "0", "-1", "-0", "1.5", "1e-100000000", "1e400", "nan", "inf", "9" * 5000, "9" * 41, "16777217",
    "", " ", "x", "3x", "x3", "0x3", "1:2", "$", "$2 * 3", "${", "$in_channels * 99999999", "\x1b]0;t\x07",
    "a\nb", "2001-12-14", "true", "none", "[1, 2", "{a: 1}", "*x", "&a", "!!python/object:os.system",
]  # fmt: skip
HOSTILE: list[object] = [
    0, -1, 1, 2, 3, 2**62, 2**64, -(2**62), 10**40, 0.5, 1e308, -1e-308, True, False, None, [], {}, [0], [[1, 2]], {"a": 1},
    *HOSTILE_TEXT,
]  # fmt: skip


@functools.cache
def _parsed(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def _spec(path: Path) -> object:
    """A fresh copy of a shipped spec (parsed once: generating an example must stay cheap)."""
    return copy.deepcopy(_parsed(path))


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    """A shipped spec after 1 to 6 mutations, as YAML text (sometimes with raw text damage)."""
    data = _spec(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 6))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _get(data, path[:-1]), path[-1]
        op = draw(st.sampled_from(["drop", "replace", "duplicate", "repeat", "when", "nest"]))
        if op == "drop" and isinstance(parent, dict):
            del parent[last]
        elif op == "replace":
            parent[last] = copy.deepcopy(draw(st.sampled_from(HOSTILE)))  # HOSTILE itself stays intact
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(last, parent[last])
        elif op == "repeat" and isinstance(parent[last], dict):
            parent[last] = {**parent[last], "repeat": draw(st.sampled_from([0, 1, 3, 1000, 10**6, "9" * 50, -2, "$i"]))}
        elif op == "when" and isinstance(parent[last], dict):
            parent[last] = {**parent[last], "when": draw(st.sampled_from([False, True, "$i == 0", "$nope", [1], "$"]))}
        elif op == "nest":
            parent[last] = {"repeat": draw(st.integers(0, 50)), "layers": [parent[last], parent[last]]}
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if draw(st.booleans()):
        return text
    cut = draw(st.integers(0, len(text)))  # raw damage: cut, insert hostile text
    return text[:cut] + draw(st.sampled_from(["", "\t", ": :", "&a [*a]", "- ", "'", *HOSTILE_TEXT])) + text[cut:]


FLAG_VALUE = st.one_of(st.sampled_from(HOSTILE_TEXT), st.integers(-3, 70).map(str), st.text(max_size=12))
LAYER_TYPES = ["conv2d", "conv1d", "conv3d", "conv_transpose2d", "separable2d", "depthwise2d", "maxpool2d", "linear",
               "upsample", "deform_conv2d", "Conv2D", "nope", ""]  # fmt: skip
FLAGS = ["--in", "-o", "-k", "-s", "-p", "-d", "-g", "--output-padding", "--batch", "--layout", "--set"]
FORMATS = ["table", "json", "csv", "markdown"]


@st.composite
def layer_args(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["shape", "params", "flops", "rf", "layer", "compare", "solve", "overlap", "types"]))
    args = [command]
    if command != "solve":
        args += draw(st.lists(st.sampled_from(LAYER_TYPES), min_size=0, max_size=2))
    for flag in draw(st.lists(st.sampled_from(FLAGS), max_size=6)):
        value = draw(FLAG_VALUE)
        args += [flag, f"{draw(st.sampled_from(['dilation', 'scale_factor', 'offset_groups', 'x', '']))}={value}"
                 if flag == "--set" else value]  # fmt: skip
    if draw(st.booleans()):
        args += ["--in", draw(st.sampled_from(["3x8x8", "3x16", "3x8x8x8", "8", "3x224x224"]))]
    return [*args, "--format", draw(st.sampled_from(FORMATS))]


def _check(run_cli: Any, args: list[str], input: str | None = None) -> None:
    result = run_cli(args, input=input)
    shown = f"convcalc {args!r} with input {input!r}:\n{result.output}"
    assert result.code in (0, 1, 2), shown
    assert result.exception is None, f"{shown}\n{result.exception!r}"
    assert "Traceback" not in result.output, shown
    assert "internal error" not in result.output, shown
    if result.code == 0 and args[-2:] == ["--format", "json"]:
        json.loads(result.stdout)


class _Clock:
    """The fuzzing budget of one test: generated examples after :data:`BUDGET` seconds do not run
    (the pinned examples, ``pinned=True``, always run)."""

    def __init__(self) -> None:
        self.start: float | None = None

    def within_budget(self) -> bool:
        now = time.monotonic()
        self.start = self.start or now
        return now - self.start < BUDGET


_SPEC_CLOCK, _FLAG_CLOCK = _Clock(), _Clock()


@pytest.fixture(scope="module")
def lowered_limits() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in LIMITS.items():
            patch.setattr(net_evaluate, name, value)
        patch.setattr(loader, "MAX_NODES", 20_000)
        yield


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    text=mutated_specs(),
    fmt=st.sampled_from(FORMATS),
    command=st.sampled_from(["net", "check"]),
    batch=st.sampled_from([None, "0", "-1", "8", "16777217", "9" * 41, "9" * 4299, "x"]),
    pinned=st.just(False),
)
@example(text="input: 3x8x8\nlayers:\n  - {type: relu, repeat: " + "9" * 5000 + "}\n", fmt="json", command="net", batch=None, pinned=True)
@example(text="input: 3x8x8\nlayers:\n  - {type: upsample, scale_factor: 1e-100000000}\n", fmt="table", command="net", batch=None, pinned=True)
@example(text="input: 2001-12-14\nlayers: [relu]\n", fmt="json", command="net", batch=None, pinned=True)
@example(text="input: 3x8x8\nlayers: [relu]\n", fmt="json", command="net", batch="9" * 4299, pinned=True)
@example(text="input: 3x8x8\nlayers:\n  - {type: relu, name: \"\\e]0;t\\a\"}\n", fmt="csv", command="net", batch=None, pinned=True)
@example(text="input: 3x8x8\nlayers:\n  - {repeat: 100, layers: [{repeat: 100, layers: [{type: relu, repeat: 100, when: false}]}]}\n",
         fmt="json", command="net", batch=None, pinned=True)  # fmt: skip
@example(text="input: 3x8x8\ndefine:\n  t:\n    params: {d: 0}\n    layers:\n      - {type: t, d: $d + 1, when: $d < 30}\n"
         "      - {type: t, d: $d + 1, when: $d < 30}\nlayers: [t]\n", fmt="json", command="check", batch=None, pinned=True)  # fmt: skip
@example(text="a: &a [*a]\n", fmt="json", command="net", batch=None, pinned=True)
@example(text="input: 3x8x8\nlayers: [relu]\n? [a]\n: 1\n", fmt="json", command="net", batch=None, pinned=True)
def test_mutated_specs_never_crash(
    run_cli: Any, lowered_limits: None, text: str, fmt: str, command: str, batch: str | None, pinned: bool
) -> None:
    if not pinned and not _SPEC_CLOCK.within_budget():
        return
    args = [command, "-"] + (["--batch", batch] if batch is not None and command == "net" else [])
    args += ["--format", fmt] if command == "net" else []
    _check(run_cli, args, input=text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(args=layer_args(), pinned=st.just(False))
@example(args=["compare", "--in", "3", "--format", "json"], pinned=True)
@example(args=["shape", "conv2d", "--in", "3x8x8", "-k", "3", "-o", "9" * 5000, "--format", "json"], pinned=True)
@example(args=["shape", "upsample", "--in", "3x8x8", "--set", "scale_factor=1e-100000000", "--format", "table"], pinned=True)
@example(args=["layer", "conv2d", "--in", "3x8x8", "-k", "3", "-o", "4", "--set", "dilation=" + "9" * 5000, "--format", "csv"], pinned=True)
def test_generated_flags_never_crash(run_cli: Any, args: list[str], pinned: bool) -> None:
    if not pinned and not _FLAG_CLOCK.within_budget():
        return
    _check(run_cli, args)
