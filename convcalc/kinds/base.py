"""The registry of named layer types ("kinds").

A kind declares, in one place, its canonical name, aliases, fields (with defaults and help),
the formulas it implements, and a ``build`` function that expands parsed parameters into a small
graph of primitives (:mod:`convcalc.primitives`). Registering a name or alias twice is refused.
"""

from collections.abc import Callable, Mapping
from typing import NamedTuple, cast

from convcalc.errors import ShapeError, SpecError, close_names
from convcalc.parse.values import (
    PAD_MODES,
    Axes,
    Choice,
    Padding,
    Pairs,
    broadcast,
    broadcast_axes,
    parse_axes,
    parse_bool,
    parse_int,
    parse_padding,
)
from convcalc.primitives.base import Shape, Stage


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED = _Required()


class FieldDef(NamedTuple):
    """One field of a kind: its canonical name, parser, default, help and short aliases."""

    name: str
    parse: Callable[[object, str], object]
    default: object
    help: str
    aliases: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def optional(parser: Callable[[object, str], object]) -> Callable[[object, str], object]:
    return lambda value, name: None if value is None else parser(value, name)


def positive(value: object, name: str) -> int:
    return parse_int(value, name)


def axes_field(value: object, name: str) -> Axes:
    return parse_axes(value, name)


def axes_field0(value: object, name: str) -> Axes:
    return parse_axes(value, name, minimum=0)


IN_CHANNELS = FieldDef("in_channels", optional(positive), None, "input channels (default: taken from the input shape)", ("c_in",))
OUT_CHANNELS = FieldDef("out_channels", positive, REQUIRED, "output channels (filters)", ("c_out", "filters"))
KERNEL = FieldDef("kernel_size", axes_field, REQUIRED, "kernel size, one int or per axis (1x7)", ("k", "kernel"))
STRIDE = FieldDef("stride", axes_field, (1,), "stride, one int or per axis", ("s", "strides"))
PADDING = FieldDef(
    "padding", parse_padding, ((0, 0),), f"int, per axis, per-axis before:after pairs, or {'/'.join(PAD_MODES)}", ("p", "pad")
)
DILATION = FieldDef("dilation", axes_field, (1,), "dilation (atrous rate), one int or per axis", ("d", "dilation_rate", "rate"))
GROUPS = FieldDef("groups", positive, 1, "number of channel groups", ("g",))
BIAS = FieldDef("bias", parse_bool, True, "learnable bias (PyTorch default: true)", ("use_bias",))
OUTPUT_PADDING = FieldDef(
    "output_padding",
    optional(axes_field0),
    None,
    "extra size at the end of a transposed conv output (< max(stride, dilation))",
    ("op",),
)
DEPTH_MULTIPLIER = FieldDef("depth_multiplier", positive, 1, "depthwise outputs per input channel (Keras)", ("dm",))
MID_CHANNELS = FieldDef("mid_channels", optional(positive), None, "channels between the stages of a factorised conv", ("mid",))


def choice(name: str, options: tuple[str, ...], default: str, help_text: str) -> FieldDef:
    """A field restricted to ``options``."""
    return FieldDef(name, Choice(options).parse, default, help_text)


CONV_FIELDS = (IN_CHANNELS, OUT_CHANNELS, KERNEL, STRIDE, PADDING, DILATION, GROUPS, BIAS)


class Built(NamedTuple):
    """A kind's expansion: primitive stages (the last one is the output) and notes for the user."""

    stages: tuple[Stage, ...]
    notes: tuple[str, ...] = ()


class Params:
    """Parsed field values of one layer, with per-axis broadcasting to the layer's rank."""

    def __init__(self, values: Mapping[str, object], rank: int) -> None:
        self.values = values
        self.rank = rank

    def __getitem__(self, name: str) -> object:
        return self.values[name]

    def num(self, name: str) -> int:
        return cast("int", self.values[name])

    def opt_int(self, name: str) -> int | None:
        return cast("int | None", self.values[name])

    def flag(self, name: str) -> bool:
        return bool(self.values[name])

    def text(self, name: str) -> str:
        return str(self.values[name])

    def axes(self, name: str) -> Axes:
        return broadcast_axes(cast(Axes, self.values[name]), self.rank, name)

    def opt_axes(self, name: str) -> Axes | None:
        value = self.values[name]
        return None if value is None else self.axes(name)

    def padding(self, name: str = "padding") -> Padding:
        value = self.values[name]
        if isinstance(value, str):
            return value
        return cast(Pairs, broadcast(cast(Pairs, value), self.rank, name))


BuildFn = Callable[[Params, Shape], Built]


class Kind(NamedTuple):
    """A named layer type: fields, formulas, and the expansion into primitives."""

    name: str
    summary: str
    fields: tuple[FieldDef, ...]
    build: BuildFn
    rank: int | None = None
    aliases: tuple[str, ...] = ()
    formulas: tuple[str, ...] = ()
    source: str = ""
    min_rank: int = 1  # fewest spatial axes accepted (0: also flat vectors, e.g. linear after flatten)

    def field(self, name: str) -> FieldDef | None:
        for f in self.fields:
            if name == f.name or name in f.aliases:
                return f
        return None


_KINDS: dict[str, Kind] = {}
_ALIASES: dict[str, str] = {}
""":func:`kind_key` of every name and alias -> the kind's name."""
_LABELS: list[str] = []
"""Every name and alias as registered (the words "did you mean" suggests)."""


def kind_key(name: str) -> str:
    """The registry key of a type name: case, ``_``, ``-`` and spaces ignored, so PyTorch's
    ``ConvTranspose2d``, Keras' ``Conv2DTranspose``, TensorFlow's ``conv2d_transpose`` and our
    ``conv_transpose2d`` all find one kind."""
    return normalise_name(name).replace("_", "")


def register(kind: Kind) -> Kind:
    """Add a kind; refuse a name or alias (compared by :func:`kind_key`) that another kind holds."""
    if kind.name in _KINDS:
        raise ValueError(f"kind name {kind.name!r} registered twice")
    for label in (kind.name, *kind.aliases):
        key = kind_key(label)
        if _ALIASES.get(key, kind.name) != kind.name:
            raise ValueError(f"kind name {label!r} registered twice ({_ALIASES[key]!r} and {kind.name!r})")
        _ALIASES[key] = kind.name
        _LABELS.append(label)
    _KINDS[kind.name] = kind
    return kind


def normalise_name(name: str) -> str:
    """``Conv2D`` / ``conv-2d`` -> ``conv2d``."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


LAZY_MODULES = ("convcalc.kinds.layers", "convcalc.kinds.opaque")
"""Kind modules registered on first need (a name not found yet, or a full listing), so the
single-convolution commands do not pay for importing every network layer type at start-up."""


def _load_lazy() -> bool:
    """Import the lazy kind modules; True if that registered anything new."""
    import importlib

    before = len(_KINDS)
    for module in LAZY_MODULES:
        importlib.import_module(module)
    return len(_KINDS) > before


def lookup(name: object) -> Kind:
    """Find a kind by name or alias, framework spellings included (:func:`kind_key`); unknown
    names get the closest suggestion."""
    key = kind_key(str(name))
    if key in _ALIASES:
        return _KINDS[_ALIASES[key]]
    if _load_lazy():
        return lookup(name)
    close = close_names(normalise_name(str(name)), _LABELS, n=3)
    hint = f"Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise SpecError(
        f"unknown layer type {name!r}.",
        hint=(hint + " " if hint else "") + "Run 'convcalc types' to list every type.",
    )


def all_kinds() -> list[Kind]:
    """Every registered kind in registration order."""
    _load_lazy()
    return list(_KINDS.values())


def rank_mismatch(kind: Kind, shape: Shape) -> ShapeError:
    """The error for an input whose rank does not fit the kind."""
    return ShapeError(
        f"{kind.name} expects an input with {kind.rank} spatial axes but got {len(shape) - 1} ({'x'.join(map(str, shape))}).",
        hint="Give --in as CxL (1d), CxHxW (2d) or CxDxHxW (3d), or pick the type for your input's rank.",
    )
