"""The network spec model and its parser (format: ``specs/README.md``).

A network is a sequence of items::

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from convcalc.errors import ConvcalcError, Location, SpecError, check_printable, did_you_mean
from convcalc.kinds import all_kinds, lookup
from convcalc.network.expressions import NAME_PATTERN
from convcalc.parse.located import line_of, type_name
from convcalc.parse.values import LAYOUTS, from_channels_first, parse_axes, parse_int, to_channels_first
from convcalc.parse.yaml import load_file
from convcalc.primitives.base import Shape
from convcalc.primitives.merge import Add, Concat, Multiply

MAX_LAYERS = 100_000
"""Most layers (rows, merges included) a network may expand to."""
MAX_REPEAT = MAX_LAYERS
"""Largest ``repeat`` count (a larger one could never fit in :data:`MAX_LAYERS`)."""
MAX_NESTING = 32
"""Deepest nesting of blocks and template calls (recursive templates stop here)."""
MAX_PASSES = 10 * MAX_LAYERS
"""Most items evaluated, repetitions and skipped items (``when`` false) included: loops that
produce no layer are work too."""
MAX_CALLS = MAX_LAYERS
"""Most template calls (a template calling itself twice makes 2^depth calls)."""


MERGES: dict[str, type[Add] | type[Concat] | type[Multiply]] = {"add": Add, "concat": Concat, "multiply": Multiply}
BLOCK_KEYS = ("layers", "branches", "residual")
ITEM_KEYS = ("name", "input", "repeat", "first", "each", "when", "expect")
"""Keys every item may carry; a layer's other keys are its fields, a template call's its arguments."""
BLOCK_EXTRA = {"layers": (), "branches": ("merge",), "residual": ("shortcut", "merge")}
TOP_KEYS = ("name", "description", "input", "defaults", "variables", "define", "layers", "expect")
REFS = ("previous", "input")
LAYER_EXPECT = ("shape", "params", "macs")
NET_EXPECT = ("output_shape", "params", "macs", "flops", "max_params", "max_macs", "max_flops", "receptive_field")


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
        return from_channels_first(shape, self.layout)


def location_of(source: str, data: object, key: str | None = None) -> Location:
    line = line_of(data, key) if isinstance(data, Mapping) else None
    return Location(source, line)


def mapping_of(data: object, what: str, where: Location) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise SpecError(f"{what} must be a mapping, got {type_name(data)}.", where=where)
    return cast(Mapping[str, object], data)


def check_keys(data: Mapping[str, object], allowed: Sequence[str], what: str, source: str) -> None:
    for key in data:
        if key not in allowed:
            raise SpecError(
                f"{what} has no key '{key}'.{did_you_mean(str(key), allowed)}",
                where=location_of(source, data, key),
                hint=f"Allowed keys: {', '.join(allowed)}.",
            )


def parse_input(value: object, source: str, where: Location) -> tuple[Shape, str, int]:
    """``input``: a shape (1 to 4 sizes: C, CxL, CxHxW, CxDxHxW) or ``{shape, batch, layout}``."""
    batch, layout = 1, "channels_first"
    if isinstance(value, Mapping):
        check_keys(value, ("shape", "batch", "layout"), "'input'", source)
        if "shape" not in value:
            raise SpecError("'input' needs a 'shape'.", where=where, hint="Example: input: {shape: 3x224x224, batch: 8}.")
        if "batch" in value:
            try:
                batch = parse_int(value["batch"], "batch")
            except ConvcalcError as err:
                raise err.with_context(where=location_of(source, value, "batch")) from None
        layout = str(value.get("layout", layout))
        if layout not in LAYOUTS:
            raise SpecError(f"'layout' must be one of {', '.join(LAYOUTS)}, got {layout!r}.", where=location_of(source, value, "layout"))
        where = location_of(source, value, "shape")
        value = value["shape"]
    try:
        shape = parse_axes(value, "input")
    except ConvcalcError as err:
        raise err.with_context(where=where) from None
    if not 1 <= len(shape) <= 4:
        raise SpecError(
            f"'input' must have 1 to 4 sizes (C, CxL, CxHxW or CxDxHxW), got {len(shape)}.",
            where=where,
            hint="Example: input: 3x224x224 (the batch goes in 'batch').",
        )
    return to_channels_first(shape, layout), layout, batch


def _parse_templates(data: object, source: str, where: Location) -> dict[str, Template]:
    templates: dict[str, Template] = {}
    for name, body in mapping_of(data, "'define'", where).items():
        at = location_of(source, data, name)
        _check_new_name(name, at)
        if isinstance(body, list):
            templates[name] = Template(name, {}, body, at)
            continue
        entry = mapping_of(body, f"template '{name}'", at)
        check_keys(entry, ("params", "layers", "description"), f"template '{name}'", source)
        if not isinstance(entry.get("layers"), list):
            raise SpecError(f"template '{name}' needs a 'layers' list.", where=at)
        params = entry.get("params") or {}
        if isinstance(params, list):
            params = dict.fromkeys((str(p) for p in params), REQUIRED_PARAM)
        templates[name] = Template(
            name, mapping_of(params, f"'params' of template '{name}'", at), cast(list[object], entry["layers"]), at
        )
    return templates


def _check_new_name(name: str, where: Location) -> None:
    if not NAME_PATTERN.fullmatch(name):
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
    for key, value in mapping_of(data, "'defaults'", where).items():
        at = location_of(source, data, key)
        if isinstance(value, Mapping):
            try:
                kind = lookup(key)
            except SpecError as err:
                raise err.with_context(where=at) from None
            for field_key in value:
                if kind.field(str(field_key)) is None:
                    raise SpecError(
                        f"defaults for {kind.name}: it has no field '{field_key}'.", where=location_of(source, value, field_key)
                    )
            per_kind[kind.name] = dict(value)
        elif not _field_names(key):
            raise SpecError(
                f"'defaults' names '{key}', which is no field of any layer type.{did_you_mean(key, every_field)}", where=at
            )
        else:
            flat[key] = value
    return flat, per_kind


def parse_network(data: object, source: str) -> NetworkSpec:
    """Validate the top level of a network file (items are checked when evaluated)."""
    top = mapping_of(data, "a network spec", Location(source, 1))
    where = location_of(source, top)
    check_keys(top, TOP_KEYS, "a network spec", source)
    for key in ("input", "layers"):
        if key not in top:
            raise SpecError(
                f"the network has no '{key}'.", where=where, hint="A network needs 'input' (a shape) and 'layers' (a list)."
            )
    layers = top["layers"]
    if not isinstance(layers, list) or not layers:
        raise SpecError("'layers' must be a non-empty list.", where=location_of(source, top, "layers"))
    shape, layout, batch = parse_input(top["input"], source, location_of(source, top, "input"))
    variables = dict(mapping_of(top.get("variables") or {}, "'variables'", where))
    flat, per_kind = _parse_defaults(top.get("defaults") or {}, source, location_of(source, top, "defaults"))
    expect = top.get("expect")
    if expect is not None:
        check_keys(mapping_of(expect, "'expect'", location_of(source, top, "expect")), NET_EXPECT, "the network's 'expect'", source)
    name = str(top.get("name") or source.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    try:
        check_printable(name, "the network name")
    except SpecError as err:
        raise err.with_context(where=location_of(source, top, "name")) from None
    return NetworkSpec(
        name=name,
        source=source,
        input_shape=shape,
        layout=layout,
        batch=batch,
        layers=layers,
        templates=_parse_templates(top.get("define") or {}, source, location_of(source, top, "define")),
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
