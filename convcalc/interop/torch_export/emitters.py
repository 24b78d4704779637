"""One PyTorch translation per layer type (kind): the registry the exporter reads.

An emitter takes an evaluated row (its resolved spec and primitive stages) and returns either a
:class:`Layer` (one ``nn.Module``, possibly preceded by an explicit ``F.pad`` for padding PyTorch
modules cannot express, such as TF 'same' with stride or causal padding) or a :class:`Composite`
(a small helper class whose submodules are the stages of a composite convolution: separable ->
depthwise + pointwise, P3D -> spatial + temporal (+ add), ...). Registering a type twice is
refused; a type without an entry cannot be exported and is reported by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import NamedTuple, cast

from convcalc.engine import StageResult, expand
from convcalc.interop.torch_export.source import Call, Expr, Kw, Seq, axes, literal
from convcalc.network.result import LayerRow
from convcalc.primitives.activation import Activation
from convcalc.primitives.base import Op
from convcalc.primitives.conv import ChannelShuffle, Conv, ConvTranspose
from convcalc.primitives.linear import Linear
from convcalc.primitives.norm import Norm
from convcalc.primitives.padding import Pad
from convcalc.primitives.pool import AdaptivePool, Pool
from convcalc.primitives.resample import PixelShuffle, Upsample
from convcalc.primitives.reshape import ChannelSlice, Flatten, Unflatten

Pairs = Sequence[tuple[int, int]]


class Layer(NamedTuple):
    """One module call: ``crop(module(F.pad(x, pad)))``; pad and crop in PyTorch order (last axis first)."""

    ctor: Expr
    pad: tuple[int, ...] = ()
    pad_value: str = ""
    crop: tuple[int, ...] = ()
    helpers: tuple[str, ...] = ()
    """Helper classes of :data:`HELPERS` the constructor uses."""
    imports: tuple[str, ...] = ()


class Node(NamedTuple):
    """One stage of a composite: a submodule call, or a merge (``add``) of earlier stages."""

    name: str
    layer: Layer | None
    inputs: tuple[str, ...]
    merge: str = ""


class Composite(NamedTuple):
    """A helper class ``name`` with one submodule per module stage, wired as the stages are."""

    name: str
    doc: str
    nodes: tuple[Node, ...]


Emitted = Layer | Composite
Emitter = Callable[[LayerRow], Emitted]

EMITTERS: dict[str, Emitter] = {}


def emitter(*kinds: str) -> Callable[[Emitter], Emitter]:
    """Register ``fn`` as the translation of ``kinds``; a kind registered twice is refused."""

    def register(fn: Emitter) -> Emitter:
        for kind in kinds:
            if kind in EMITTERS:
                raise ValueError(f"PyTorch emitter for {kind!r} registered twice")
            EMITTERS[kind] = fn
        return fn

    return register


# -- helpers -----------------------------------------------------------------------------------


def torch_pad(padding: Pairs) -> tuple[int, ...]:
    """``F.pad`` amounts: the last axis first, ``(before, after)`` each (PyTorch's order)."""
    return tuple(v for before, after in reversed(padding) for v in (before, after))


def _symmetric(padding: Pairs) -> bool:
    return all(a == b for a, b in padding)


def _kwargs(pairs: Sequence[tuple[str, Expr, bool]]) -> tuple[Kw, ...]:
    """Keyword arguments whose value differs from PyTorch's default (the flag says so)."""
    return tuple(Kw(name, value) for name, value, differs in pairs if differs)


def conv_layer(op: Conv) -> Layer:
    """``nn.ConvNd``; asymmetric padding (TF 'same' with stride, causal) becomes an explicit ``F.pad``."""
    rank = len(op.kernel_size)
    padded = not _symmetric(op.padding)
    padding = [p[0] for p in op.padding] if not padded else [0] * rank
    kwargs = _kwargs(
        [
            ("kernel_size", axes(op.kernel_size), True),
            ("stride", axes(op.stride), any(s != 1 for s in op.stride)),
            ("padding", axes(padding), any(padding)),
            ("dilation", axes(op.dilation), any(d != 1 for d in op.dilation)),
            ("groups", str(op.groups), op.groups != 1),
            ("bias", "False", not op.bias),
        ]
    )
    ctor = Call(f"nn.Conv{rank}d", (str(op.in_channels), str(op.out_channels), *kwargs))
    return Layer(ctor, pad=torch_pad(op.padding) if padded else ())


def transposed_layer(op: ConvTranspose) -> Layer:
    """``nn.ConvTransposeNd``. PyTorch crops ``padding`` at both ends and adds ``output_padding``
    at the end; an asymmetric crop ``(a, b)`` is ``padding=a`` with ``output_padding += a - b`` when
    ``a >= b``, else ``padding=a`` and an explicit crop of ``b - a`` at the end of the output."""
    rank = len(op.kernel_size)
    padding = [a for a, _ in op.padding]
    out_pad = [op_ + max(a - b, 0) for op_, (a, b) in zip(op.output_padding, op.padding, strict=True)]
    crop = [(0, -max(b - a, 0)) for a, b in op.padding]
    kwargs = _kwargs(
        [
            ("kernel_size", axes(op.kernel_size), True),
            ("stride", axes(op.stride), any(s != 1 for s in op.stride)),
            ("padding", axes(padding), any(padding)),
            ("output_padding", axes(out_pad), any(out_pad)),
            ("groups", str(op.groups), op.groups != 1),
            ("bias", "False", not op.bias),
            ("dilation", axes(op.dilation), any(d != 1 for d in op.dilation)),
        ]
    )
    ctor = Call(f"nn.ConvTranspose{rank}d", (str(op.in_channels), str(op.out_channels), *kwargs))
    return Layer(ctor, crop=torch_pad(crop) if any(b for _, b in crop) else ())


def _only(row: LayerRow) -> StageResult:
    return row.stages[0]


def _op(row: LayerRow) -> Op:
    return row.stages[0].op


def _field(row: LayerRow, name: str) -> object:
    """A resolved field of the row's layer spec."""
    assert row.spec is not None  # layer rows always carry their spec
    return row.spec.get(name)


def _number(value: object) -> str:
    """A float field (``alpha``, ``beta``...) as a literal: ``0.75``, ``1.0``."""
    return literal(float(cast(float, value)))


def _rank(row: LayerRow) -> int:
    return len(row.stages[0].input_shapes[0]) - 1


# -- convolutions ------------------------------------------------------------------------------


@emitter(*(f"conv{r}d" for r in (1, 2, 3)), *(f"depthwise{r}d" for r in (1, 2, 3)), "pointwise")
def _conv(row: LayerRow) -> Emitted:
    return conv_layer(cast(Conv, _op(row)))


@emitter(*(f"conv_transpose{r}d" for r in (1, 2, 3)))
def _transposed(row: LayerRow) -> Emitted:
    return transposed_layer(cast(ConvTranspose, _op(row)))


@emitter("channel_shuffle")
def _shuffle(row: LayerRow) -> Emitted:
    return Layer(Call("nn.ChannelShuffle", (str(cast(ChannelShuffle, _op(row)).groups),)))


def _stage_layer(op: Op) -> Layer:
    if isinstance(op, Conv):
        return conv_layer(op)
    if isinstance(op, ChannelShuffle):
        return Layer(Call("nn.ChannelShuffle", (str(op.groups),)))
    raise ValueError(f"no PyTorch module for the stage {op.describe()}")  # unreachable for registered kinds


def composite(name: str, doc: str, row: LayerRow) -> Composite:
    """The row's stages as a helper class, submodules named as the kind names its stages."""
    assert row.spec is not None  # layer rows always carry their spec
    stages, _ = expand(row.spec, row.input_shapes[0])
    nodes = tuple(
        Node(s.name, None, s.inputs, s.op.op) if s.op.merge else Node(s.name, _stage_layer(s.op), s.inputs) for s in stages
    )
    return Composite(name, doc, nodes)


COMPOSITES = {
    "separable": ("SeparableConv{r}d", "Depthwise then pointwise convolution (Keras SeparableConv{r}D).", (1, 2, 3)),
    "shuffle_grouped": ("ShuffleGroupedConv{r}d", "Grouped convolution, then a channel shuffle (ShuffleNet).", (1, 2, 3)),
    "spatial_separable": ("SpatialSeparableConv{r}d", "One 1D convolution per spatial axis, in series.", (2, 3)),
    "flattened": ("FlattenedConv{r}d", "Lateral 1x1, then a depthwise 1D filter per axis (Jin et al. 2014).", (2, 3)),
}
"""Composite convolution kinds (``prefix{r}d``): helper class name and docstring."""


def _composite_emitter(cls: str, doc: str) -> Emitter:
    return lambda row: composite(cls, doc, row)


for _prefix, (_cls, _doc, _ranks) in COMPOSITES.items():
    for _r in _ranks:
        emitter(f"{_prefix}{_r}d")(_composite_emitter(_cls.format(r=_r), _doc.format(r=_r)))


@emitter("p3d")
def _p3d(row: LayerRow) -> Emitted:
    variant = str(_field(row, "variant"))
    docs = {"A": "T(S(x))", "B": "S(x) + T(x)", "C": "S(x) + T(S(x))"}
    return composite(f"P3D{variant}", f"Pseudo-3D {variant} (Qiu et al. 2017): {docs[variant]}.", row)


@emitter("conv2plus1d")
def _conv2plus1d(row: LayerRow) -> Emitted:
    return composite("Conv2Plus1D", "R(2+1)D: spatial 1xkxk conv to M channels, then temporal tx1x1 conv.", row)


@emitter("deformable2d")
def _deformable(row: LayerRow) -> Emitted:
    offset, _, main = row.stages
    off = conv_layer(cast(Conv, offset.op))
    conv = cast(Conv, offset.op)
    main_op = cast(Conv, main.op)
    kwargs = _kwargs(
        [
            ("kernel_size", axes(conv.kernel_size), True),
            ("stride", axes(conv.stride), any(s != 1 for s in conv.stride)),
            ("padding", axes([p[0] for p in conv.padding]), any(p[0] for p in conv.padding)),
            ("dilation", axes(conv.dilation), any(d != 1 for d in conv.dilation)),
            ("groups", str(main_op.groups), main_op.groups != 1),
            ("bias", "False", not main_op.bias),
        ]
    )
    deform = Call("DeformConv2d", (str(main_op.in_channels), str(main_op.out_channels), *kwargs))
    modulated = int(cast(int, _field(row, "version"))) == 2
    ctor = Call("DeformableConv2d", (Kw("offset", off.ctor), Kw("conv", deform), Kw("modulated", str(modulated))))
    return Layer(ctor, helpers=("DeformableConv2d",), imports=("from torchvision.ops import DeformConv2d",))


# -- pooling -----------------------------------------------------------------------------------


@emitter(*(f"{m}pool{r}d" for m in ("max", "avg") for r in (1, 2, 3)))
def _pool(row: LayerRow) -> Emitted:
    op = cast(Pool, _op(row))
    rank = len(op.kernel_size)
    padded = not _symmetric(op.padding)
    padding = [0] * rank if padded else [p[0] for p in op.padding]
    stride_default = tuple(op.stride) == tuple(op.kernel_size)
    pairs: list[tuple[str, Expr, bool]] = [
        ("kernel_size", axes(op.kernel_size), True),
        ("stride", axes(op.stride), not stride_default),
        ("padding", axes(padding), any(padding)),
    ]
    if op.mode == "max":
        pairs.append(("dilation", axes(op.dilation), any(d != 1 for d in op.dilation)))
    pairs.append(("ceil_mode", "True", op.ceil_mode))
    if op.mode == "avg":
        pairs.append(("count_include_pad", "False", not op.count_include_pad))
    ctor = Call(f"nn.{'MaxPool' if op.mode == 'max' else 'AvgPool'}{rank}d", _kwargs(pairs))
    value = 'float("-inf")' if op.mode == "max" else ""
    return Layer(ctor, pad=torch_pad(op.padding) if padded else (), pad_value=value)


def _adaptive_ctor(op: AdaptivePool, rank: int) -> Call:
    title = "Avg" if op.mode == "avg" else "Max"
    sizes = op.output_size
    size: Expr = (
        str(sizes[0]) if len(set(sizes)) == 1 and sizes[0] is not None else Seq(tuple(str(s) for s in sizes))
    )
    return Call(f"nn.Adaptive{title}Pool{rank}d", (size,))


@emitter(*(f"adaptive_{m}pool{r}d" for m in ("avg", "max") for r in (1, 2, 3)), "global_avgpool", "global_maxpool")
def _adaptive(row: LayerRow) -> Emitted:
    op = cast(AdaptivePool, _op(row))
    ctor = _adaptive_ctor(op, _rank(row))
    if op.keepdims:
        return Layer(ctor)
    return Layer(Call("nn.Sequential", (ctor, Call("nn.Flatten"))))


# -- normalisation -----------------------------------------------------------------------------


def _eps_momentum(row: LayerRow, momentum: bool = True) -> list[tuple[str, Expr, bool]]:
    eps = cast(float, _field(row, "eps"))
    pairs: list[tuple[str, Expr, bool]] = [("eps", literal(float(eps)), eps != 1e-5)]
    if momentum:
        value = cast("float | None", _field(row, "momentum"))
        pairs.append(("momentum", "None" if value is None else literal(float(value)), value != 0.1))
    return pairs


@emitter("batchnorm", "batchnorm1d", "batchnorm2d", "batchnorm3d")
def _batchnorm(row: LayerRow) -> Emitted:
    op = cast(Norm, _op(row))
    channels = _only(row).input_shapes[0][0]
    pairs = [
        *_eps_momentum(row),
        ("affine", "False", not op.affine),
        ("track_running_stats", "False", not _field(row, "track_running_stats")),
    ]
    return Layer(Call(f"nn.BatchNorm{max(_rank(row), 1)}d", (str(channels), *_kwargs(pairs))))


@emitter(*(f"instancenorm{r}d" for r in (1, 2, 3)))
def _instancenorm(row: LayerRow) -> Emitted:
    op = cast(Norm, _op(row))
    channels = _only(row).input_shapes[0][0]
    pairs = [
        *_eps_momentum(row),
        ("affine", "True", op.affine),
        ("track_running_stats", "True", bool(_field(row, "track_running_stats"))),
    ]
    return Layer(Call(f"nn.InstanceNorm{_rank(row)}d", (str(channels), *_kwargs(pairs))))


@emitter("groupnorm")
def _groupnorm(row: LayerRow) -> Emitted:
    op = cast(Norm, _op(row))
    channels = _only(row).input_shapes[0][0]
    pairs = [*_eps_momentum(row, momentum=False), ("affine", "False", not op.affine)]
    return Layer(Call("nn.GroupNorm", (str(op.groups), str(channels), *_kwargs(pairs))))


@emitter("layernorm")
def _layernorm(row: LayerRow) -> Emitted:
    op = cast(Norm, _op(row))
    shape = _only(row).input_shapes[0]
    pairs = [
        *_eps_momentum(row, momentum=False),
        ("elementwise_affine", "False", not op.affine),
        ("bias", "False", op.affine and not op.bias),
    ]
    if op.normalized_shape is not None:
        return Layer(Call("nn.LayerNorm", (Seq(tuple(str(s) for s in op.normalized_shape), tuple_=False), *_kwargs(pairs))))
    if len(shape) == 1:
        return Layer(Call("nn.LayerNorm", (str(shape[0]), *_kwargs(pairs))))
    return Layer(Call("ChannelLayerNorm", (str(shape[0]), *_kwargs(pairs))), helpers=("ChannelLayerNorm",))


@emitter("local_response_norm")
def _lrn(row: LayerRow) -> Emitted:
    pairs = [
        ("alpha", _number(_field(row, "alpha")), _field(row, "alpha") != 1e-4),
        ("beta", _number(_field(row, "beta")), _field(row, "beta") != 0.75),
        ("k", _number(_field(row, "k")), _field(row, "k") != 1.0),
    ]
    return Layer(Call("nn.LocalResponseNorm", (str(_field(row, "size")), *_kwargs(pairs))))


# -- activations, dropout, identity ------------------------------------------------------------

ACTIVATION_MODULES = {
    "relu": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU", "elu": "ELU", "gelu": "GELU", "silu": "SiLU",
    "mish": "Mish", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid", "sigmoid": "Sigmoid", "tanh": "Tanh",
    "softmax": "Softmax", "log_softmax": "LogSoftmax", "prelu": "PReLU",
}  # fmt: skip
"""convcalc activation -> ``torch.nn`` class."""


@emitter(*ACTIVATION_MODULES)
def _activation(row: LayerRow) -> Emitted:
    op = cast(Activation, _op(row))
    spec = dict(row.spec.values) if row.spec else {}
    pairs: list[tuple[str, Expr, bool]] = []
    if op.fn == "leaky_relu":
        pairs.append(("negative_slope", _number(spec["negative_slope"]), spec["negative_slope"] != 0.01))
    elif op.fn == "elu":
        pairs.append(("alpha", _number(spec["alpha"]), spec["alpha"] != 1.0))
    elif op.fn == "gelu":
        pairs.append(("approximate", literal(spec["approximate"]), spec["approximate"] != "none"))
    elif op.fn in ("softmax", "log_softmax"):
        pairs.append(("dim", "1", True))
    elif op.fn == "prelu":
        pairs.append(("num_parameters", str(op.num_parameters), op.num_parameters != 1))
    return Layer(Call(f"nn.{ACTIVATION_MODULES[op.fn]}", _kwargs(pairs)))


@emitter("dropout")
def _dropout(row: LayerRow) -> Emitted:
    p = cast(float, _field(row, "p"))
    return Layer(Call("nn.Dropout", _kwargs([("p", literal(float(p)), p != 0.5)])))


@emitter("identity")
def _identity(row: LayerRow) -> Emitted:
    return Layer(Call("nn.Identity"))


# -- reshaping, linear, embedding --------------------------------------------------------------


@emitter("flatten")
def _flatten(row: LayerRow) -> Emitted:
    op = cast(Flatten, _op(row))
    pairs = [("start_dim", str(op.start_dim), op.start_dim != 1), ("end_dim", str(op.end_dim), op.end_dim != -1)]
    return Layer(Call("nn.Flatten", _kwargs(pairs)))


@emitter("unflatten")
def _unflatten(row: LayerRow) -> Emitted:
    op = cast(Unflatten, _op(row))
    return Layer(Call("nn.Unflatten", (str(op.dim), Seq(tuple(str(v) for v in op.unflattened_size)))))


@emitter("linear")
def _linear(row: LayerRow) -> Emitted:
    """``nn.Linear`` on a vector; on a ``C x ...`` map convcalc's linear acts per position: a 1x1 conv."""
    op = cast(Linear, _op(row))
    rank = _rank(row)
    bias = _kwargs([("bias", "False", not op.bias)])
    if rank == 0:
        return Layer(Call("nn.Linear", (str(op.in_features), str(op.out_features), *bias)))
    return Layer(Call(f"nn.Conv{rank}d", (str(op.in_features), str(op.out_features), Kw("kernel_size", "1"), *bias)))


@emitter("embedding")
def _embedding(row: LayerRow) -> Emitted:
    args = (str(_field(row, "num_embeddings")), str(_field(row, "embedding_dim")))
    return Layer(Call("TokenEmbedding", args), helpers=("TokenEmbedding",))


@emitter("chunk", "channel_slice")
def _slice(row: LayerRow) -> Emitted:
    op = cast(ChannelSlice, _op(row))
    stop = op.stop if op.stop is not None else _only(row).input_shapes[0][0]
    return Layer(Call("ChannelSlice", (str(op.start), str(stop))), helpers=("ChannelSlice",))


@emitter("upsample")
def _upsample(row: LayerRow) -> Emitted:
    op = cast(Upsample, _op(row))
    args: list[Expr] = []
    if op.size is not None:
        args.append(Kw("size", axes(op.size)))
    if op.scale_factor is not None:
        args.append(Kw("scale_factor", axes_fraction(op.scale_factor)))
    args.append(Kw("mode", literal(op.mode)))
    if op.align_corners:
        args.append(Kw("align_corners", "True"))
    elif op.mode in ("linear", "bilinear", "trilinear"):
        args.append(Kw("align_corners", "False"))
    return Layer(Call("nn.Upsample", tuple(args)))


def axes_fraction(values: Sequence[Fraction]) -> Expr:
    """Scale factors: ints where integral, else floats (PyTorch takes floats)."""
    texts = [str(v.numerator) if v.denominator == 1 else literal(float(v)) for v in values]
    return texts[0] if len(set(texts)) == 1 else Seq(tuple(texts))


@emitter("pixel_shuffle", "pixel_unshuffle")
def _pixel_shuffle(row: LayerRow) -> Emitted:
    op = cast(PixelShuffle, _op(row))
    return Layer(Call("nn.PixelUnshuffle" if op.inverse else "nn.PixelShuffle", (str(op.factor),)))


@emitter(*(f"{k}{r}d" for k in ("zeropad", "crop") for r in (1, 2, 3)))
def _pad(row: LayerRow) -> Emitted:
    """``nn.ZeroPadNd`` (PyTorch order: last axis first); negative amounts crop (``F.pad`` semantics)."""
    op = cast(Pad, _op(row))
    return Layer(Call(f"nn.ZeroPad{len(op.padding)}d", (Seq(tuple(str(v) for v in torch_pad(op.padding))),)))


def find(kind: str) -> Emitter | None:
    """The emitter of ``kind`` (None: PyTorch export does not support it)."""
    return EMITTERS.get(kind)


__all__ = ["EMITTERS", "Composite", "Emitted", "Layer", "Node", "conv_layer", "emitter", "find", "torch_pad"]
