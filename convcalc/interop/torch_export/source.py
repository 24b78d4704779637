"""A tiny expression tree and a line writer whose output ``ruff format`` leaves unchanged.

Generated code must read like code a person wrote and stay formatter-clean (ruff/black style,
88 columns): an expression that fits on its line is written flat; one that does not has its items on one
indented line between its brackets, or, when they do not fit either, one item per line with a
trailing comma (the "magic trailing comma" keeps formatters from joining
it again); a long binary expression is wrapped in parentheses and split before its operators,
as black does.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from typing import NamedTuple, Union

LINE_LENGTH = 88
INDENT = "    "


class Call(NamedTuple):
    """``func(arg, ..., name=value)``."""

    func: str
    args: tuple[Expr, ...] = ()


class Kw(NamedTuple):
    """A keyword argument ``name=value``."""

    name: str
    value: Expr


class Seq(NamedTuple):
    """A list (``[...]``) or tuple (``(...)``) display."""

    items: tuple[Expr, ...]
    tuple_: bool = True


class Bin(NamedTuple):
    """Operands joined by one binary operator: ``a + b + c``."""

    op: str
    operands: tuple[Expr, ...]


Expr = Union[str, Call, Kw, Seq, Bin]


def flat(expr: Expr) -> str:
    """The expression on one line."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, Kw):
        return f"{expr.name}={flat(expr.value)}"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(flat(a) for a in expr.args)})"
    if isinstance(expr, Seq):
        inner = ", ".join(flat(i) for i in expr.items)
        if expr.tuple_:
            return f"({inner},)" if len(expr.items) == 1 else f"({inner})"
        return f"[{inner}]"
    return f" {expr.op} ".join(flat(o) for o in expr.operands)


def lines(prefix: str, expr: Expr, suffix: str = "", indent: str = "") -> list[str]:
    """``prefix + expr + suffix`` at ``indent``, exploded where it would pass :data:`LINE_LENGTH`."""
    line = f"{indent}{prefix}{flat(expr)}{suffix}"
    if len(line) <= LINE_LENGTH or isinstance(expr, str):
        return [line]
    inner = indent + INDENT
    if isinstance(expr, Kw):
        return lines(f"{prefix}{expr.name}=", expr.value, suffix, indent)
    if isinstance(expr, Bin):
        joined = f"{inner}{flat(expr)}"
        if len(joined) <= LINE_LENGTH:
            return [f"{indent}{prefix}(", joined, f"{indent}){suffix}"]
        body = [f"{inner}{flat(expr.operands[0])}"] + [f"{inner}{expr.op} {flat(o)}" for o in expr.operands[1:]]
        return [f"{indent}{prefix}(", *body, f"{indent}){suffix}"]
    if isinstance(expr, Call):
        opening, items, closing = f"{expr.func}(", expr.args, ")"
    else:
        opening, items, closing = ("(", expr.items, ")") if expr.tuple_ else ("[", expr.items, "]")
    hugged = inner + ", ".join(flat(i) for i in items)
    if len(hugged) <= LINE_LENGTH and not (isinstance(expr, Seq) and expr.tuple_ and len(items) == 1):
        return [f"{indent}{prefix}{opening}", hugged, f"{indent}{closing}{suffix}"]
    body = [text for item in items for text in lines("", item, ",", inner)]
    return [f"{indent}{prefix}{opening}", *body, f"{indent}{closing}{suffix}"]


def literal(value: object) -> str:
    """A Python literal: ints, floats (shortest repr), bools, strings (double quotes)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def axes(values: Sequence[int]) -> Expr:
    """One int when every axis agrees (PyTorch broadcasts it), else a tuple."""
    if len(set(values)) == 1:
        return str(values[0])
    return Seq(tuple(str(v) for v in values))


def identifier(text: str) -> str:
    """A valid Python identifier made from ``text`` (``layer1.0.conv1`` -> ``layer1_0_conv1``)."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in text) or "_"
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name):
        name += "_"
    return name


def is_attribute(name: str) -> bool:
    """True when ``name`` can be written as ``obj.name``."""
    return name.isidentifier() and not keyword.iskeyword(name)
