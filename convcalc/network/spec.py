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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

from convcalc.errors import ConvcalcError, LimitError, Location, SpecError, check_printable, did_you_mean
from convcalc.kinds import all_kinds, lookup
from convcalc.network.expressions import NAME_PATTERN
from convcalc.parse.located import line_of, type_name
from convcalc.parse.values import LAYOUTS, from_channels_first, parse_axes, parse_int, to_channels_first
from convcalc.parse.yaml import load_file, load_text
from convcalc.primitives.base import Shape
from convcalc.primitives.merge import Add, Concat, Multiply

MAX_LAYERS = 100_000
"""Most layers (rows, merges included) a network may expand to."""
MAX_REPEAT = MAX_LAYERS
"""Largest ``repeat`` count (a larger one could never fit in :data:`MAX_LAYERS`)."""
MAX_NESTING = 32
"""Deepest nesting of blocks and template calls (recursive templates stop here)."""
MAX_PASSES = 4 * MAX_LAYERS
"""Most items evaluated, repetitions and skipped items (``when`` false) included: loops that
produce no layer are work too (a network of :data:`MAX_LAYERS` layers needs fewer)."""
MAX_CALLS = MAX_LAYERS // 2
"""Most template calls (a template calling itself twice makes 2^depth calls); a call costs tens
of microseconds, so this bounds a hostile spec to seconds and leaves a call per two layers."""
MAX_INCLUDE_DEPTH = 8
"""Deepest chain of ``include`` (a file including a file including ...)."""
MAX_INCLUDE_FILES = 64
"""Most distinct files one spec may include, directly or not."""


MERGES: dict[str, type[Add] | type[Concat] | type[Multiply]] = {"add": Add, "concat": Concat, "multiply": Multiply}
BLOCK_KEYS = ("layers", "branches", "residual")
ITEM_KEYS = ("name", "input", "repeat", "first", "each", "when", "expect", "training_only")
"""Keys every item may carry; a layer's other keys are its fields, a template call's its arguments."""
BLOCK_EXTRA = {"layers": (), "branches": ("merge",), "residual": ("shortcut", "merge")}
TOP_KEYS = ("name", "description", "include", "input", "defaults", "variables", "define", "layers", "expect")
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
    skipped: frozenset[str] = frozenset()
    """``expect`` keys that no longer apply after :func:`override` (reported as skipped)."""
    overridden: str = ""
    """What :func:`override` changed, for the skipped expectations' message."""

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
    templates: dict[str, Template] = {}
    variables: dict[str, object] = {}
    _gather(top, source, _Includes(), templates, variables)
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
        templates=templates,
        variables=variables,
        defaults=flat,
        kind_defaults=per_kind,
        expect=cast("Mapping[str, object] | None", expect),
        where=where,
    )


@dataclass
class _Includes:
    """What :func:`_gather` has seen: the chain of files being read (cycles), every file read
    (a file included twice by different routes is read once), where each name was defined."""

    chain: tuple[str, ...] = ()
    seen: set[str] = field(default_factory=set)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)


def _gather(top: Mapping[str, object], source: str, state: _Includes, templates: dict[str, Template], variables: dict[str, object]) -> None:
    """``include: [a.yaml, ...]``: the included files' ``define`` and ``variables`` first (depth
    first, paths relative to the including file), then this file's. A name defined in two files
    is an error naming both; cycles and chains deeper than :data:`MAX_INCLUDE_DEPTH` are refused."""
    here = location_of(source, top, "include")
    entries = top.get("include") or []
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise SpecError("'include' must be a list of spec file paths.", where=here, hint="Example: include: [include/backbone.yaml].")
    me = _identity(source)
    chain = (*state.chain, me)
    for entry in cast(list[str], entries):
        path = (Path(source).parent if Path(source).is_file() else Path.cwd()) / entry
        key = _identity(str(path))
        if key in chain:
            cycle = " -> ".join(Path(c).name for c in (*chain[chain.index(key):], key))
            raise SpecError(f"'include' makes a cycle: {cycle}.", where=here, hint="Move the shared definitions into a third file.")
        if len(chain) > MAX_INCLUDE_DEPTH:
            raise LimitError(f"'include' nests deeper than {MAX_INCLUDE_DEPTH} files.", where=here)
        if key in state.seen:
            continue
        state.seen.add(key)
        if len(state.seen) > MAX_INCLUDE_FILES:
            raise LimitError(f"the spec includes more than {MAX_INCLUDE_FILES} files.", where=here)
        try:
            data, included = load_file(str(path))
        except ConvcalcError as err:
            raise err.with_context(where=here) from None
        inner = mapping_of(data, "an included spec", Location(included, 1))
        check_keys(inner, TOP_KEYS, "an included spec", included)
        _gather(inner, included, _Includes(chain, state.seen, state.origin), templates, variables)
    where = location_of(source, top)
    for name, template in _parse_templates(top.get("define") or {}, source, location_of(source, top, "define")).items():
        _claim(state, "template", name, source, template.where)
        templates[name] = template
    for name, value in mapping_of(top.get("variables") or {}, "'variables'", where).items():
        _claim(state, "variable", name, source, location_of(source, top.get("variables"), name))
        variables[name] = value


def _identity(source: str) -> str:
    """A file's identity for cycle checks (its resolved path; ``<stdin>`` as is)."""
    path = Path(source)
    return str(path.resolve()) if path.is_file() else source


def _claim(state: _Includes, what: str, name: str, source: str, where: Location) -> None:
    first = state.origin.setdefault((what, name), source)
    if first != source:
        raise SpecError(
            f"the {what} '{name}' is defined both in {first} and in {source}.",
            where=where,
            hint="Rename one of them (names brought in by 'include' share one namespace).",
        )


INPUT_DEPENDENT = frozenset({"shape", "output_shape", "macs", "flops", "max_macs", "max_flops", "receptive_field"})
"""Expectations that change with the input's spatial size (params do not)."""


def override(spec: NetworkSpec, in_shape: str | None = None, values: Mapping[str, object] | None = None) -> NetworkSpec:
    """``--in SHAPE`` (a new input, in the spec's layout) and ``--set name=value`` (a new value of a
    top-level variable, read as a YAML scalar: ``8``, ``0.75``, ``true``, ``relu``).

    Expectations that no longer apply are marked skipped: those that depend on the spatial size
    when only that changed; all of them when the channels, the rank or a variable changed.
    """
    changes: list[str] = []
    everything = False
    shape = spec.input_shape
    if in_shape is not None:
        shape = to_channels_first(parse_axes(in_shape, "--in"), spec.layout)
        if len(shape) != len(spec.input_shape):
            raise SpecError(
                f"--in {in_shape} has {len(shape)} sizes; the spec's input {'x'.join(map(str, spec.input_shape))} has {len(spec.input_shape)}.",
                hint="Give a shape of the same rank (channels first unless the spec says channels_last).",
            )
        if shape != spec.input_shape:
            changes.append(f"--in {in_shape}")
            everything = shape[0] != spec.input_shape[0]
    variables = dict(spec.variables)
    for name, raw in (values or {}).items():
        text = str(raw)
        if name not in variables:
            known = ", ".join(sorted(variables)) or "none"
            raise SpecError(
                f"--set {name}: the spec has no top-level variable '{name}'.{did_you_mean(name, list(variables))}",
                hint=f"Its variables: {known}.",
            )
        value = load_text(text, "--set") if text.strip() else text
        if value != variables[name]:
            variables[name] = value
            changes.append(f"--set {name}={text}")
            everything = True
    if not changes:
        return spec
    expect = {*NET_EXPECT, *LAYER_EXPECT} if everything else INPUT_DEPENDENT
    return replace(spec, input_shape=shape, variables=variables, skipped=frozenset(expect), overridden=", ".join(changes))


def load_network(path: str) -> NetworkSpec:
    """Read and parse a network file (``-`` reads stdin)."""
    data, source = load_file(path)
    return parse_network(data, source)
