"""Whole networks from YAML: the spec format, its evaluation, and ``check`` expectations.

A network is a sequence of items (``specs/README.md`` documents the format)::

    name: tiny_resnet
    input: 3x32x32                    # or [3, 32, 32], or {shape: ..., batch: 8, layout: channels_last}
    defaults: {bias: false}           # every layer whose type has the field; per type: {linear: {bias: true}}
    define:                           # templates with parameters
      block:
        params: {channels: required, stride: 1}
        layers:
          - residual:
              - {type: conv2d, out_channels: $channels, kernel_size: 3, stride: $stride, padding: 1}
              - batchnorm2d
            shortcut:                 # identity (default), none, or layers: here a projection ...
              when: $stride != 1 or $in_channels != $channels   # ... skipped (= identity) if not needed
              layers: [{type: conv2d, out_channels: $channels, kernel_size: 1, stride: $stride}]
    layers:
      - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, name: stem}
      - {type: block, channels: 32, repeat: 2, first: {stride: 2}, name: stage1}
      - {type: concat, inputs: [stage1, stem]}   # merges: add / concat / multiply
    expect: {output_shape: [48, 16, 16], max_params: 100000}

Evaluation walks the items once, in order. Each layer is expanded by its kind
(:func:`convcalc.engine.expand`) into primitive stages whose names are prefixed by the layer's
path (``stage1.0.conv``); all of them form one flat graph (:attr:`NetResult.stages`), evaluated
by :func:`convcalc.engine.walk` layer by layer, so the work is linear in the number of layers.
Template arithmetic (``$width * 4``) goes through :func:`evaluate_expression`, an ``ast``
whitelist of integers, names, ``+ - * // %``, comparisons and ``and/or/not``; never ``eval``.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import gc
import glob
import operator
import re
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from convcalc import rf
from convcalc.engine import StageResult, Tensor, expand, walk
from convcalc.errors import ConvcalcError, LimitError, Location, ShapeError, SpecError
from convcalc.kinds import all_kinds, lookup
from convcalc.kinds.base import Kind, normalise_name
from convcalc.lines import LineDict, line_of, line_of_item, type_name
from convcalc.loader import load_file
from convcalc.ops import Add, Concat, DeformSample, Multiply, OpStats, Shape, Stage, numel
from convcalc.spec import parse_layer
from convcalc.values import parse_axes, parse_int

MAX_LAYERS = 100_000
"""Most layers (rows, merges included) a network may expand to."""
MAX_REPEAT = MAX_LAYERS
"""Largest ``repeat`` count (a larger one could never fit in :data:`MAX_LAYERS`)."""
MAX_NESTING = 32
"""Deepest nesting of blocks and template calls (recursive templates stop here)."""
MAX_EXPRESSION = 200
"""Longest template expression, in characters."""
MAX_VALUE = 1 << 62
"""Largest magnitude of any intermediate value of a template expression."""

MERGES: dict[str, type[Add] | type[Concat] | type[Multiply]] = {"add": Add, "concat": Concat, "multiply": Multiply}
BLOCK_KEYS = ("layers", "branches", "residual")
ITEM_KEYS = ("name", "input", "repeat", "first", "each", "when", "expect")
"""Keys every item may carry; a layer's other keys are its fields, a template call's its arguments."""
BLOCK_EXTRA = {"layers": (), "branches": ("merge",), "residual": ("shortcut", "merge")}
TOP_KEYS = ("name", "description", "input", "defaults", "variables", "define", "layers", "expect")
REFS = ("previous", "input")
LAYOUTS = ("channels_first", "channels_last")
LAYER_EXPECT = ("shape", "params", "macs")
NET_EXPECT = ("output_shape", "params", "macs", "flops", "max_params", "max_macs", "max_flops", "receptive_field")

# ==============================================================================================
# Template expressions
# ==============================================================================================

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
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
            f"'{text}' uses the unknown name '{node.id}'.{_did_you_mean(node.id, list(variables))}",
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


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def substitute(value: object, variables: Mapping[str, object]) -> object:
    """Evaluate template expressions in ``value`` and, recursively, in its lists and mappings.

    A string containing ``$`` is an expression: ``$width``, ``$width * 4``,
    ``$stride == 1 and $in_channels == $out`` (the ``$`` before a name is optional after the
    first one; ``${...}`` is accepted too). A lone ``$name`` may stand for any value (a list of
    layers, a string...); arithmetic needs integers. Other strings are left alone.
    """
    if isinstance(value, str):
        return _substitute_text(value, variables) if "$" in value else value
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return _with_lines(value, {k: substitute(v, variables) for k, v in value.items()})
    return value


_DOLLAR = re.compile(r"\$(?=[A-Za-z_])")


def _substitute_text(text: str, variables: Mapping[str, object]) -> object:
    body = text.strip()
    if body.startswith("${") and body.endswith("}"):
        body = body[2:-1]
    expression = _DOLLAR.sub("", body)
    if "$" in expression or not expression.strip():
        raise SpecError(f"'{text}' is not a template expression.", hint="Write $name or an expression such as $width * 4.")
    return evaluate_expression(expression, variables)


def _with_lines(original: Mapping[str, object], values: Mapping[str, object]) -> LineDict:
    """A :class:`LineDict` holding ``values`` with the lines of ``original`` (where known)."""
    out = LineDict()
    out.update(values)
    if isinstance(original, LineDict):
        out.line = original.line
        out.lines = dict(original.lines)
    return out


# ==============================================================================================
# The spec
# ==============================================================================================

REQUIRED_PARAM = "required"


@dataclass(frozen=True)
class Template:
    """A ``define`` entry: parameters (default or ``required``) and the body's items."""

    name: str
    params: Mapping[str, object]
    body: Sequence[object]
    where: Location


@dataclass(frozen=True)
class NetworkSpec:
    """A parsed network file (items are evaluated lazily, see :func:`evaluate_network`)."""

    name: str
    source: str
    input_shape: Shape
    layout: str
    batch: int
    layers: Sequence[object]
    templates: Mapping[str, Template]
    variables: Mapping[str, object]
    defaults: Mapping[str, object]
    kind_defaults: Mapping[str, Mapping[str, object]]
    expect: Mapping[str, object] | None
    where: Location

    def to_layout(self, shape: Sequence[int]) -> Shape:
        """Channels first -> the spec's layout."""
        if self.layout == "channels_last" and len(shape) > 1:
            return (*shape[1:], shape[0])
        return tuple(shape)


def _at(source: str, data: object, key: str | None = None) -> Location:
    line = line_of(data, key) if isinstance(data, Mapping) else None
    return Location(source, line)


def _mapping(data: object, what: str, where: Location) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise SpecError(f"{what} must be a mapping, got {type_name(data)}.", where=where)
    return cast(Mapping[str, object], data)


def _check_keys(data: Mapping[str, object], allowed: Sequence[str], what: str, source: str) -> None:
    for key in data:
        if key not in allowed:
            raise SpecError(
                f"{what} has no key '{key}'.{_did_you_mean(str(key), allowed)}",
                where=_at(source, data, key),
                hint=f"Allowed keys: {', '.join(allowed)}.",
            )


def parse_input(value: object, source: str, where: Location) -> tuple[Shape, str, int]:
    """``input``: a shape (1 to 4 sizes: C, CxL, CxHxW, CxDxHxW) or ``{shape, batch, layout}``."""
    batch, layout = 1, "channels_first"
    if isinstance(value, Mapping):
        _check_keys(value, ("shape", "batch", "layout"), "'input'", source)
        if "shape" not in value:
            raise SpecError("'input' needs a 'shape'.", where=where, hint="Example: input: {shape: 3x224x224, batch: 8}.")
        if "batch" in value:
            batch = parse_int(value["batch"], "batch")
        layout = str(value.get("layout", layout))
        if layout not in LAYOUTS:
            raise SpecError(f"'layout' must be one of {', '.join(LAYOUTS)}, got {layout!r}.", where=_at(source, value, "layout"))
        value = value["shape"]
    shape = parse_axes(value, "input")
    if not 1 <= len(shape) <= 4:
        raise SpecError(
            f"'input' must have 1 to 4 sizes (C, CxL, CxHxW or CxDxHxW), got {len(shape)}.",
            where=where,
            hint="Example: input: 3x224x224 (the batch goes in 'batch').",
        )
    if layout == "channels_last" and len(shape) > 1:
        shape = (shape[-1], *shape[:-1])
    return shape, layout, batch


def _parse_templates(data: object, source: str, where: Location) -> dict[str, Template]:
    templates: dict[str, Template] = {}
    for name, body in _mapping(data, "'define'", where).items():
        at = _at(source, data, name)
        _check_new_name(name, at)
        if isinstance(body, list):
            templates[name] = Template(name, {}, body, at)
            continue
        entry = _mapping(body, f"template '{name}'", at)
        _check_keys(entry, ("params", "layers", "description"), f"template '{name}'", source)
        if not isinstance(entry.get("layers"), list):
            raise SpecError(f"template '{name}' needs a 'layers' list.", where=at)
        params = entry.get("params") or {}
        if isinstance(params, list):
            params = dict.fromkeys((str(p) for p in params), REQUIRED_PARAM)
        templates[name] = Template(
            name, _mapping(params, f"'params' of template '{name}'", at), cast(list[object], entry["layers"]), at
        )
    return templates


def _check_new_name(name: str, where: Location) -> None:
    if not _NAME.fullmatch(name):
        raise SpecError(f"template name '{name}' must be an identifier (letters, digits, _).", where=where)
    if name in MERGES or name in REFS:
        raise SpecError(f"'{name}' is reserved and cannot name a template.", where=where)
    try:
        kind = lookup(name)
    except SpecError:
        return
    raise SpecError(f"template '{name}' has the name of the layer type '{kind.name}'.", where=where, hint="Rename the template.")


def _field_names(key: str) -> set[str]:
    """Canonical field names that ``key`` denotes in some kind (by name or alias)."""
    return {f.name for kind in all_kinds() for f in kind.fields if key == f.name or key in f.aliases}


def _parse_defaults(data: object, source: str, where: Location) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    flat: dict[str, object] = {}
    per_kind: dict[str, dict[str, object]] = {}
    every_field = sorted({f.name for kind in all_kinds() for f in kind.fields})
    for key, value in _mapping(data, "'defaults'", where).items():
        at = _at(source, data, key)
        if isinstance(value, Mapping):
            try:
                kind = lookup(key)
            except SpecError as err:
                raise err.with_context(where=at) from None
            for field_key in value:
                if kind.field(str(field_key)) is None:
                    raise SpecError(
                        f"defaults for {kind.name}: it has no field '{field_key}'.", where=_at(source, value, field_key)
                    )
            per_kind[kind.name] = dict(value)
        elif not _field_names(key):
            raise SpecError(
                f"'defaults' names '{key}', which is no field of any layer type.{_did_you_mean(key, every_field)}", where=at
            )
        else:
            flat[key] = value
    return flat, per_kind


def parse_network(data: object, source: str) -> NetworkSpec:
    """Validate the top level of a network file (items are checked when evaluated)."""
    top = _mapping(data, "a network spec", Location(source, 1))
    where = _at(source, top)
    _check_keys(top, TOP_KEYS, "a network spec", source)
    for key in ("input", "layers"):
        if key not in top:
            raise SpecError(
                f"the network has no '{key}'.", where=where, hint="A network needs 'input' (a shape) and 'layers' (a list)."
            )
    layers = top["layers"]
    if not isinstance(layers, list) or not layers:
        raise SpecError("'layers' must be a non-empty list.", where=_at(source, top, "layers"))
    shape, layout, batch = parse_input(top["input"], source, _at(source, top, "input"))
    variables = dict(_mapping(top.get("variables") or {}, "'variables'", where))
    flat, per_kind = _parse_defaults(top.get("defaults") or {}, source, _at(source, top, "defaults"))
    expect = top.get("expect")
    if expect is not None:
        _check_keys(_mapping(expect, "'expect'", _at(source, top, "expect")), NET_EXPECT, "the network's 'expect'", source)
    return NetworkSpec(
        name=str(top.get("name") or source.rsplit("/", 1)[-1].rsplit(".", 1)[0]),
        source=source,
        input_shape=shape,
        layout=layout,
        batch=batch,
        layers=layers,
        templates=_parse_templates(top.get("define") or {}, source, _at(source, top, "define")),
        variables=variables,
        defaults=flat,
        kind_defaults=per_kind,
        expect=cast("Mapping[str, object] | None", expect),
        where=where,
    )


def load_network(path: str) -> NetworkSpec:
    """Read and parse a network file (``-`` reads stdin)."""
    data, source = load_file(path)
    return parse_network(data, source)


# ==============================================================================================
# Results
# ==============================================================================================

EXACT, NO_AXES, DATA_DEPENDENT, UNTRACKED = "exact", "no spatial axes", "data-dependent", "not tracked"


@dataclass(frozen=True, slots=True)
class LayerRow:
    """One evaluated layer (or, folded, one block): per-sample numbers, exact integers."""

    name: str
    type: str
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    params: int
    macs: int
    other_ops: int
    bias_adds: int
    moved: int
    field: rf.Field | None
    rf_status: str
    notes: tuple[str, ...] = ()
    where: Location | None = None
    stages: tuple[StageResult, ...] = ()

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs (one multiply and one add per MAC)."""
        return 2 * self.macs

    @property
    def activations(self) -> int:
        """Elements of the output per sample."""
        return numel(self.output_shape)

    @property
    def depth(self) -> int:
        return self.name.count(".") + 1


@dataclass(frozen=True)
class BlockInfo:
    """A named group of rows: a template call, sequence, residual, branches or repeat."""

    path: str
    type: str
    where: Location | None


@dataclass(frozen=True)
class Expectation:
    """One checked ``expect`` entry."""

    what: str
    ok: bool
    message: str
    where: Location | None
    layer: str | None = None


@dataclass(frozen=True)
class Totals:
    """Network totals per sample (``activations``: the sum of every layer's output elements)."""

    params: int
    macs: int
    other_ops: int
    bias_adds: int
    moved: int
    activations: int
    layers: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class TypeShare:
    """Costs of all layers of one type."""

    type: str
    count: int
    params: int
    macs: int
    other_ops: int


@dataclass
class NetResult:
    """An evaluated network: rows in order, blocks, the flat stage graph, expectations."""

    spec: NetworkSpec
    batch: int
    rows: list[LayerRow] = field(default_factory=list)
    blocks: dict[str, BlockInfo] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    output: Tensor | None = None
    output_status: str = EXACT
    complete: bool = True

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_shape(self) -> Shape:
        return self.spec.input_shape

    @property
    def output_shape(self) -> Shape:
        if self.output is not None:
            return self.output.shape
        return self.rows[-1].output_shape if self.rows else self.spec.input_shape

    def totals(self) -> Totals:
        return Totals(
            params=sum(r.params for r in self.rows),
            macs=sum(r.macs for r in self.rows),
            other_ops=sum(r.other_ops for r in self.rows),
            bias_adds=sum(r.bias_adds for r in self.rows),
            moved=sum(r.moved for r in self.rows),
            activations=sum(r.activations for r in self.rows),
            layers=len(self.rows),
        )

    def breakdown(self) -> list[TypeShare]:
        """Costs per layer type, heaviest (MACs, then params) first."""
        shares: dict[str, list[int]] = {}
        for row in self.rows:
            entry = shares.setdefault(row.type, [0, 0, 0, 0])
            entry[0] += 1
            entry[1] += row.params
            entry[2] += row.macs
            entry[3] += row.other_ops
        ordered = sorted(shares.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0]))
        return [TypeShare(name, *values) for name, values in ordered]

    def heaviest(self, count: int = 5, key: str = "macs") -> list[LayerRow]:
        """The ``count`` layers with the most MACs (or ``key="params"``), ties in network order."""
        ranked = sorted(self.rows, key=lambda r: -cast(int, getattr(r, key)))
        return [r for r in ranked[:count] if getattr(r, key) > 0]

    def fold(self, depth: int | None) -> list[LayerRow]:
        """Rows with every block nested deeper than ``depth`` path levels folded into one row."""
        if depth is None:
            return list(self.rows)
        out: list[LayerRow] = []
        group: list[LayerRow] = []
        key = ""
        for row in self.rows:
            parts = row.name.split(".")
            if len(parts) <= depth:
                out.extend(self._folded(key, group))
                group, key = [], ""
                out.append(row)
                continue
            prefix = ".".join(parts[:depth])
            if group and prefix != key:
                out.extend(self._folded(key, group))
                group = []
            group.append(row)
            key = prefix
        out.extend(self._folded(key, group))
        return out

    def _folded(self, key: str, group: list[LayerRow]) -> list[LayerRow]:
        if not group:
            return []
        block = self.blocks.get(key)
        last = group[-1]
        return [
            LayerRow(
                name=key,
                type=block.type if block else "block",
                input_shapes=group[0].input_shapes,
                output_shape=last.output_shape,
                params=sum(r.params for r in group),
                macs=sum(r.macs for r in group),
                other_ops=sum(r.other_ops for r in group),
                bias_adds=sum(r.bias_adds for r in group),
                moved=sum(r.moved for r in group),
                field=last.field,
                rf_status=last.rf_status,
                notes=tuple(dict.fromkeys(n for r in group for n in r.notes)),
                where=block.where if block else group[0].where,
            )
        ]

    def warnings(self) -> list[str]:
        """Every distinct note of every row, prefixed by the row's name."""
        return [f"{row.name}: {note}" for row in self.rows for note in row.notes]

    def warning_summary(self, names: int = 3) -> list[str]:
        """:meth:`warnings` with repeats collapsed, for reports read by people: one line per kind
        of note (:func:`note_kind`) with the number of layers and the first ``names`` of them
        (``12 layers (a, b, c and 9 more): <note>``); a note of a single layer keeps its full
        form. A WaveNet's 30 causal merges thus take one line; :meth:`warnings` lists them all.
        """
        groups: dict[str, list[tuple[str, str]]] = {}
        for row in self.rows:
            for note in row.notes:
                groups.setdefault(note_kind(note), []).append((row.name, note))
        lines = []
        for kind, members in groups.items():
            if len(members) == 1:
                lines.append(f"{members[0][0]}: {members[0][1]}")
                continue
            shown = ", ".join(name for name, _ in members[:names])
            more = f" and {len(members) - names:,} more" if len(members) > names else ""
            lines.append(f"{len(members):,} layers ({shown}{more}): {kind}")
        return lines

    @property
    def failed(self) -> list[Expectation]:
        return [e for e in self.expectations if not e.ok]


class NetworkError(ConvcalcError):
    """An error while evaluating a network, carrying the rows evaluated before it.

    The message, layer, location, hint and exit code are the cause's, so generic handlers print
    it like any other error; :attr:`partial` lets the CLI print the table up to the failure.
    """

    def __init__(self, cause: ConvcalcError, partial: NetResult) -> None:
        super().__init__(cause.message, layer=cause.layer, where=cause.where, hint=cause.hint)
        self.exit_code = cause.exit_code
        self.cause = cause
        self.partial = partial


# ==============================================================================================
# Evaluation
# ==============================================================================================


@dataclass(frozen=True)
class Scope:
    """Where an item is evaluated: its parent path, variables, the enclosing block's input, depth."""

    path: str
    variables: Mapping[str, object]
    block_input: str
    depth: int = 0
    calls: tuple[str, ...] = ()

    def child(self, path: str, block_input: str, variables: Mapping[str, object] | None = None, call: str = "") -> Scope:
        return Scope(
            path,
            self.variables if variables is None else variables,
            block_input,
            self.depth + 1,
            (*self.calls, call) if call else self.calls,
        )


class Variables(Mapping[str, object]):
    """A scope's variables plus ``in_channels`` (built per item, so it must be cheap)."""

    def __init__(self, base: Mapping[str, object], in_channels: int) -> None:
        self.base = base
        self.in_channels = in_channels

    def __getitem__(self, key: str) -> object:
        return self.in_channels if key == "in_channels" else self.base[key]

    def __contains__(self, key: object) -> bool:
        return key == "in_channels" or key in self.base

    def __iter__(self) -> Iterator[str]:
        yield "in_channels"
        yield from (k for k in self.base if k != "in_channels")

    def __len__(self) -> int:
        return len(self.base) + (0 if "in_channels" in self.base else 1)


def _located(err: ConvcalcError, layer: str | None, where: Location) -> ConvcalcError:
    """Fill in the layer and location of ``err`` (a line replaces a location without one)."""
    err.with_context(layer=layer, where=where)
    if err.where is not None and err.where.line is None and where.line is not None and err.where.file == where.file:
        err.where = where
    return err


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


INPUT_TENSOR = "input"


class _Evaluator:
    """Walks the items of a spec once, growing the flat stage graph and the rows.

    Naming: a named item's path is ``parent.name``; an unnamed layer, template call or repeat
    is named by its position among the items of its namespace (``0``, ``1``, ... as in
    ``nn.Sequential``);
    an unnamed ``layers``/``residual``/``branches`` block is transparent (its layers live in the
    parent's namespace, so a template body reads ``layer1.0.conv1`` like torchvision). Merge rows
    are named after their op (``add``), branch lists ``branch1``..., shortcut lists ``shortcut``,
    with ``_2``, ``_3`` appended when taken. Every path is claimed once; a second claim is an error.
    """

    def __init__(self, spec: NetworkSpec, batch: int) -> None:
        self.spec = spec
        self.result = NetResult(spec, batch)
        self.tensors: dict[str, Tensor] = {INPUT_TENSOR: Tensor(spec.input_shape, rf.identity_field(len(spec.input_shape) - 1))}
        self.reasons: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.claimed: dict[str, Location] = {}
        self.counters: dict[str, int] = {}
        self.pending: list[tuple[str, dict[str, int | None]]] = []
        self.defaults_cache: dict[str, dict[str, object]] = {}

    def run(self) -> NetResult:
        scope = Scope("", dict(self.spec.variables), INPUT_TENSOR)
        try:
            out = self.sequence(self.spec.layers, scope, INPUT_TENSOR)
            self.result.output = self.tensors[out]
            self.result.output_status = self.status(out)
            self.check_network()
        except ConvcalcError as err:
            self.result.complete = False
            raise NetworkError(err, self.result) from None
        except RecursionError:
            self.result.complete = False
            raise NetworkError(LimitError("the network nests too deeply.", where=self.spec.where), self.result) from None
        return self.result

    # -- names ---------------------------------------------------------------------------------------

    def claim(self, path: str, where: Location) -> None:
        first = self.claimed.get(path)
        if first is not None:
            namespace, _, name = path.rpartition(".")
            raise SpecError(
                f"the name '{name}' is used twice in {f'{namespace!r}' if namespace else 'the network'} (first at {first}).",
                where=where,
                hint="Names must be unique among the layers of a block (unnamed blocks share their parent's names).",
            )
        self.claimed[path] = where

    def free(self, namespace: str, name: str) -> bool:
        if _join(namespace, name) in self.claimed:
            return False
        return not any(name in declared for space, declared in self.pending if space == namespace)

    def auto_name(self, namespace: str, base: str | None = None) -> str:
        """The next free position (``base`` None) or ``base``, ``base_2``, ``base_3``..."""
        if base is None:
            while True:
                index = self.counters.get(namespace, 0)
                self.counters[namespace] = index + 1
                if self.free(namespace, str(index)):
                    return str(index)
        name, suffix = base, 1
        while not self.free(namespace, name):
            suffix += 1
            name = f"{base}_{suffix}"
        return name

    def declare(self, items: Sequence[object], scope: Scope) -> dict[str, int | None]:
        """User names of the items (duplicates refused), to tell forward references from unknown ones."""
        names: dict[str, int | None] = {}
        for raw in items:
            if not isinstance(raw, dict) or raw.get("name") is None:
                continue
            name, line = str(raw["name"]), line_of(raw)
            if name in names:
                first = names[name]
                raise SpecError(
                    f"the name '{name}' is used twice in one block" + (f" (first at line {first})." if first else "."),
                    layer=_join(scope.path, name),
                    where=Location(self.spec.source, line),
                    hint="Names must be unique among siblings.",
                )
            names[name] = line
        return names

    @staticmethod
    def check_name(name: str) -> None:
        if not name or "." in name or "/" in name or name in REFS:
            raise SpecError(
                f"the name '{name}' is not allowed.", hint="Names may not contain '.' or '/' nor be 'input' or 'previous'."
            )

    # -- sequences and items ----------------------------------------------------------------------

    def sequence(self, items: Sequence[object], scope: Scope, current: str) -> str:
        declared = self.declare(items, scope)
        self.pending.append((scope.path, declared))
        try:
            for index, raw in enumerate(items):
                current = self.item(raw, scope, current, line_of_item(items, index))
                if isinstance(raw, dict) and raw.get("name") is not None:
                    declared.pop(str(raw["name"]), None)
        finally:
            self.pending.pop()
        return current

    def where(self, raw: object, line: int | None = None) -> Location:
        """Where an item is written: its own line (mappings), else the line of its list entry."""
        return Location(self.spec.source, line_of(raw) if isinstance(raw, dict) else line)

    def item(self, raw: object, scope: Scope, current: str, line: int | None = None) -> str:
        where = self.where(raw, line)
        path: str | None = None
        try:
            mapping = self.as_item(raw, where)
            if mapping.get("name") is not None:
                self.check_name(str(mapping["name"]))
                path = _join(scope.path, str(mapping["name"]))
                self.counters[scope.path] = self.counters.get(scope.path, 0) + 1
            elif "repeat" in mapping or "type" in mapping:
                path = _join(scope.path, self.auto_name(scope.path))
            if "repeat" in mapping:
                return self.repeat(mapping, cast(str, path), scope, current, where)
            if "when" in mapping and not substitute(mapping["when"], self.variables(scope, current)):
                return current
            return self.single(mapping, path, scope, current, where)
        except ConvcalcError as err:
            raise _located(err, path or scope.path or None, where) from None

    @staticmethod
    def check_depth(scope: Scope, opening: str) -> None:
        """Refuse to open a block or template call deeper than :data:`MAX_NESTING` levels."""
        if scope.depth >= MAX_NESTING:
            chain = " -> ".join((*scope.calls[-5:], opening))
            raise LimitError(
                f"blocks and template calls nest deeper than {MAX_NESTING} levels (... {chain}).",
                hint="A recursive template needs a 'when' that stops it.",
            )

    def as_item(self, raw: object, where: Location) -> Mapping[str, object]:
        if isinstance(raw, str):
            item = LineDict()
            item["type"] = raw
            item.line = where.line
            return item
        mapping = _mapping(raw, "a layer", where)
        structure = [k for k in ("type", *BLOCK_KEYS) if k in mapping]
        if len(structure) != 1:
            raise SpecError(
                "a layer needs exactly one of 'type', 'layers', 'branches' or 'residual'"
                + (f", got {', '.join(structure)}." if structure else "."),
                where=where,
                hint="Example: {type: conv2d, out_channels: 64, kernel_size: 3}.",
            )
        return mapping

    def variables(self, scope: Scope, current: str) -> Mapping[str, object]:
        """The scope's variables plus ``in_channels``: the channels of the tensor the item reads."""
        return Variables(scope.variables, self.tensors[current].shape[0])

    # -- repeat --------------------------------------------------------------------------------------

    def repeat(self, mapping: Mapping[str, object], path: str, scope: Scope, current: str, where: Location) -> str:
        variables = self.variables(scope, current)
        self.check_depth(scope, "repeat")
        at = _at(self.spec.source, mapping, "repeat")
        count = parse_count(substitute(mapping["repeat"], variables), "repeat", at)
        if count > MAX_REPEAT or len(self.result.rows) + count > MAX_LAYERS:
            raise LimitError(f"repeat: {count:,} would exceed the limit of {MAX_LAYERS:,} layers.", where=at)
        first = _mapping(substitute(mapping.get("first") or {}, variables), "'first'", where)
        each = self.each(mapping, count, variables, where)
        self.claim(path, where)
        self.result.blocks[path] = BlockInfo(path, f"{self.describe(mapping)} x{count}", where)
        base = {k: v for k, v in mapping.items() if k not in ("repeat", "first", "each", "name", "expect")}
        start = len(self.result.rows)
        for i in range(count):
            values = {**base, **(first if i == 0 else {}), **{k: v[i] for k, v in each.items()}}
            if i > 0:
                values.pop("input", None)
            item = _with_lines(mapping, values)
            if i == 0:
                item.lines.update({k: line for k in first if (line := line_of(first, k)) is not None})
            iteration = Scope(path, {**scope.variables, "i": i}, current, scope.depth + 1, scope.calls)
            if "when" in item and not substitute(item["when"], self.variables(iteration, current)):
                continue
            before = len(self.result.rows)
            current = self.single(item, _join(path, str(i)), iteration, current, where)
            if i == 1 and not each and "when" not in base:
                self.check_projection(count, len(self.result.rows) - before, at)
        self.names[path] = current
        self.check_layer_expect(mapping, path, current, start, where)
        return current

    def check_projection(self, count: int, per: int, at: Location) -> None:
        """Stop early when identical repetitions (no ``when``, no ``each``) cannot fit: the second
        repetition's layer count times the remaining ones (the first may differ, e.g. a projection)."""
        if len(self.result.rows) + (count - 2) * per > MAX_LAYERS:
            raise LimitError(
                f"repeat: {count:,} repetitions of {per:,} layers would exceed the limit of {MAX_LAYERS:,} layers.", where=at
            )

    def each(
        self, mapping: Mapping[str, object], count: int, variables: Mapping[str, object], where: Location
    ) -> dict[str, list[object]]:
        each = _mapping(substitute(mapping.get("each") or {}, variables), "'each'", where)
        out: dict[str, list[object]] = {}
        for key, values in each.items():
            if not isinstance(values, list) or len(values) != count:
                raise SpecError(
                    f"'each: {key}' must be a list of {count} values (one per repetition).",
                    where=_at(self.spec.source, each, key),
                )
            out[key] = values
        return out

    @staticmethod
    def describe(mapping: Mapping[str, object]) -> str:
        if "type" in mapping:
            return str(mapping["type"])
        return next(k for k in BLOCK_KEYS if k in mapping)

    # -- one item --------------------------------------------------------------------------------------

    def single(self, mapping: Mapping[str, object], path: str | None, scope: Scope, current: str, where: Location) -> str:
        if path is not None:
            self.claim(path, where)
        variables = self.variables(scope, current)
        if mapping.get("input") is not None:
            current = self.ref(substitute(mapping["input"], variables), scope, current, where)
            variables = self.variables(scope, current)
        start = len(self.result.rows)
        if path is None or "type" not in mapping:
            out = self.block(mapping, path, scope, current, where, variables)
        else:
            out = self.typed(mapping, path, scope, current, where, variables)
        if path is not None:
            self.names[path] = out
        self.check_layer_expect(mapping, path or f"block at line {where.line}", out, start, where)
        return out

    def typed(
        self,
        mapping: Mapping[str, object],
        path: str,
        scope: Scope,
        current: str,
        where: Location,
        variables: Mapping[str, object],
    ) -> str:
        type_name = normalise_name(str(substitute(mapping["type"], variables)))
        if type_name in MERGES:
            return self.merge(mapping, type_name, path, scope, current, where, variables)
        if type_name in self.spec.templates:
            return self.call(mapping, self.spec.templates[type_name], path, scope, current, where, variables)
        return self.leaf(mapping, path, current, where, variables)

    def block(
        self,
        mapping: Mapping[str, object],
        path: str | None,
        scope: Scope,
        current: str,
        where: Location,
        variables: Mapping[str, object],
    ) -> str:
        structure = next(k for k in BLOCK_KEYS if k in mapping)
        allowed = (*ITEM_KEYS, structure, *BLOCK_EXTRA[structure])
        for key in mapping:
            if key not in allowed:
                raise SpecError(
                    f"a '{structure}' block has no key '{key}'.{_did_you_mean(key, allowed)}",
                    where=_at(self.spec.source, mapping, key),
                    hint=f"Its keys: {', '.join(allowed)}.",
                )
        self.check_depth(scope, structure)
        namespace = scope.path if path is None else path
        inner = scope.child(namespace, current)
        if structure == "layers":
            self.add_block(path, "sequence", where)
            return self.sequence(self.items(mapping, "layers", variables), inner, current)
        if structure == "branches":
            return self.branches(mapping, path, inner, current, where, variables)
        self.add_block(path, "residual", where)
        return self.residual(mapping, inner, current, where, variables)

    def add_block(self, path: str | None, type_name: str, where: Location) -> None:
        if path is not None:
            self.result.blocks[path] = BlockInfo(path, type_name, where)

    def items(self, mapping: Mapping[str, object], key: str, variables: Mapping[str, object]) -> list[object]:
        value = mapping[key]
        if isinstance(value, str) and value.startswith("$"):
            value = substitute(value, variables)
        if not isinstance(value, list):
            raise SpecError(f"'{key}' must be a list of layers.", where=_at(self.spec.source, mapping, key))
        return value

    def merge_kind(self, mapping: Mapping[str, object], default: str | None, variables: Mapping[str, object]) -> str:
        value = mapping.get("merge", default)
        if value is None:
            raise SpecError("branches need 'merge: add', 'concat' or 'multiply'.", where=_at(self.spec.source, mapping))
        merge = normalise_name(str(substitute(value, variables)))
        if merge not in MERGES:
            raise SpecError(
                f"'merge' must be add, concat or multiply, got {value!r}.", where=_at(self.spec.source, mapping, "merge")
            )
        return merge

    def branches(
        self,
        mapping: Mapping[str, object],
        path: str | None,
        inner: Scope,
        current: str,
        where: Location,
        variables: Mapping[str, object],
    ) -> str:
        merge = self.merge_kind(mapping, None, variables)
        self.add_block(path, f"branches ({merge})", where)
        branches = self.items(mapping, "branches", variables)
        if len(branches) < 2:
            raise SpecError("'branches' needs at least two branches.", where=where)
        declared = self.declare(branches, inner)
        self.pending.append((inner.path, declared))
        outputs = []
        try:
            for index, branch in enumerate(branches):
                if isinstance(branch, list):
                    outputs.append(self.sub_sequence(branch, f"branch{index + 1}", "branch", inner, current, where))
                else:
                    outputs.append(self.item(branch, inner, current, line_of_item(branches, index)))
        finally:
            self.pending.pop()
        return self.merge_stage(merge, _join(inner.path, self.auto_name(inner.path, merge)), outputs, where)

    def sub_sequence(self, items: list[object], base: str, type_name: str, inner: Scope, current: str, where: Location) -> str:
        """An unnamed list inside a block (a branch, a shortcut): named ``base`` in the block's namespace."""
        path = _join(inner.path, self.auto_name(inner.path, base))
        self.claim(path, where)
        self.add_block(path, type_name, where)
        out = self.sequence(items, inner.child(path, current), current)
        self.names[path] = out
        return out

    def residual(
        self, mapping: Mapping[str, object], inner: Scope, current: str, where: Location, variables: Mapping[str, object]
    ) -> str:
        merge = self.merge_kind(mapping, "add", variables)
        body = self.items(mapping, "residual", variables)
        shortcut = mapping.get("shortcut", "identity")
        if isinstance(shortcut, (str, bool)):
            shortcut = substitute(shortcut, variables)
        out = self.sequence(body, inner, current)
        if shortcut is True or shortcut == "identity":
            other = current
        elif shortcut is False or shortcut in ("none", None):
            return out
        elif isinstance(shortcut, list):
            other = self.sub_sequence(
                shortcut, "shortcut", "shortcut", inner, current, _at(self.spec.source, mapping, "shortcut")
            )
        elif isinstance(shortcut, Mapping):
            other = self.item(shortcut, inner, current)
        else:
            raise SpecError(
                f"'shortcut' must be identity/true, none/false, a list of layers or one item, got {shortcut!r}.",
                where=_at(self.spec.source, mapping, "shortcut"),
            )
        return self.merge_stage(merge, _join(inner.path, self.auto_name(inner.path, merge)), [out, other], where)

    def call(
        self,
        mapping: Mapping[str, object],
        template: Template,
        path: str,
        scope: Scope,
        current: str,
        where: Location,
        variables: Mapping[str, object],
    ) -> str:
        args: dict[str, object] = {}
        for key, value in mapping.items():
            if key in ITEM_KEYS or key == "type":
                continue
            if key not in template.params:
                raise SpecError(
                    f"template '{template.name}' has no parameter '{key}'.{_did_you_mean(key, list(template.params))}",
                    where=_at(self.spec.source, mapping, key),
                    hint=f"Its parameters: {', '.join(template.params) or 'none'} (defined at {template.where}).",
                )
            args[key] = substitute(value, variables)
        for key, default in template.params.items():
            if key not in args and default == REQUIRED_PARAM:
                raise SpecError(
                    f"template '{template.name}' needs the parameter '{key}'.",
                    where=where,
                    hint=f"Add '{key}: ...' (template defined at {template.where}).",
                )
        self.fill_defaults(template, args, current)
        self.check_depth(scope, template.name)
        self.add_block(path, template.name, where)
        inner = scope.child(path, current, {**self.spec.variables, **args}, call=template.name)
        return self.sequence(template.body, inner, current)

    def fill_defaults(self, template: Template, args: dict[str, object], current: str) -> None:
        """Add the defaults of the parameters missing from ``args``, evaluated like arguments.

        A default may be an expression (``inplanes: $in_channels``, ``width: $planes * 2``). It
        sees what the template's body sees: the top-level ``variables``, ``in_channels`` (the
        channels of the tensor the call reads), the arguments of the call and the parameters
        declared before it (in the order of ``params``); never the caller's variables, so a
        template behaves the same wherever it is used.
        """
        missing = [key for key in template.params if key not in args]
        if not missing:
            return
        known: dict[str, object] = {**self.spec.variables, **args}
        variables = Variables(known, self.tensors[current].shape[0])
        for key in template.params:
            if key not in args:
                default = template.params[key]
                try:
                    args[key] = substitute(default, variables)
                except ConvcalcError as err:
                    raise type(err)(
                        f"the default of parameter '{key}' of template '{template.name}' ({default!r}): {err.message}",
                        where=_at(self.spec.source, template.params, key),
                        hint=err.hint,
                    ) from None
            known[key] = args[key]

    # -- references ---------------------------------------------------------------------------------

    def ref(self, value: object, scope: Scope, current: str, where: Location) -> str:
        """The tensor a name refers to: the innermost enclosing namespace first, then outwards."""
        if not isinstance(value, str):
            raise SpecError(f"a reference must be a layer name, got {value!r}.", where=where)
        if value == "previous":
            return current
        if value == "input":
            return scope.block_input
        prefix = scope.path
        while True:
            key = _join(prefix, value)
            if key in self.names:
                return self.names[key]
            if not prefix:
                break
            prefix = prefix.rpartition(".")[0]
        for _, declared in reversed(self.pending):
            if value in declared:
                line = declared[value]
                raise SpecError(
                    f"'{value}' is referenced before it is evaluated"
                    + (f" (it is defined at line {line})" if line else "")
                    + ".",
                    where=where,
                    hint="References must point to earlier layers, so a network cannot contain a cycle.",
                )
        visible = [n.rpartition(".")[2] for n in self.names] + list(self.names)
        raise SpecError(
            f"unknown reference '{value}'.{_did_you_mean(value, visible)}",
            where=where,
            hint="Name the layer with 'name: ...' first.",
        )

    # -- layers and merges ---------------------------------------------------------------------------

    def kind_defaults(self, kind: Kind) -> dict[str, object]:
        """The spec's ``defaults`` that apply to ``kind``, by canonical field name (cached per kind)."""
        cached = self.defaults_cache.get(kind.name)
        if cached is None:
            cached = {}
            for values in (self.spec.defaults, self.spec.kind_defaults.get(kind.name, {})):
                for key, value in values.items():
                    fdef = kind.field(key)
                    if fdef is not None:
                        cached[fdef.name] = value
            self.defaults_cache[kind.name] = cached
        return cached

    def leaf(
        self, mapping: Mapping[str, object], path: str, current: str, where: Location, variables: Mapping[str, object]
    ) -> str:
        resolved = {k: substitute(v, variables) for k, v in mapping.items() if k not in ITEM_KEYS}
        kind = lookup(resolved["type"])
        spec = parse_layer(_with_lines(mapping, resolved), name=path, where=where, defaults=self.kind_defaults(kind))
        source = self.tensors[current]
        stages, notes = expand(spec, source.shape)
        flat = self.prefix(stages, path, current)
        results = walk(flat, {current: source})
        return self.record(path, spec.kind, flat, results, notes, where)

    @staticmethod
    def prefix(stages: Sequence[Stage], path: str, current: str) -> list[Stage]:
        """Rename a layer's stages into the flat graph: the last one is the layer's path."""
        last = stages[-1].name
        names = {s.name: (path if s.name == last else f"{path}/{s.name}") for s in stages}
        names["in"] = current
        return [Stage(names[s.name], s.op, tuple(names[i] for i in s.inputs), s.label) for s in stages]

    def merge(
        self,
        mapping: Mapping[str, object],
        type_name: str,
        path: str,
        scope: Scope,
        current: str,
        where: Location,
        variables: Mapping[str, object],
    ) -> str:
        for key in mapping:
            if key not in ("type", "inputs", *ITEM_KEYS):
                raise SpecError(
                    f"a {type_name} merge has no field '{key}'.",
                    where=_at(self.spec.source, mapping, key),
                    hint="It takes 'inputs'.",
                )
        refs = substitute(mapping.get("inputs"), variables)
        if not isinstance(refs, list) or len(refs) < 2:
            raise SpecError(
                f"{type_name} needs 'inputs': a list of at least two layer names.",
                where=where,
                hint=f"Example: {{type: {type_name}, inputs: [previous, skip1]}}.",
            )
        inputs = [self.ref(r, scope, current, where) for r in refs]
        return self.merge_stage(type_name, path, inputs, where)

    def merge_stage(self, type_name: str, path: str, inputs: Sequence[str], where: Location) -> str:
        self.claimed.setdefault(path, where)
        stage = Stage(path, MERGES[type_name](), tuple(inputs))
        try:
            results = walk([stage], {name: self.tensors[name] for name in inputs})
        except ShapeError as err:
            raise err.with_context(layer=path, where=where) from None
        return self.record(path, type_name, [stage], results, (), where)

    # -- recording ------------------------------------------------------------------------------------

    def status(self, tensor: str) -> str:
        found = self.tensors[tensor]
        if len(found.shape) == 1:
            return NO_AXES
        if found.field is not None:
            return EXACT
        return self.reasons.get(tensor, UNTRACKED)

    def record(
        self, path: str, type_name: str, stages: list[Stage], results: list[StageResult], notes: tuple[str, ...], where: Location
    ) -> str:
        if len(self.result.rows) >= MAX_LAYERS:
            raise LimitError(f"the network expands to more than {MAX_LAYERS:,} layers.", hint="Lower a repeat count.")
        extra: list[str] = []
        for stage, result in zip(stages, results, strict=True):
            extra.extend(self.store(stage, result))
        self.result.stages.extend(stages)
        out = stages[-1].name
        stats = [r.stats for r in results]
        row = LayerRow(
            path,
            type_name,
            results[0].input_shapes if stages[0].op.merge else (results[0].input_shapes[0],),
            results[-1].output,
            *_costs(stats),
            field=self.tensors[out].field,
            rf_status=self.status(out),
            notes=tuple(dict.fromkeys((*notes, *(n for s in stats for n in s.notes), *extra))),
            where=where,
            stages=tuple(results),
        )
        self.result.rows.append(row)
        return out

    def store(self, stage: Stage, result: StageResult) -> list[str]:
        """Keep a stage's output tensor; track why a field is unknown; describe unaligned merges."""
        inputs = [self.tensors[name] for name in stage.inputs]
        field_value, aligned = result.field, result.aligned
        if stage.op.merge and field_value is not None:
            field_value, aligned = broadcast_merge(inputs, result.output)
        if len(result.output) == 1:
            field_value = ()
        elif field_value is None:
            unknown = [name for name, t in zip(stage.inputs, inputs, strict=True) if t.field is None and len(t.shape) > 1]
            if unknown:
                self.reasons[stage.name] = self.reasons.get(unknown[0], UNTRACKED)
            else:
                self.reasons[stage.name] = DATA_DEPENDENT if isinstance(stage.op, DeformSample) else UNTRACKED
        self.tensors[stage.name] = Tensor(result.output, field_value)
        return [] if aligned else [unaligned_note(stage.inputs, inputs, result.output)]

    # -- expectations --------------------------------------------------------------------------------

    def check_layer_expect(self, mapping: Mapping[str, object], path: str, out: str, start: int, where: Location) -> None:
        expect = mapping.get("expect")
        if expect is None:
            return
        expect = _mapping(expect, "'expect'", where)
        _check_keys(expect, LAYER_EXPECT, f"the 'expect' of layer '{path}'", self.spec.source)
        rows = self.result.rows[start:]
        actual: dict[str, object] = {
            "shape": self.spec.to_layout(self.tensors[out].shape),
            "params": sum(r.params for r in rows),
            "macs": sum(r.macs for r in rows),
        }
        for key, wanted in expect.items():
            at = _at(self.spec.source, expect, key)
            self.result.expectations.append(self.compare(f"layer '{path}' {key}", key, wanted, actual[key], at, path))

    def compare(
        self, what: str, key: str, wanted: object, actual: object, where: Location, layer: str | None = None
    ) -> Expectation:
        if key.endswith("shape"):
            try:
                target: object = tuple(parse_axes(wanted, key))
            except ConvcalcError as err:
                raise err.with_context(where=where) from None
            ok = target == actual
            message = f"{what}: expected {_shape_text(target)}, got {_shape_text(actual)}"
        elif key.startswith("max_"):
            limit = parse_count(wanted, key, where)
            ok = cast(int, actual) <= limit
            message = f"{what}: {cast(int, actual):,} {'<=' if ok else '>'} the limit {limit:,}"
        elif key == "receptive_field":
            target = [str(t) for t in _listify(wanted)]
            if len(target) == 1 and isinstance(actual, list):
                target *= len(actual)
            ok = target == [str(a) for a in _listify(actual)]
            message = f"{what}: expected {_shape_text(target)}, got {_shape_text(actual)}"
        else:
            number = parse_count(wanted, key, where)
            ok = number == actual
            message = f"{what}: expected {number:,}, got {cast(int, actual):,}"
        return Expectation(what, ok, message, where, layer)

    def check_network(self) -> None:
        expect = self.spec.expect
        if not expect:
            return
        totals = self.result.totals()
        output = self.result.output
        sizes: object = [rf.fmt(a.size) for a in output.field] if output and output.field else self.result.output_status
        actual: dict[str, object] = {
            "output_shape": self.spec.to_layout(self.result.output_shape),
            "params": totals.params,
            "macs": totals.macs,
            "flops": totals.flops,
            "max_params": totals.params,
            "max_macs": totals.macs,
            "max_flops": totals.flops,
            "receptive_field": sizes,
        }
        for key, wanted in expect.items():
            at = _at(self.spec.source, expect, key)
            self.result.expectations.append(self.compare(key, key, wanted, actual[key], at))


def _costs(stats: Sequence[OpStats]) -> tuple[int, int, int, int, int]:
    """Params, MACs, other ops, bias additions and moved elements of a layer's stages."""
    if len(stats) == 1:
        one = stats[0]
        return one.params, one.macs, one.other_ops, one.bias_adds, one.moved
    return (
        sum(s.params for s in stats),
        sum(s.macs for s in stats),
        sum(s.other_ops for s in stats),
        sum(s.bias_adds for s in stats),
        sum(s.moved for s in stats),
    )


def broadcast_merge(inputs: Sequence[Tensor], output: Shape) -> tuple[rf.Field, bool]:
    """Receptive field of a merge, per axis: the grid (effective stride, centre) of the inputs
    that have the output's size along the axis (:func:`convcalc.rf.merge`: the largest, and
    whether their grids agree), widened to the largest field of any input. A broadcast input
    (size 1, e.g. a squeeze-and-excitation gate) thus widens the field but never sets the grid.
    """
    axes: list[rf.AxisField] = []
    aligned = True
    for axis, size in enumerate(output[1:]):
        fields = [t.field[axis] for t in inputs if t.field is not None]
        grid, same = rf.merge([(t.field[axis],) for t in inputs if t.field is not None and t.shape[axis + 1] == size])
        widest = max(f.size for f in fields)
        axes.append(rf.AxisField(max(grid[0].size, widest), grid[0].jump, grid[0].start))
        aligned = aligned and same
    return tuple(axes), aligned


UNALIGNED = "merged paths are not aligned"
"""How an unaligned-merge note starts (:func:`unaligned_note`)."""


def unaligned_note(names: Sequence[str], inputs: Sequence[Tensor], output: Shape) -> str:
    """Name each full-size input of an unaligned merge with its effective stride and centre."""
    parts = []
    for name, tensor in zip(names, inputs, strict=True):
        if tensor.field is None or tensor.shape[1:] != output[1:]:
            continue
        jumps = "x".join(rf.fmt(a.jump) for a in tensor.field)
        starts = "x".join(rf.fmt(a.start) for a in tensor.field)
        parts.append(f"'{name}' (effective stride {jumps}, centre {starts})")
    return f"{UNALIGNED}: " + " vs ".join(parts) + "; the receptive field shown is the largest."


def note_kind(note: str) -> str:
    """What a note says regardless of the layer: an unaligned-merge note without its branches'
    names, strides and centres; any other note is its own kind."""
    if note.startswith(UNALIGNED):
        return f"{UNALIGNED} (the inputs differ in effective stride or centre); the receptive field shown is the largest."
    return note


def parse_count(value: object, key: str, where: Location) -> int:
    """A count in an expectation: an integer ``>= 0``, digits may be grouped (``25_557_032``, ``"4,100,000"``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).replace(",", "").replace("_", "").strip()
    if isinstance(value, str) and text.isdigit():
        return int(text)
    raise SpecError(f"'{key}' must be a whole number >= 0, got {value!r}.", where=where)


def _listify(value: object) -> list[object]:
    if isinstance(value, str):
        return [v for v in re.split(r"\s*[x×,]\s*", value.strip().strip("[]()")) if v]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _shape_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value) if value else "()"
    return str(value)


def evaluate_network(spec: NetworkSpec, *, batch: int | None = None) -> NetResult:
    """Evaluate every layer of ``spec``; raises :class:`NetworkError` (with the partial result).

    The cyclic garbage collector is paused meanwhile: evaluation allocates many small acyclic
    objects (freed by reference counting) and full collections re-traversing the growing heap
    doubled the time of a 10,000-layer network. It is restored afterwards.
    """
    with _gc_paused():
        return _Evaluator(spec, spec.batch if batch is None else batch).run()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def evaluate_file(path: str, *, batch: int | None = None) -> NetResult:
    """Load and evaluate a network file."""
    return evaluate_network(load_network(path), batch=batch)


# ==============================================================================================
# check
# ==============================================================================================


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one spec file."""

    file: str
    name: str
    expectations: tuple[Expectation, ...] = ()
    error: ConvcalcError | None = None

    @property
    def status(self) -> str:
        """``pass``, ``fail`` (an expectation does not hold) or ``error`` (the spec is bad input)."""
        if self.error is not None:
            return "error"
        return "fail" if any(not e.ok for e in self.expectations) else "pass"


def check_file(path: str) -> CheckResult:
    """Evaluate one spec and check its expectations; errors are captured, never raised."""
    try:
        spec = load_network(path)
    except ConvcalcError as err:
        return CheckResult(path, path, error=err)
    try:
        result = evaluate_network(spec)
    except NetworkError as err:
        return CheckResult(path, spec.name, tuple(err.partial.expectations), err.cause)
    return CheckResult(path, spec.name, tuple(result.expectations))


def expand_paths(patterns: Sequence[str]) -> Iterator[str]:
    """Files matched by each pattern, in order (a pattern without a match is passed through so
    its error names it)."""
    seen: set[str] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        for path in matches or [pattern]:
            if path not in seen:
                seen.add(path)
                yield path


def check(patterns: Sequence[str]) -> list[CheckResult]:
    """Check every spec matched by ``patterns`` (globs allowed)."""
    return [check_file(path) for path in expand_paths(patterns)]


def check_exit_code(results: Sequence[CheckResult]) -> int:
    """0 when every spec passes, 2 when any is bad input, else 1."""
    statuses = {r.status for r in results}
    if "error" in statuses:
        return 2
    return 1 if "fail" in statuses else 0


class _CallableModule(types.ModuleType):
    """``convcalc.network`` is this module and, called, the API function :func:`convcalc.api.network`
    (once imported, a submodule is its package's attribute, so the module itself forwards the call)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from convcalc.api import network

        return network(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "MAX_LAYERS",
    "MAX_NESTING",
    "MAX_REPEAT",
    "BlockInfo",
    "CheckResult",
    "Expectation",
    "LayerRow",
    "NetResult",
    "NetworkError",
    "NetworkSpec",
    "Template",
    "Totals",
    "TypeShare",
    "check",
    "check_exit_code",
    "check_file",
    "evaluate_expression",
    "evaluate_file",
    "evaluate_network",
    "expand_paths",
    "load_network",
    "note_kind",
    "parse_network",
    "substitute",
]
