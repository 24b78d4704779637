"""Layer specs: validate a raw mapping (YAML or CLI flags) into a frozen :class:`LayerSpec`.

Field names are resolved through the kind's declared names and aliases; every value is parsed
by its field's parser; unknown and missing fields are refused with the closest suggestion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, cast

from convcalc.errors import ConvcalcError, Location, SpecError, check_printable, did_you_mean
from convcalc.kinds import lookup
from convcalc.kinds.base import Params
from convcalc.parse.located import LineDict, line_of, type_name
from convcalc.parse.values import LAYOUTS, parse_int, parse_shape, to_channels_first
from convcalc.primitives.base import Shape

RESERVED = ("type", "name")


class LayerSpec(NamedTuple):
    """A validated layer: its kind, every field's parsed value (defaults included), name and origin."""

    kind: str
    values: tuple[tuple[str, object], ...]
    name: str
    where: Location | None = None

    def params(self, rank: int) -> Params:
        return Params(dict(self.values), rank)

    def get(self, field: str) -> object:
        return dict(self.values)[field]


def _field_where(raw: Mapping[str, object], key: str, where: Location | None) -> Location | None:
    line = line_of(raw, key)
    if where is None or line is None:
        return where
    return Location(where.file, line)


def parse_layer(
    raw: Mapping[str, object],
    *,
    name: str | None = None,
    where: Location | None = None,
    defaults: Mapping[str, object] | None = None,
    ignore: tuple[str, ...] = (),
) -> LayerSpec:
    """Validate ``raw`` (must contain ``type``) into a :class:`LayerSpec`.

    ``defaults`` (e.g. a network's ``bias: false``) fill fields the kind has and ``raw`` omits;
    keys in ``ignore`` belong to the caller (e.g. ``input``, ``expect``).
    """
    if "type" not in raw:
        raise SpecError("the layer has no 'type'.", where=where, hint="Add e.g. 'type: conv2d'.")
    layer_name = name or str(raw.get("name") or raw["type"])
    try:
        check_printable(layer_name, "the layer name")
    except SpecError as err:
        raise err.with_context(where=_field_where(raw, "name", where)) from None
    try:
        kind = lookup(raw["type"])
    except SpecError as err:
        raise err.with_context(layer=layer_name, where=_field_where(raw, "type", where)) from None
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key in RESERVED or key in ignore:
            continue
        fdef = kind.field(str(key))
        if fdef is None:
            names = [f.name for f in kind.fields]
            raise SpecError(
                f"{kind.name} has no field '{key}'.{did_you_mean(str(key), names)}",
                layer=layer_name,
                where=_field_where(raw, key, where),
                hint=f"Its fields are: {', '.join(names)}.",
            )
        if fdef.name in values:
            raise SpecError(
                f"field '{fdef.name}' is given twice (as '{key}' and an alias).",
                layer=layer_name,
                where=_field_where(raw, key, where),
            )
        try:
            values[fdef.name] = fdef.parse(value, fdef.name)
        except ConvcalcError as err:
            raise err.with_context(layer=layer_name, where=_field_where(raw, key, where)) from None
    for fdef in kind.fields:
        if fdef.name in values:
            continue
        if defaults and fdef.name in defaults:
            values[fdef.name] = fdef.parse(defaults[fdef.name], fdef.name)
        elif fdef.required:
            raise SpecError(
                f"{kind.name} needs the field '{fdef.name}' ({fdef.help}).",
                layer=layer_name,
                where=where,
                hint=f"Add '{fdef.name}: ...' to the spec or the --{fdef.name.replace('_', '-')} flag.",
            )
        else:
            values[fdef.name] = fdef.default
    return LayerSpec(kind.name, tuple(values.items()), layer_name, where)


def as_mapping(data: object, what: str, where: Location | None) -> Mapping[str, object]:
    """Refuse anything but a mapping (e.g. a YAML list where a layer was expected)."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{what} must be a mapping of field: value, got {type_name(data)}.", where=where)
    return cast(Mapping[str, object], data)


SPEC_ONLY = ("input", "batch", "layout")


class LayerRequest(NamedTuple):
    """Everything a single-layer command needs."""

    spec: LayerSpec
    shape: Shape
    batch: int
    layout: str
    warnings: tuple[str, ...] = ()
    """Doubts about the input for the user (printed to stderr), e.g. a shape that looks channels-last."""


CHANNELS_LIKE = 4
"""Largest last size that reads as a channel count (gray, RGB, RGBA) in :func:`layout_doubt`."""


def layout_doubt(rank: int | None, shape: Shape, shape_text: object) -> str | None:
    """A warning when a channels-first ``shape`` looks written channels-last: the layer has
    ``rank`` spatial axes, the last size is a typical channel count (<= 4) and every other size is
    more than twice that (``224x224x3`` is 224 channels of 224x3, which is rarely meant).
    Not asked when the layout is given (flag or spec)."""
    if rank is None or rank < 1 or len(shape) != rank + 1 or shape[-1] > CHANNELS_LIKE:
        return None
    if min(shape[:-1]) <= CHANNELS_LIKE * 2:
        return None
    moved = "x".join(map(str, (shape[-1], *shape[:-1])))
    return (
        f"the input {shape_text} reads channels first: {shape[0]} channels of {'x'.join(map(str, shape[1:]))}. "
        f"If the channels are last, write {moved} or add --layout channels_last."
    )


def checked_channels_first(shape: Shape, layout: str) -> Shape:
    """``HxWxC`` -> ``CxHxW`` for ``channels_last``."""
    if layout not in LAYOUTS:
        raise SpecError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    return to_channels_first(shape, layout)


def _load_spec(path: str) -> tuple[Mapping[str, object], Location]:
    from convcalc.parse.yaml import load_file  # yaml is imported only when a spec is read

    data, source = load_file(path)
    where = Location(source, 1)
    mapping = as_mapping(data, "a single-layer spec", where)
    if "layers" in mapping:
        raise SpecError(f"{source} is a network spec.", where=where, hint=f"Run 'convcalc net {path}' instead.")
    return mapping, where


def build_request(
    type_name: str | None,
    flags: Mapping[str, object],
    *,
    spec_path: str | None = None,
    shape_text: str | None = None,
    batch: int | None = None,
    layout: str | None = None,
    only_known: bool = False,
) -> LayerRequest:
    """Merge the spec file (if any) and the flags; ``only_known`` drops flags the type lacks (compare)."""
    raw: dict[str, object] = {}
    where = None
    if spec_path is not None:
        loaded, where = _load_spec(spec_path)
        raw.update(loaded)
    if type_name is not None:
        raw["type"] = type_name
    if "type" not in raw:
        raise SpecError(
            "no layer type given.", hint="Name one, e.g. 'convcalc shape conv2d ...', or put 'type:' in the --spec file."
        )
    kind = lookup(raw["type"])
    for key, value in flags.items():
        if value is None:
            continue
        fdef = kind.field(key)
        if fdef is None and only_known:
            continue
        if fdef is not None:
            for existing in [k for k in raw if kind.field(k) is fdef]:
                del raw[existing]
        raw[fdef.name if fdef else key] = value
    fields = LineDict()
    fields.update((k, v) for k, v in raw.items() if k not in SPEC_ONLY)
    if spec_path is not None:
        # keep the YAML line of every key still holding the file's value, so field errors name file:line
        fields.line = line_of(loaded)
        fields.lines = {k: n for k, n in getattr(loaded, "lines", {}).items() if k in fields and fields[k] is loaded[k]}
    spec = parse_layer(fields, where=where)
    layout_name = layout or str(raw.get("layout", "channels_first"))
    shape_value = shape_text if shape_text is not None else raw.get("input")
    if shape_value is None:
        raise SpecError(
            "no input shape given.", layer=spec.name, hint="Add --in CxHxW (e.g. --in 3x224x224) or 'input:' in the spec."
        )
    shape = checked_channels_first(parse_shape(shape_value, min_sizes=1 + kind.min_rank), layout_name)
    doubt = None if layout or "layout" in raw else layout_doubt(kind.rank, shape, shape_value)
    batch_value = batch if batch is not None else raw.get("batch", 1)
    return LayerRequest(spec, shape, parse_int(batch_value, "batch"), layout_name, (doubt,) if doubt else ())


def parse_set(items: list[str]) -> dict[str, object]:
    """``--set name=value`` pairs."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set expects name=value, got {item!r}.", hint="Example: --set offset_groups=2.")
        out[key.strip().replace("-", "_")] = value.strip()
    return out
