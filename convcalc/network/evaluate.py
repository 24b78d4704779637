"""Evaluate a network spec.

Evaluation walks the items once, in order. Each layer is expanded by its kind
(:func:`convcalc.engine.expand`) into primitive stages whose names are prefixed by the layer's
path (``stage1.0.conv``); all of them form one flat graph (:attr:`NetResult.stages`), evaluated
by :func:`convcalc.engine.walk` layer by layer, so the work is linear in the number of layers.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

from convcalc import rf
from convcalc.engine import StageResult, Tensor, expand, walk
from convcalc.errors import ConvcalcError, LimitError, Location, ShapeError, SpecError, check_printable, did_you_mean
from convcalc.kinds import lookup
from convcalc.kinds.base import Kind, normalise_name
from convcalc.network.expressions import substitute, with_lines
from convcalc.network.result import (
    EVAL,
    UNALIGNED,
    BlockInfo,
    Expectation,
    LayerRow,
    NetResult,
    NetworkError,
)
from convcalc.network.spec import (
    BLOCK_EXTRA,
    BLOCK_KEYS,
    ITEM_KEYS,
    LAYER_EXPECT,
    MAX_CALLS,
    MAX_LAYERS,
    MAX_NESTING,
    MAX_PASSES,
    MAX_REPEAT,
    MERGES,
    REFS,
    REQUIRED_PARAM,
    NetworkSpec,
    Template,
    check_keys,
    load_network,
    location_of,
    mapping_of,
)
from convcalc.parse.layer import LayerSpec, parse_layer
from convcalc.parse.located import LineDict, line_of, line_of_item
from convcalc.parse.values import check_digits, parse_axes, parse_int
from convcalc.primitives.base import Shape, Stage
from convcalc.report import EXACT, NO_AXES, NOT_TRACKED, Costs, field_status, global_context, sum_costs


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


def _computed(name: object) -> bool:
    """Whether a ``name`` is an expression or holds ``${...}`` (evaluated per item)."""
    return isinstance(name, str) and "$" in name


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


INPUT_TENSOR = "input"


class Item(NamedTuple):
    """One item being evaluated, handed from method to method instead of six arguments: its
    mapping, its path (``None`` for an unnamed block), the scope it is in, the tensor it reads,
    where it is written, and its variables (the scope's plus ``in_channels``)."""

    mapping: Mapping[str, object]
    path: str | None
    scope: Scope
    current: str
    where: Location
    variables: Mapping[str, object]

    @property
    def name(self) -> str:
        """The path of a typed item (layers, merges, template calls are always named)."""
        return cast(str, self.path)


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

    def __init__(self, spec: NetworkSpec, batch: int, mode: str = EVAL) -> None:
        self.spec = spec
        self.source = spec.source
        """The file of the items being evaluated (a template's body is in the file defining it)."""
        self.result = NetResult(spec, batch, mode=mode)
        self.training = 0  # > 0 inside a training_only item
        self.tensors: dict[str, Tensor] = {INPUT_TENSOR: Tensor(spec.input_shape, rf.identity_field(len(spec.input_shape) - 1))}
        self.reasons: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.claimed: dict[str, Location] = {}
        self.counters: dict[str, int] = {}
        self.pending: list[tuple[str, dict[str, int | None]]] = []
        self.defaults_cache: dict[str, dict[str, object]] = {}
        self.passes = 0
        self.calls = 0

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
            if not isinstance(raw, dict) or raw.get("name") is None or _computed(raw["name"]):
                continue
            name, line = str(raw["name"]), line_of(raw)
            if name in names:
                first = names[name]
                raise SpecError(
                    f"the name '{name}' is used twice in one block" + (f" (first at line {first})." if first else "."),
                    layer=_join(scope.path, name),
                    where=Location(self.source, line),
                    hint="Names must be unique among siblings.",
                )
            names[name] = line
        return names

    @staticmethod
    def check_name(name: str) -> None:
        check_printable(name, "the name")
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
        return Location(self.source, line_of(raw) if isinstance(raw, dict) else line)

    def count_pass(self, where: Location) -> None:
        """Count one item evaluated (repetitions and skipped items too): the work, not only the rows."""
        self.passes += 1
        if self.passes > MAX_PASSES:
            raise LimitError(
                f"evaluating the network takes more than {MAX_PASSES:,} item passes (repeats or skipped items nested in repeats?).",
                where=where,
                hint="Lower the repeat counts; a 'when' that is false still costs a pass.",
            )

    def item(self, raw: object, scope: Scope, current: str, line: int | None = None) -> str:
        """Evaluate one item. An item skipped by ``when`` takes neither a name nor a position."""
        where = self.where(raw, line)
        path: str | None = None
        try:
            self.count_pass(where)
            mapping = self.as_item(raw, where)
            if "repeat" in mapping:
                if _computed(mapping.get("name")):
                    return self.repeat(mapping, None, scope, current, where)
                path = self.item_path(mapping, scope, current) or _join(scope.path, self.auto_name(scope.path))
                return self.repeat(mapping, path, scope, current, where)
            if "when" in mapping and not substitute(mapping["when"], self.variables(scope, current)):
                return current
            path = self.item_path(mapping, scope, current)
            if path is None and "type" in mapping:
                path = _join(scope.path, self.auto_name(scope.path))
            return self.single(mapping, path, scope, current, where)
        except ConvcalcError as err:
            raise _located(err, path or scope.path or None, where) from None

    def item_path(self, mapping: Mapping[str, object], scope: Scope, current: str) -> str | None:
        """The path of a named item (``name`` may be computed: ``$t``, ``"denselayer${i + 1}"``);
        a name takes the place of a position, so the positions after it keep counting."""
        raw = mapping.get("name")
        if raw is None:
            return None
        value = substitute(raw, self.variables(scope, current)) if _computed(raw) else raw
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise SpecError(
                f"the name {raw!r} evaluates to {value!r}, not a name.",
                where=location_of(self.source, mapping, "name"),
                hint='Names are text: name: "block${i + 1}".',
            )
        name = str(value)
        self.check_name(name)
        self.counters[scope.path] = self.counters.get(scope.path, 0) + 1
        return _join(scope.path, name)

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
        mapping = mapping_of(raw, "a layer", where)
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

    def repeat(self, mapping: Mapping[str, object], path: str | None, scope: Scope, current: str, where: Location) -> str:
        """``repeat: n``: repetitions ``path.0`` ... ``path.n-1``, or, when ``path`` is None (a
        computed ``name`` such as ``"denselayer${i + 1}"``), each repetition named by its own
        name directly in the enclosing block (``i`` is visible while the name is evaluated)."""
        variables = self.variables(scope, current)
        self.check_depth(scope, "repeat")
        at = location_of(self.source, mapping, "repeat")
        count = parse_count(substitute(mapping["repeat"], variables), "repeat", at)
        if count > MAX_REPEAT or len(self.result.rows) + count > MAX_LAYERS:
            raise LimitError(f"repeat: {count:,} would exceed the limit of {MAX_LAYERS:,} layers.", where=at)
        first = mapping_of(substitute(mapping.get("first") or {}, variables), "'first'", where)
        each = self.each(mapping, count, variables, where)
        if path is not None:
            self.claim(path, where)
            self.result.blocks[path] = BlockInfo(path, f"{self.describe(mapping)} x{count}", where)
        keep = ("name",) if path is None else ()
        base = {k: v for k, v in mapping.items() if k not in ("repeat", "first", "each", "name", "expect") or k in keep}
        start = len(self.result.rows)
        for i in range(count):
            values = {**base, **(first if i == 0 else {}), **{k: v[i] for k, v in each.items()}}
            if i > 0:
                values.pop("input", None)
            item = with_lines(mapping, values)
            if i == 0:
                item.lines.update({k: line for k in first if (line := line_of(first, k)) is not None})
            self.count_pass(where)
            namespace = scope.path if path is None else path
            iteration = Scope(namespace, {**scope.variables, "i": i}, current, scope.depth + 1, scope.calls)
            if "when" in item and not substitute(item["when"], self.variables(iteration, current)):
                continue
            before = len(self.result.rows)
            child = self.item_path(item, iteration, current) if path is None else _join(path, str(i))
            current = self.single(item, child, iteration, current, where)
            if i == 1 and not each and "when" not in base:
                self.check_projection(count, len(self.result.rows) - before, at)
        if path is not None:
            self.names[path] = current
        self.check_layer_expect(mapping, path or f"repeat at line {where.line}", current, start, where)
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
        each = mapping_of(substitute(mapping.get("each") or {}, variables), "'each'", where)
        out: dict[str, list[object]] = {}
        for key, values in each.items():
            if not isinstance(values, list) or len(values) != count:
                raise SpecError(
                    f"'each: {key}' must be a list of {count} values (one per repetition).",
                    where=location_of(self.source, each, key),
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
        item = Item(mapping, path, scope, current, where, variables)
        training = self.training_only(mapping, variables)
        self.training += training
        try:
            out = self.block(item) if path is None or "type" not in mapping else self.typed(item)
        finally:
            self.training -= training
        if path is not None:
            self.names[path] = out
        self.check_layer_expect(mapping, path or f"block at line {where.line}", out, start, where)
        return out

    def training_only(self, mapping: Mapping[str, object], variables: Mapping[str, object]) -> bool:
        """The item's ``training_only`` flag (a boolean, possibly from an expression)."""
        value = substitute(mapping.get("training_only", False), variables)
        if not isinstance(value, bool):
            raise SpecError(
                f"'training_only' must be true or false, got {value!r}.",
                where=location_of(self.spec.source, mapping, "training_only"),
                hint="Mark an auxiliary head: 'training_only: true' (its params count; its MACs only with --mode train).",
            )
        return value

    def typed(self, item: Item) -> str:
        type_name = normalise_name(str(substitute(item.mapping["type"], item.variables)))
        if type_name in MERGES:
            return self.merge(item, type_name)
        if type_name in self.spec.templates:
            return self.call(item, self.spec.templates[type_name])
        return self.leaf(item)

    def block(self, item: Item) -> str:
        mapping, path, scope, current, where, variables = item
        structure = next(k for k in BLOCK_KEYS if k in mapping)
        allowed = (*ITEM_KEYS, structure, *BLOCK_EXTRA[structure])
        for key in mapping:
            if key not in allowed:
                raise SpecError(
                    f"a '{structure}' block has no key '{key}'.{did_you_mean(key, allowed)}",
                    where=location_of(self.source, mapping, key),
                    hint=f"Its keys: {', '.join(allowed)}.",
                )
        self.check_depth(scope, structure)
        namespace = scope.path if path is None else path
        inner = scope.child(namespace, current)
        if structure == "layers":
            self.add_block(path, "sequence", where)
            return self.sequence(self.items(mapping, "layers", variables), inner, current)
        if structure == "branches":
            return self.branches(item, inner)
        self.add_block(path, "residual", where)
        return self.residual(item, inner)

    def add_block(self, path: str | None, type_name: str, where: Location) -> None:
        if path is not None:
            self.result.blocks[path] = BlockInfo(path, type_name, where)

    def items(self, mapping: Mapping[str, object], key: str, variables: Mapping[str, object]) -> list[object]:
        value = mapping[key]
        if isinstance(value, str) and value.startswith("$"):
            value = substitute(value, variables)
        if not isinstance(value, list):
            raise SpecError(f"'{key}' must be a list of layers.", where=location_of(self.source, mapping, key))
        return value

    def merge_kind(self, mapping: Mapping[str, object], default: str | None, variables: Mapping[str, object]) -> str:
        value = mapping.get("merge", default)
        if value is None:
            raise SpecError("branches need 'merge: add', 'concat' or 'multiply'.", where=location_of(self.source, mapping))
        merge = normalise_name(str(substitute(value, variables)))
        if merge not in MERGES:
            raise SpecError(
                f"'merge' must be add, concat or multiply, got {value!r}.", where=location_of(self.source, mapping, "merge")
            )
        return merge

    def branches(self, item: Item, inner: Scope) -> str:
        mapping, path, _, current, where, variables = item
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

    def residual(self, item: Item, inner: Scope) -> str:
        mapping, _, _, current, where, variables = item
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
                shortcut, "shortcut", "shortcut", inner, current, location_of(self.source, mapping, "shortcut")
            )
        elif isinstance(shortcut, Mapping):
            other = self.item(shortcut, inner, current)
        else:
            raise SpecError(
                f"'shortcut' must be identity/true, none/false, a list of layers or one item, got {shortcut!r}.",
                where=location_of(self.source, mapping, "shortcut"),
            )
        return self.merge_stage(merge, _join(inner.path, self.auto_name(inner.path, merge)), [out, other], where)

    def call(self, item: Item, template: Template) -> str:
        mapping, _, scope, current, where, variables = item
        path = item.name
        args: dict[str, object] = {}
        for key, value in mapping.items():
            if key in ITEM_KEYS or key == "type":
                continue
            if key not in template.params:
                raise SpecError(
                    f"template '{template.name}' has no parameter '{key}'.{did_you_mean(key, list(template.params))}",
                    where=location_of(self.source, mapping, key),
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
        self.calls += 1
        if self.calls > MAX_CALLS:
            raise LimitError(
                f"the network makes more than {MAX_CALLS:,} template calls (a template calling itself more than once?).",
                hint="A recursive template needs a 'when' that stops it after a few calls.",
            )
        self.add_block(path, template.name, where)
        inner = scope.child(path, current, {**self.spec.variables, **args}, call=template.name)
        caller, self.source = self.source, template.where.file
        try:
            return self.sequence(template.body, inner, current)
        finally:
            self.source = caller

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
                        where=location_of(template.where.file, template.params, key),
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
            f"unknown reference '{value}'.{did_you_mean(value, visible)}",
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

    def leaf(self, item: Item) -> str:
        mapping, _, _, current, where, variables = item
        path = item.name
        resolved = {k: substitute(v, variables) for k, v in mapping.items() if k not in ITEM_KEYS}
        kind = lookup(resolved["type"])
        spec = parse_layer(with_lines(mapping, resolved), name=path, where=where, defaults=self.kind_defaults(kind))
        source = self.tensors[current]
        stages, notes = expand(spec, source.shape)
        flat = self.prefix(stages, path, current)
        results = walk(flat, {current: source})
        return self.record(path, spec.kind, flat, results, notes, where, spec)

    @staticmethod
    def prefix(stages: Sequence[Stage], path: str, current: str) -> list[Stage]:
        """Rename a layer's stages into the flat graph: the last one is the layer's path."""
        last = stages[-1].name
        names = {s.name: (path if s.name == last else f"{path}/{s.name}") for s in stages}
        names["in"] = current
        return [Stage(names[s.name], s.op, tuple(names[i] for i in s.inputs), s.label) for s in stages]

    def merge(self, item: Item, type_name: str) -> str:
        mapping, _, scope, current, where, variables = item
        path = item.name
        for key in mapping:
            if key not in ("type", "inputs", *ITEM_KEYS):
                raise SpecError(
                    f"a {type_name} merge has no field '{key}'.",
                    where=location_of(self.source, mapping, key),
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
        return self.reasons.get(tensor, NOT_TRACKED)

    def record(
        self,
        path: str,
        type_name: str,
        stages: list[Stage],
        results: list[StageResult],
        notes: tuple[str, ...],
        where: Location,
        spec: LayerSpec | None = None,
    ) -> str:
        if len(self.result.rows) >= MAX_LAYERS:
            raise LimitError(f"the network expands to more than {MAX_LAYERS:,} layers.", hint="Lower a repeat count.")
        extra: list[str] = []
        for stage, result in zip(stages, results, strict=True):
            extra.extend(self.store(stage, result))
        self.result.stages.extend(stages)
        out = stages[-1].name
        stats = [r.stats for r in results]
        costs = sum_costs(stats)
        training = self.training > 0
        if training and self.result.mode == EVAL:
            costs = Costs(weights=costs.weights, biases=costs.biases)  # not run in eval mode
        row = LayerRow(
            path,
            type_name,
            results[0].input_shapes if stages[0].op.merge else (results[0].input_shapes[0],),
            results[-1].output,
            costs,
            field=self.tensors[out].field,
            rf_status=self.status(out),
            global_context=global_context(self.status(out), self.tensors[out].context),
            notes=tuple(dict.fromkeys((*notes, *(n for s in stats for n in s.notes), *extra))),
            where=where,
            stages=tuple(results),
            training_only=training,
            spec=spec,
        )
        self.result.rows.append(row)
        return out

    def store(self, stage: Stage, result: StageResult) -> list[str]:
        """Keep a stage's output tensor; track why a field is unknown; describe unaligned merges."""
        inputs = [self.tensors[name] for name in stage.inputs]
        field_value, aligned = result.field, result.aligned
        if stage.op.merge and field_value is not None:
            field_value, aligned = broadcast_merge([t for t in inputs if t.local], result.output)
        if len(result.output) == 1:
            field_value = ()
        elif field_value is None:
            statuses = map(self.status, stage.inputs)
            self.reasons[stage.name] = field_status(result.output, None, stage.op, statuses, result.local)
        self.tensors[stage.name] = Tensor(result.output, field_value, result.context, result.local)
        return [] if aligned else [unaligned_note(stage.inputs, inputs, result.output)]

    # -- expectations --------------------------------------------------------------------------------

    def check_layer_expect(self, mapping: Mapping[str, object], path: str, out: str, start: int, where: Location) -> None:
        expect = mapping.get("expect")
        if expect is None:
            return
        expect = mapping_of(expect, "'expect'", where)
        check_keys(expect, LAYER_EXPECT, f"the 'expect' of layer '{path}'", self.source)
        rows = self.result.rows[start:]
        actual: dict[str, object] = {
            "shape": self.spec.to_layout(self.tensors[out].shape),
            "params": sum(r.params for r in rows),
            "macs": sum(r.macs for r in rows),
        }
        for key, wanted in expect.items():
            at = location_of(self.source, expect, key)
            self.result.expectations.append(self.compare(f"layer '{path}' {key}", key, wanted, actual[key], at, path))

    def compare(
        self, what: str, key: str, wanted: object, actual: object, where: Location, layer: str | None = None
    ) -> Expectation:
        if key in self.spec.skipped:
            message = f"{what}: skipped, the spec states it for its own input and variables (not {self.spec.overridden})"
            return Expectation(what, True, message, where, layer, skipped=True)
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
            at = location_of(self.source, expect, key)
            self.result.expectations.append(self.compare(key, key, wanted, actual[key], at))


def broadcast_merge(inputs: Sequence[Tensor], output: Shape) -> tuple[rf.Field, bool]:
    """Receptive field of a merge of ``inputs`` (those a local path reaches), per axis: the grid
    (effective stride, centre) of the inputs that have the output's size along the axis
    (:func:`convcalc.rf.merge`: the largest, and whether their grids agree; all inputs if none
    has), widened to the largest field of any input. A broadcast input (size 1 along the axis)
    thus widens the field but never sets the grid. A squeeze-and-excitation gate is no such
    input: it passed a global pooling, so it is not local (:mod:`convcalc.rf`).
    """
    axes: list[rf.AxisField] = []
    aligned = True
    for axis, size in enumerate(output[1:]):
        fields = [t.field[axis] for t in inputs if t.field is not None]
        full: list[rf.Field] = [(f,) for t, f in zip(inputs, fields, strict=True) if t.shape[axis + 1] == size]
        grid, same = rf.merge(full or [(f,) for f in fields])
        widest = max(f.size for f in fields)
        axes.append(rf.AxisField(max(grid[0].size, widest), grid[0].jump, grid[0].start))
        aligned = aligned and same
    return tuple(axes), aligned




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


def parse_count(value: object, key: str, where: Location) -> int:
    """A count in an expectation: an integer ``>= 0``, digits may be grouped (``25_557_032``, ``"4,100,000"``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).replace(",", "").replace("_", "").strip()
    if isinstance(value, str) and text.isdigit():
        try:
            check_digits(text, key)
        except ConvcalcError as err:
            raise err.with_context(where=where) from None
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


def evaluate_network(spec: NetworkSpec, *, batch: int | None = None, mode: str = EVAL) -> NetResult:
    """Evaluate every layer of ``spec``; raises :class:`NetworkError` (with the partial result).
    ``mode`` (:data:`~convcalc.network.result.MODES`): ``train`` also counts the work of
    ``training_only`` items.

    The cyclic garbage collector is paused meanwhile: evaluation allocates many small acyclic
    objects (freed by reference counting) and full collections re-traversing the growing heap
    doubled the time of a 10,000-layer network. It is restored afterwards.
    """
    batch = spec.batch if batch is None else parse_int(batch, "batch")
    with _gc_paused():
        return _Evaluator(spec, batch, mode).run()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def evaluate_file(path: str, *, batch: int | None = None, mode: str = EVAL) -> NetResult:
    """Load and evaluate a network file."""
    return evaluate_network(load_network(path), batch=batch, mode=mode)
