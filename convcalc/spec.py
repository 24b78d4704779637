"""Layer specs: validate a raw mapping (YAML or CLI flags) into a frozen :class:`LayerSpec`.

Field names are resolved through the kind's declared names and aliases; every value is parsed
by its field's parser; unknown and missing fields are refused with the closest suggestion.
"""

from collections.abc import Mapping
from typing import NamedTuple, cast

from convcalc.errors import ConvcalcError, Location, SpecError
from convcalc.kinds import lookup
from convcalc.kinds.base import Kind, Params, suggest
from convcalc.lines import line_of, type_name

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

    @property
    def kind_def(self) -> Kind:
        return lookup(self.kind)


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
                f"{kind.name} has no field '{key}'.{suggest(str(key), names)}",
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
