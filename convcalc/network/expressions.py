"""Template expressions (``$width * 4``, ``${make_divisible(c * 0.75, 8)}``): an ``ast`` whitelist
of integers, exact decimals, strings, names, ``+ - * // %``, comparisons, ``and/or/not``, ``a if c
else b`` and three functions (``min``, ``max``, ``make_divisible``); never ``eval``. Numbers are
exact: a decimal (``0.75`` in an expression or in YAML) is the :class:`~fractions.Fraction` it
spells, and a rational result with denominator 1 is an ``int``. Values are bounded
(:data:`MAX_EXPRESSION`, :data:`MAX_VALUE`) so a hostile spec cannot spend unbounded time or memory.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import cast

from convcalc.errors import LimitError, SpecError, did_you_mean
from convcalc.parse.located import LineDict, LineList

MAX_EXPRESSION = 200
"""Longest template expression, in characters."""
MAX_VALUE = 1 << 62
"""Largest magnitude of any intermediate value of a template expression (numerator and denominator)."""

Number = int | Fraction

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_ORDER: dict[type[ast.cmpop], Callable[[Number, Number], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_COMPARE: tuple[type[ast.AST], ...] = (ast.Eq, ast.NotEq, *_ORDER)
_ALLOWED: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.IfExp, ast.Call, ast.Name, ast.Constant,
    ast.Load, ast.USub, ast.UAdd, ast.Not, ast.And, ast.Or, *_BINARY, *_COMPARE,
)  # fmt: skip
_ALLOWED_TEXT = "integers, decimals, 'strings', names, + - * // %, ( ), comparisons, and/or/not, a if c else b, min, max, make_divisible"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONSTANTS: dict[str, object] = {"true": True, "false": False, "True": True, "False": False}


def exact(value: float) -> Fraction:
    """The decimal a float was written as (``0.75`` -> 3/4, ``0.1`` -> 1/10, not the binary double):
    YAML and Python both give back the shortest decimal that reads as the same double."""
    return Fraction(repr(value))


def normal(value: Number) -> Number:
    """A whole fraction as an ``int`` (so sizes computed through ``0.75 * 64`` are integers)."""
    return value.numerator if isinstance(value, Fraction) and value.denominator == 1 else value


def make_divisible(value: Number, divisor: Number, min_value: Number | None = None) -> int:
    """torchvision's ``_make_divisible`` (``torchvision/models/_utils.py``), exactly::

        new = max(min_value or divisor, int(value + divisor / 2) // divisor * divisor)
        if new < 0.9 * value: new += divisor      # do not round down by more than 10 %

    computed over exact fractions (torchvision's floats agree wherever they are exact).
    """
    if divisor <= 0 or (isinstance(divisor, Fraction) and divisor.denominator != 1):
        raise SpecError(f"make_divisible needs a positive whole divisor, got {_text(divisor)}.")
    d = int(divisor)
    new = max(min_value or d, int(value + Fraction(d, 2)) // d * d)
    if new < Fraction(9, 10) * value:
        new += d
    if isinstance(new, Fraction):
        if new.denominator != 1:
            raise SpecError(f"make_divisible: min_value {_text(new)} is not a whole number.")
        new = new.numerator
    return int(new)


def _min(*values: Number) -> Number:
    return min(values)


def _max(*values: Number) -> Number:
    return max(values)


FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "min": (_min, 2, 16),
    "max": (_max, 2, 16),
    "make_divisible": (make_divisible, 2, 3),
}
"""The functions expressions may call: name -> (function, fewest and most arguments)."""


@functools.lru_cache(maxsize=4096)
def _parse_expression(text: str) -> ast.Expression:
    """Parse and whitelist once per distinct text (templates repeat the same expressions)."""
    if len(text) > MAX_EXPRESSION:
        raise LimitError(f"the expression '{text[:40]}...' is longer than {MAX_EXPRESSION} characters.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise SpecError(f"'{text}' is not a valid expression.", hint=f"Use {_ALLOWED_TEXT}.") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            hint = "Use // for division (it rounds down)." if isinstance(node, ast.Div) else f"Allowed: {_ALLOWED_TEXT}."
            raise SpecError(f"'{text}' uses {type(node).__name__}, which template expressions do not allow.", hint=hint)
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, (int, float, str))
        ):
            raise SpecError(f"'{text}' contains the literal {node.value!r}; only numbers and 'strings' are allowed.")
        if isinstance(node, ast.Call):
            _check_call(node, text)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and abs(node.value) > MAX_VALUE:
            raise LimitError(f"'{text}' contains a number beyond ±2^62.")
    return tree


def _check_call(node: ast.Call, text: str) -> None:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in FUNCTIONS:
        called = name or ast.unparse(node.func)
        raise SpecError(
            f"'{text}' calls '{called}', which template expressions do not allow: they may call only {', '.join(FUNCTIONS)}.",
            hint="Write the arithmetic with + - * // % instead.",
        )
    _, fewest, most = FUNCTIONS[name]
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args) or not fewest <= len(node.args) <= most:
        raise SpecError(
            f"in '{text}', {name} takes {fewest} to {most} plain arguments, got {len(node.args)}"
            + (" and keywords." if node.keywords else "."),
            hint="Example: make_divisible(c * 0.75, 8), max(1, c // 4).",
        )


def _text(value: object) -> str:
    return f"{value.numerator}/{value.denominator}" if isinstance(value, Fraction) else repr(value)


def _number(value: object, name: str, text: str) -> Number:
    if isinstance(value, float):
        return exact(value)
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        what = _text(value) if name == _text(value) else f"'{name}' is {_text(value)}, which"
        raise SpecError(f"in '{text}', {what} is not a number.")
    return value


def _bounded(value: Number, text: str) -> Number:
    parts = (value.numerator, value.denominator) if isinstance(value, Fraction) else (value,)
    if any(abs(p) > MAX_VALUE for p in parts):
        raise LimitError(f"'{text}' produces a value beyond ±2^62.")
    return normal(value)


def _eval(node: ast.AST, variables: Mapping[str, object], text: str) -> object:
    if isinstance(node, ast.Constant):
        return _bounded(exact(node.value), text) if isinstance(node.value, float) else node.value
    if isinstance(node, ast.Name):
        return _lookup(node.id, variables, text)
    if isinstance(node, ast.BinOp):
        left = _number(_eval(node.left, variables, text), ast.unparse(node.left), text)
        right = _number(_eval(node.right, variables, text), ast.unparse(node.right), text)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and right == 0:
            raise SpecError(f"'{text}' divides by zero.")
        return _bounded(_BINARY[type(node.op)](left, right), text)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, variables, text)
        if isinstance(node.op, ast.Not):
            return not operand
        number = _number(operand, ast.unparse(node.operand), text)
        return normal(-number if isinstance(node.op, ast.USub) else number)
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, variables, text) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        chosen = node.body if _eval(node.test, variables, text) else node.orelse
        return _eval(chosen, variables, text)
    if isinstance(node, ast.Call):
        function, _, _ = FUNCTIONS[cast(ast.Name, node.func).id]  # a Name: _check_call made sure
        args = [_number(_eval(a, variables, text), ast.unparse(a), text) for a in node.args]
        try:
            return _bounded(function(*args), text)
        except SpecError as err:
            raise SpecError(f"in '{text}', {err.message}", hint=err.hint) from None
    if isinstance(node, ast.Compare):
        return _compare(node, variables, text)
    raise SpecError(f"'{text}' cannot be evaluated.")  # unreachable: the whitelist admits nothing else


def _lookup(name: str, variables: Mapping[str, object], text: str) -> object:
    if name in variables:
        value = variables[name]
        return _bounded(exact(value), text) if isinstance(value, float) else value
    if name in CONSTANTS:
        return CONSTANTS[name]
    raise SpecError(
        f"'{text}' uses the unknown name '{name}'.{did_you_mean(name, list(variables))}",
        hint=f"Known names here: {', '.join(sorted(variables)) or 'none'}.",
    )


def _compare(node: ast.Compare, variables: Mapping[str, object], text: str) -> bool:
    """Chained comparisons; ``==``/``!=`` compare any values, ordering needs numbers."""
    a = _eval(node.left, variables, text)
    for op, right in zip(node.ops, node.comparators, strict=True):
        b = _eval(right, variables, text)
        if isinstance(op, (ast.Eq, ast.NotEq)):
            holds = (a == b) == isinstance(op, ast.Eq)
        else:
            holds = _ORDER[type(op)](_number(a, ast.unparse(node.left), text), _number(b, ast.unparse(right), text))
        if not holds:
            return False
        a = b
    return True


def evaluate_expression(text: str, variables: Mapping[str, object]) -> object:
    """Evaluate a template expression over ``variables`` (no ``eval``; see the module docstring)."""
    return _eval(_parse_expression(text).body, variables, text)


def substitute(value: object, variables: Mapping[str, object]) -> object:
    """Evaluate template expressions in ``value`` and, recursively, in its lists and mappings.

    - A string with ``$`` before a name is an expression: ``$width``, ``$width * 4``,
      ``$stride == 1 and $in_channels == $out``, ``not $flag`` (the ``$`` before a name is
      optional after the first one), and so is a string that is exactly one ``${...}``. Its value keeps its type
      (a number, a boolean, a string, a list of layers...).
    - Inside any other string, each ``${expr}`` is replaced by its value's text:
      ``"denselayer${i + 1}"`` -> ``denselayer1`` (a ``$`` outside the braces is an error).
    Other strings are left alone.
    """
    if isinstance(value, str):
        return _substitute_text(value, variables) if "$" in value else value
    if isinstance(value, (LineDict, LineList)) and not value.dynamic:
        return value  # nothing to substitute (known when loaded: shared YAML values are not re-walked)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return with_lines(value, {k: substitute(v, variables) for k, v in value.items()})
    return value


_DOLLAR = re.compile(r"('[^']*'|\"[^\"]*\")|\$(?=[A-Za-z_])")
"""A quoted string (kept) or a ``$`` before a name (dropped)."""
_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")


def _substitute_text(text: str, variables: Mapping[str, object]) -> object:
    body = text.strip()
    whole = _INTERPOLATION.fullmatch(body)
    if whole:
        return _evaluate_text(text, whole.group(1), variables)
    if "${" not in body:
        return _evaluate_text(text, body, variables)
    parts = _INTERPOLATION.split(text)  # text, expression, text, ...
    for index in range(1, len(parts), 2):
        parts[index] = _format(_evaluate_text(text, parts[index], variables), text)
    if any("$" in part for part in parts[::2]):
        raise _misplaced_dollar(text)
    return "".join(parts)


def _evaluate_text(text: str, expression: str, variables: Mapping[str, object]) -> object:
    expression = _DOLLAR.sub(lambda m: m.group(1) or "", expression)
    outside = _DOLLAR.sub(lambda m: "", re.sub(r"'[^']*'|\"[^\"]*\"", "", expression))
    if "$" in outside or not expression.strip():
        raise _misplaced_dollar(text)
    return evaluate_expression(expression, variables)


def _misplaced_dollar(text: str) -> SpecError:
    return SpecError(
        f"'{text}' is not a template expression: a '$' must start a name ($width) or a braced expression (${{2 * 3}}).",
        hint="Write $name, an expression such as $width * 4, or ${...} inside other text (\"layer${i + 1}\").",
    )


def _format(value: object, text: str) -> str:
    """How an interpolated value reads in text: ``3``, ``3/4``, ``true``, strings as they are."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, Fraction, str)):
        return _text(value) if isinstance(value, Fraction) else str(value)
    raise SpecError(f"in '{text}', an interpolated ${{...}} gives {type(value).__name__}, not a number or string.")


def with_lines(original: Mapping[str, object], values: Mapping[str, object]) -> LineDict:
    """A :class:`LineDict` holding ``values`` with the lines of ``original`` (where known)."""
    out = LineDict()
    out.update(values)
    if isinstance(original, LineDict):
        out.line = original.line
        out.lines = dict(original.lines)
    return out
