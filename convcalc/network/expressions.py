"""Template expressions (``$width * 4``): an ``ast`` whitelist of integers, names, ``+ - * // %``,
comparisons and ``and/or/not``; never ``eval``. Values are bounded (:data:`MAX_EXPRESSION`,
:data:`MAX_VALUE`) so a hostile spec cannot spend unbounded time or memory.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable, Mapping

from convcalc.errors import LimitError, SpecError, did_you_mean
from convcalc.parse.located import LineDict, LineList

MAX_EXPRESSION = 200
"""Longest template expression, in characters."""
MAX_VALUE = 1 << 62
"""Largest magnitude of any intermediate value of a template expression."""


_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_ORDER: dict[type[ast.cmpop], Callable[[int, int], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_COMPARE: tuple[type[ast.AST], ...] = (ast.Eq, ast.NotEq, *_ORDER)
_ALLOWED: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Name, ast.Constant, ast.Load,
    ast.USub, ast.UAdd, ast.Not, ast.And, ast.Or, *_BINARY, *_COMPARE,
)  # fmt: skip
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONSTANTS: dict[str, object] = {"true": True, "false": False, "True": True, "False": False}


@functools.lru_cache(maxsize=4096)
def _parse_expression(text: str) -> ast.Expression:
    """Parse and whitelist once per distinct text (templates repeat the same expressions)."""
    if len(text) > MAX_EXPRESSION:
        raise LimitError(f"the expression '{text[:40]}...' is longer than {MAX_EXPRESSION} characters.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise SpecError(
            f"'{text}' is not a valid expression.", hint="Use integers, names, + - * // %, comparisons, and/or/not."
        ) from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise SpecError(
                f"'{text}' uses {type(node).__name__}, which template expressions do not allow.",
                hint="Only integers, parameter names, + - * // %, ( ), comparisons and and/or/not are allowed.",
            )
        if isinstance(node, ast.Constant) and (not isinstance(node.value, int) or isinstance(node.value, bool)):
            raise SpecError(f"'{text}' contains the literal {node.value!r}; only integers are allowed.")
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and abs(node.value) > MAX_VALUE:
            raise LimitError(f"'{text}' contains a number beyond ±2^62.")
    return tree


def _number(value: object, name: str, text: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"in '{text}', '{name}' is {value!r}, not an integer.")
    return value


def _bounded(value: int, text: str) -> int:
    if abs(value) > MAX_VALUE:
        raise LimitError(f"'{text}' produces a value beyond ±2^62.")
    return value


def _eval(node: ast.AST, variables: Mapping[str, object], text: str) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in variables:
            return variables[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise SpecError(
            f"'{text}' uses the unknown name '{node.id}'.{did_you_mean(node.id, list(variables))}",
            hint=f"Known names here: {', '.join(sorted(variables)) or 'none'}.",
        )
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
        return -number if isinstance(node.op, ast.USub) else number
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, variables, text) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        return _compare(node, variables, text)
    raise SpecError(f"'{text}' cannot be evaluated.")  # unreachable: the whitelist admits nothing else


def _compare(node: ast.Compare, variables: Mapping[str, object], text: str) -> bool:
    """Chained comparisons; ``==``/``!=`` compare any values, ordering needs integers."""
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

    A string containing ``$`` is an expression: ``$width``, ``$width * 4``,
    ``$stride == 1 and $in_channels == $out`` (the ``$`` before a name is optional after the
    first one; ``${...}`` is accepted too). A lone ``$name`` may stand for any value (a list of
    layers, a string...); arithmetic needs integers. Other strings are left alone.
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


_DOLLAR = re.compile(r"\$(?=[A-Za-z_])")


def _substitute_text(text: str, variables: Mapping[str, object]) -> object:
    body = text.strip()
    if body.startswith("${") and body.endswith("}"):
        body = body[2:-1]
    expression = _DOLLAR.sub("", body)
    stray = re.search(r"\$(\S?)", expression)
    if stray is not None or not expression.strip():
        what = (
            f"'$' must be followed by a parameter name, not {stray.group(1)!r}"
            if stray is not None and stray.group(1)
            else "'$' must be followed by a parameter name"
            if stray is not None
            else "it has nothing after the '$'"
        )
        raise SpecError(
            f"'{text}' is not a template expression: {what}.",
            hint="Write $name or an expression such as $width * 4 (names start with a letter or _; a number needs no $).",
        )
    return evaluate_expression(expression, variables)


def with_lines(original: Mapping[str, object], values: Mapping[str, object]) -> LineDict:
    """A :class:`LineDict` holding ``values`` with the lines of ``original`` (where known)."""
    out = LineDict()
    out.update(values)
    if isinstance(original, LineDict):
        out.line = original.line
        out.lines = dict(original.lines)
    return out
