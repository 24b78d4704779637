"""Issue 9's expressions, computed names and positions.

References: a direct port of torchvision's ``_make_divisible`` (floats, on inputs where floats are
exact), Python's own evaluation of the same expression text, f-strings for interpolation, and the
names ``nn.Sequential`` gives to the modules torchvision appends conditionally.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from convcalc.errors import ConvcalcError, SpecError
from convcalc.network.evaluate import evaluate_network
from convcalc.network.expressions import evaluate_expression, make_divisible, substitute
from convcalc.network.spec import parse_network
from convcalc.parse.yaml import load_text


def net_rows(text: str) -> list[str]:
    return [r.name for r in evaluate_network(parse_network(load_text(text, "t.yaml"), "t.yaml")).rows]


def torchvision_make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision/models/_utils.py, verbatim."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    # Make sure that round down does not go down by more than 10%.
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@given(
    st.integers(0, 1 << 20),
    st.sampled_from([1, 2, 4, 8, 16]),  # v = n / den: exactly representable as a float
    st.integers(1, 256),
    st.one_of(st.none(), st.integers(1, 512)),
)
@example(72 // 4, 1, 8, None)  # mobilenet_v3's SE squeeze: 24, not 18
@example(16 * 3, 4, 8, None)  # 16 channels x width 0.75 = 12 -> 16
@example(9, 1, 8, None)  # 9 -> 8 would lose more than 10 %: 16
def test_make_divisible_is_torchvisions(n: int, den: int, divisor: int, min_value: int | None) -> None:
    ours = make_divisible(Fraction(n, den), divisor, min_value)
    assert ours == torchvision_make_divisible(n / den, divisor, min_value)
    assert isinstance(ours, int)
    text = f"make_divisible(v, {divisor}" + ("" if min_value is None else f", {min_value}") + ")"
    assert evaluate_expression(text, {"v": Fraction(n, den)}) == ours


def test_decimals_are_exact_in_yaml_and_in_expressions() -> None:
    # 0.1 + 0.2 is 3/10 here (it is 0.30000000000000004 in floats): the decimal as written.
    assert evaluate_expression("(0.1 + 0.2) * 10", {}) == 3
    assert evaluate_expression("w * 10", {"w": 0.1}) == 1  # a YAML float variable
    assert evaluate_expression("64 * 0.75", {}) == 48 and isinstance(evaluate_expression("64 * 0.75", {}), int)
    assert evaluate_expression("10 * 0.75", {}) == Fraction(15, 2)
    text = "input: 3x8x8\nvariables: {w: 0.75}\nlayers:\n  - {type: conv2d, out_channels: '${make_divisible(16 * w, 8)}', kernel_size: 1}\n"
    result = evaluate_network(parse_network(load_text(text, "t.yaml"), "t.yaml"))
    assert result.output_shape == (16, 8, 8)


def test_sizes_must_end_as_integers() -> None:
    text = "input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: '${10 * 0.75}', kernel_size: 1}\n"
    with pytest.raises(ConvcalcError, match=r"out_channels' must be an integer, but its expression gives 15/2"):
        net_rows(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("${'hardswish' if act == 'HS' else 'relu'}", "hardswish"),
        ("$act == 'HS'", True),
        ("${act != 'HS'}", False),
        ("${min(8, c // 4, 5)}", 5),
        ("${max(1, c // 64)}", 1),
        ("${c}", 24),
        ("$c if c > 100 else -c", -24),
        ("${c > 3 and act == 'HS'}", True),
        ("'$c'", "$c"),  # a '$' inside a string literal stays
    ],
)
def test_strings_comparisons_conditionals_min_max(text: str, value: object) -> None:
    got = substitute(text, {"act": "HS", "c": 24})
    assert got == value and type(got) is type(value)


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6), st.text("ab_- .", max_size=5))
def test_interpolation_is_the_f_string(a: int, b: int, text: str) -> None:
    template = f"{text}${{a}}{text}${{a * b + 1}}x${{a > b}}"
    assert substitute(template, {"a": a, "b": b}) == f"{text}{a}{text}{a * b + 1}x{str(a > b).lower()}"


@given(st.integers(-(10**9), 10**9), st.integers(1, 10**9), st.integers(-(10**3), 10**3))
def test_whole_expressions_are_python_arithmetic(a: int, b: int, c: int) -> None:
    text = "(a + c) * b // 7 - a % b if a > c else min(a, b, c) - max(a, c)"
    assert substitute("${" + text + "}", {"a": a, "b": b, "c": c}) == eval(text, {}, {"a": a, "b": b, "c": c})  # Python itself is the reference


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$2 * 3", r"'\$' must start a name \(\$width\) or a braced expression"),
        ("layer${i}$x", r"'\$' must start a name"),
        ("${1 / 2}", "Use // for division"),
        ("${a.b}", "Attribute"),
    ],
)
def test_mistakes_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        substitute(text, {"i": 1, "x": 2, "a": 3})


def test_names_are_computed() -> None:
    text = """
input: 3x8x8
define:
  unit:
    params: {t: required}
    layers: [{type: relu, name: $t}, {type: relu, name: "${t}_${in_channels}"}]
layers:
  - {type: unit, name: u, t: act}
"""
    assert net_rows(text) == ["u.act", "u.act_3"]


def test_a_repeat_with_a_computed_name_names_each_repetition_in_the_enclosing_block() -> None:
    # torchvision's _DenseBlock: self.add_module("denselayer%d" % (i + 1), layer)
    text = """
input: 3x8x8
layers:
  - name: block
    layers:
      - {type: conv2d, out_channels: 4, kernel_size: 1}
      - {type: relu, name: "act${i + 1}", repeat: 3}
      - {type: relu}
"""
    assert net_rows(text) == ["block.0", "block.act1", "block.act2", "block.act3", "block.4"]


def test_a_name_that_is_no_name_is_refused() -> None:
    text = "input: 3x8x8\nlayers:\n  - {type: relu, name: '${1 > 0}'}\n"
    with pytest.raises(ConvcalcError, match="evaluates to True, not a name"):
        net_rows(text)


@pytest.mark.parametrize("keep", [(True, True, True), (False, True, True), (True, False, True), (False, False, False)])
def test_skipped_items_take_no_position(keep: tuple[bool, bool, bool]) -> None:
    """torchvision's ``layers = []; if cond: layers.append(...)``: nn.Sequential numbers what was
    appended, 0, 1, 2... A skipped bare item, typed item or block leaves no gap."""
    pytest.importorskip("torch")
    from torch import nn

    a, b, c = (str(k).lower() for k in keep)
    text = f"""
input: 3x8x8
layers:
  - {{type: conv2d, out_channels: 4, kernel_size: 1}}
  - {{type: relu, when: {a}}}
  - {{layers: [{{type: conv2d, out_channels: 4, kernel_size: 1}}], when: {b}}}
  - {{type: conv2d, out_channels: 4, kernel_size: 1, when: {c}}}
  - {{type: relu}}
"""
    modules: list[nn.Module] = [nn.Conv2d(3, 4, 1)]
    for kept, module in zip(keep, (nn.ReLU(), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)), strict=True):
        if kept:
            modules.append(module)
    modules.append(nn.ReLU())
    assert net_rows(text) == [name for name, _ in nn.Sequential(*modules).named_children()]


# ----------------------------------------------------------------------------------------------
# include: templates and variables from other files
# ----------------------------------------------------------------------------------------------


def _write(tmp_path: object, files: dict[str, str]) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_include_brings_templates_and_variables_relative_to_the_including_file(tmp_path: object) -> None:
    from convcalc.network.evaluate import evaluate_file

    _write(
        tmp_path,
        {
            "lib/blocks.yaml": "include: [more/width.yaml]\ndefine:\n  unit:\n    params: {out: $width}\n"
            "    layers: [{type: conv2d, name: conv, out_channels: $out, kernel_size: 3, padding: 1}]\n",
            "lib/more/width.yaml": "variables: {width: 8}\n",
            "net.yaml": "include: [lib/blocks.yaml]\ninput: 3x8x8\nlayers:\n  - {type: unit, name: a}\n  - {type: unit, name: b, out: 4}\n",
        },
    )
    result = evaluate_file(f"{tmp_path}/net.yaml")
    assert [r.name for r in result.rows] == ["a.conv", "b.conv"]
    assert result.output_shape == (4, 8, 8)
    assert result.rows[0].params == 3 * 8 * 9 + 8  # weights + bias: width 8 from the file the include included


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "include: [b.yaml]\nvariables: {w: 1}\n", "b.yaml": "include: [a.yaml]\n"}, r"b.yaml:1: .include. makes a cycle: a.yaml -> b.yaml -> a.yaml"),
        ({"a.yaml": "variables: {w: 1}\n"}, r"the variable 'w' is defined both in .*a.yaml and in .*net.yaml"),
        ({"a.yaml": "define: {t: [relu]}\n", "b.yaml": "define: {t: [relu]}\n"}, r"the template 't' is defined both in .*a.yaml and in .*b.yaml"),
        ({"a.yaml": "bogus: 1\n"}, r"an included spec has no key 'bogus'"),
        ({"a.yaml": "include: missing.yaml\n"}, r"'missing.yaml'|missing.yaml' does not exist"),
    ],
)
def test_include_errors_name_the_files(tmp_path: object, files: dict[str, str], message: str) -> None:
    from convcalc.network.spec import load_network

    includes = sorted(n for n in files if n in ("a.yaml", "b.yaml") and not files[n].startswith("include: [a"))
    main = f"include: {includes}\ninput: 3x8x8\nvariables: {{w: 2}}\nlayers: [relu]\n"
    _write(tmp_path, {**files, "net.yaml": main})
    with pytest.raises(ConvcalcError, match=message):
        load_network(f"{tmp_path}/net.yaml")


def test_a_file_included_twice_by_different_routes_is_read_once(tmp_path: object) -> None:
    from convcalc.network.spec import load_network

    _write(
        tmp_path,
        {
            "a.yaml": "include: [c.yaml]\n",
            "b.yaml": "include: [c.yaml]\n",
            "c.yaml": "define: {t: [relu]}\n",
            "net.yaml": "include: [a.yaml, b.yaml]\ninput: 3x8x8\nlayers: [t]\n",
        },
    )
    assert list(load_network(f"{tmp_path}/net.yaml").templates) == ["t"]


def test_include_depth_is_bounded(tmp_path: object) -> None:
    from convcalc.errors import LimitError
    from convcalc.network.spec import MAX_INCLUDE_DEPTH, load_network

    files = {f"f{k}.yaml": f"include: [f{k + 1}.yaml]\n" for k in range(MAX_INCLUDE_DEPTH + 2)}
    files["net.yaml"] = "include: [f0.yaml]\ninput: 3x8x8\nlayers: [relu]\n"
    files[f"f{MAX_INCLUDE_DEPTH + 2}.yaml"] = "variables: {}\n"
    _write(tmp_path, files)
    with pytest.raises(LimitError, match="nests deeper than"):
        load_network(f"{tmp_path}/net.yaml")


def test_errors_in_an_included_template_point_into_its_file(tmp_path: object) -> None:
    from convcalc.network.evaluate import evaluate_file

    _write(
        tmp_path,
        {
            "a.yaml": "define:\n  t:\n    layers:\n      - {type: conv2d, out_channels: 4, kernel_size: 3, bogus: 1}\n",
            "net.yaml": "include: [a.yaml]\ninput: 3x8x8\nlayers: [t]\n",
        },
    )
    with pytest.raises(ConvcalcError, match=r"a\.yaml:4"):
        evaluate_file(f"{tmp_path}/net.yaml")
