"""Turn CLI flags and/or a single-layer YAML spec into a validated layer, input shape and batch.

Kept apart from :mod:`convcalc.cli` so it is testable without typer. Flags override the spec.
"""

from collections.abc import Mapping
from typing import NamedTuple

from convcalc.errors import Location, SpecError
from convcalc.kinds import lookup
from convcalc.lines import LineDict, line_of
from convcalc.ops import Shape
from convcalc.spec import LayerSpec, as_mapping, parse_layer
from convcalc.values import parse_int, parse_shape

LAYOUTS = ("channels_first", "channels_last")
SPEC_ONLY = ("input", "batch", "layout")


class LayerRequest(NamedTuple):
    """Everything a single-layer command needs."""

    spec: LayerSpec
    shape: Shape
    batch: int
    layout: str


def to_channels_first(shape: Shape, layout: str) -> Shape:
    """``HxWxC`` -> ``CxHxW`` for ``channels_last``."""
    if layout not in LAYOUTS:
        raise SpecError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    return (shape[-1], *shape[:-1]) if layout == "channels_last" else shape


def _load_spec(path: str) -> tuple[Mapping[str, object], Location]:
    from convcalc.loader import load_file  # yaml is imported only when a spec is read

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
    shape = to_channels_first(parse_shape(shape_value), layout_name)
    batch_value = batch if batch is not None else raw.get("batch", 1)
    return LayerRequest(spec, shape, parse_int(batch_value, "batch"), layout_name)


def parse_set(items: list[str]) -> dict[str, object]:
    """``--set name=value`` pairs."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set expects name=value, got {item!r}.", hint="Example: --set offset_groups=2.")
        out[key.strip().replace("-", "_")] = value.strip()
    return out
