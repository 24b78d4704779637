"""The non-convolution layer types of real networks: pooling, normalisation (local response
normalisation too), activations, dropout, flatten, unflatten, linear, embedding, upsampling, pixel
(un)shuffle, zero padding, cropping, identity.

Each kind only wires one primitive of :mod:`convcalc.primitives`, where the formulas live. Fields
that change nothing convcalc counts (``eps``, ``momentum``, ``inplace``, dropout's ``p``) are
accepted so PyTorch arguments can be pasted as they are. ``add``/``concat``/``multiply`` are not
kinds: they merge several tensors and belong to the network format (:mod:`convcalc.network`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import cast

from convcalc.errors import LimitError, ShapeError, SpecError
from convcalc.kinds.base import (
    BIAS,
    DILATION,
    PADDING,
    REQUIRED,
    Built,
    FieldDef,
    Kind,
    Params,
    axes_field,
    choice,
    optional,
    positive,
    register,
)
from convcalc.parse.values import MAX_DIM, Axes, Pairs, broadcast, check_digits, parse_bool, parse_int, parse_padding
from convcalc.primitives.activation import ACTIVATION_OPS, Activation, Identity
from convcalc.primitives.base import Op, Shape, Stage
from convcalc.primitives.linear import Embedding, Linear
from convcalc.primitives.norm import LRN_FIXED_OPS, LocalResponseNorm, Norm
from convcalc.primitives.padding import Pad, resolve_conv_padding
from convcalc.primitives.pool import AdaptivePool, Pool
from convcalc.primitives.resample import PixelShuffle, Upsample
from convcalc.primitives.reshape import ChannelSlice, Flatten, Unflatten, chunk_bounds

# ----------------------------------------------------------------------------------------------
# Field parsers and shared fields
# ----------------------------------------------------------------------------------------------


def _number(value: object, name: str) -> float:
    """Any real number (fields that change no count, such as ``eps``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Fraction)):
        raise SpecError(f"'{name}' must be a number, got {value!r}.")
    try:
        return float(value)
    except ValueError:
        raise SpecError(f"'{name}' must be a number, got {value!r}.") from None


def _probability(value: object, name: str) -> float:
    number = _number(value, name)
    if not 0 <= number <= 1:
        raise SpecError(f"'{name}' must be between 0 and 1, got {value!r}.")
    return number


def _dim(value: object, name: str) -> int:
    return parse_int(value, name, minimum=-8)


def _ratio(item: object, name: str) -> Fraction:
    if isinstance(item, bool) or not isinstance(item, (int, float, str, Fraction)):
        raise SpecError(f"'{name}' must be a positive number, got {item!r}.")
    check_digits(str(item), name)
    try:
        value = Fraction(str(item).strip())
    except (ValueError, ZeroDivisionError):
        raise SpecError(f"'{name}' must be a positive number such as 2 or 1.5, got {item!r}.") from None
    if value <= 0:
        raise SpecError(f"'{name}' must be positive, got {item!r}.")
    if value > MAX_DIM:
        raise LimitError(f"'{name}' = {item} exceeds the limit of {MAX_DIM:,}.")
    return value


def _ratios(value: object, name: str) -> tuple[Fraction, ...]:
    """Scale factors, one or per axis: ``2``, ``1.5``, ``[1, 2, 2]``, ``"2x2"``."""
    if isinstance(value, str) and "x" in value:
        items: Sequence[object] = value.split("x")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        items = [value]
    if not items:
        raise SpecError(f"'{name}' is empty.")
    return tuple(_ratio(item, name) for item in items)


def _output_sizes(value: object, name: str) -> tuple[int | None, ...]:
    """Adaptive output sizes: an int or per axis; ``null``/``none`` keeps that axis' input size."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(None if item is None or str(item).lower() == "none" else parse_int(item, name) for item in items)


def _explicit_padding(value: object, name: str) -> Pairs:
    padding = parse_padding(value, name)
    if isinstance(padding, str):
        raise SpecError(
            f"'{name}' needs explicit amounts here, not '{padding}'.", hint="Give an int, per-axis ints or before:after pairs."
        )
    return padding


NUM_FEATURES = FieldDef("num_features", optional(positive), None, "channels (default: taken from the input)", ("channels",))
AFFINE = FieldDef("affine", parse_bool, True, "learnable weight and bias per channel (PyTorch default: true)")
TRACK = FieldDef("track_running_stats", parse_bool, True, "running mean/variance (buffers: never counted as params)")
EPS = FieldDef("eps", _number, 1e-5, "numerical stabiliser (changes no count)", ("epsilon",))
MOMENTUM = FieldDef("momentum", optional(_number), 0.1, "running-stats momentum (changes no count)")
INPLACE = FieldDef("inplace", parse_bool, False, "PyTorch in-place flag (changes no count)")
POOL_KERNEL = FieldDef("kernel_size", axes_field, REQUIRED, "window size, one int or per axis", ("k", "kernel", "pool_size"))
POOL_STRIDE = FieldDef("stride", optional(axes_field), None, "stride (default: kernel_size, as PyTorch)", ("s", "strides"))
CEIL = FieldDef("ceil_mode", parse_bool, False, "ceil instead of floor; the last window must start inside the input")
COUNT_PAD = FieldDef("count_include_pad", parse_bool, True, "average over padded zeros too (changes no count)")


def _single(name: str, op: Op, notes: tuple[str, ...] = ()) -> Built:
    return Built((Stage(name, op, ("in",)),), notes)


def _register(
    name: str,
    summary: str,
    fields: tuple[FieldDef, ...],
    build: Callable[[Params, Shape], Built],
    *,
    formulas: tuple[str, ...],
    source: str,
    rank: int | None = None,
    min_rank: int = 1,
    aliases: tuple[str, ...] = (),
) -> None:
    register(Kind(name, summary, fields, build, rank, aliases, formulas, source, min_rank))


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------


def _pool_builder(mode: str) -> Callable[[Params, Shape], Built]:
    def build(p: Params, shape: Shape) -> Built:
        kernel = p.axes("kernel_size")
        stride = p.opt_axes("stride") or kernel
        dilation = p.axes("dilation") if mode == "max" else (1,) * p.rank
        pads, notes = resolve_conv_padding(p.padding(), shape[1:], kernel, stride, dilation)
        include_pad = p.flag("count_include_pad") if mode == "avg" else True
        return _single("pool", Pool(mode, kernel, stride, pads, dilation, p.flag("ceil_mode"), include_pad), notes)

    return build


def _adaptive_builder(mode: str) -> Callable[[Params, Shape], Built]:
    def build(p: Params, shape: Shape) -> Built:
        sizes = cast(tuple[int | None, ...], broadcast(cast(tuple[object, ...], p["output_size"]), p.rank, "output_size"))
        return _single("pool", AdaptivePool(mode, sizes))

    return build


def _global_builder(mode: str) -> Callable[[Params, Shape], Built]:
    def build(p: Params, shape: Shape) -> Built:
        return _single("pool", AdaptivePool(mode, (1,) * p.rank, p.flag("keepdims")))

    return build


POOL_SOURCE = "PyTorch torch.nn.{Max,Avg}Pool{r}d docs (pooling_output_shape); Dumoulin & Visin 2016 §3"
for _r in (1, 2, 3):
    _register(
        f"maxpool{_r}d",
        f"{_r}D max pooling (dilation, ceil_mode, padding up to kernel // 2)",
        (POOL_KERNEL, POOL_STRIDE, PADDING, DILATION, CEIL),
        _pool_builder("max"),
        rank=_r,
        aliases=(f"max_pool{_r}d", f"maxpooling{_r}d", f"max_pooling{_r}d"),
        formulas=(
            "out = floor((i + p_b + p_a - d·(k-1) - 1)/s) + 1",
            "ceil_mode: ceil(...) + 1, minus 1 if the last window would start at or after i + p_b",
            "params 0, MACs 0;  other ops = C·out_positions·(prod(k) - 1) comparisons",
        ),
        source=POOL_SOURCE,
    )
    _register(
        f"avgpool{_r}d",
        f"{_r}D average pooling (ceil_mode, count_include_pad)",
        (POOL_KERNEL, POOL_STRIDE, PADDING, CEIL, COUNT_PAD),
        _pool_builder("avg"),
        rank=_r,
        aliases=(f"avg_pool{_r}d", f"averagepooling{_r}d", f"average_pooling{_r}d"),
        formulas=(
            "out = floor((i + p_b + p_a - k)/s) + 1  (ceil_mode as max pooling)",
            "params 0, MACs 0;  other ops = C·out_positions·prod(k) (k-1 additions + 1 division per output)",
        ),
        source=POOL_SOURCE,
    )
    for _mode, _title in (("avg", "average"), ("max", "max")):
        _register(
            f"adaptive_{_mode}pool{_r}d",
            f"{_r}D adaptive {_title} pooling to a fixed output size (window o: [floor(o·I/O), ceil((o+1)·I/O)))",
            (FieldDef("output_size", _output_sizes, REQUIRED, "output size, int or per axis (null keeps the axis)", ("size",)),),
            _adaptive_builder(_mode),
            rank=_r,
            aliases=(f"adaptive_{_mode}_pool{_r}d",),
            formulas=("params 0, MACs 0;  window lengths along an axis sum to I + O - gcd(I, O)",),
            source=f"PyTorch torch.nn.Adaptive{_title.capitalize()}Pool{_r}d",
        )

for _mode, _title in (("avg", "average"), ("max", "max")):
    _register(
        f"global_{_mode}pool",
        f"global {_title} pooling over every spatial axis (keepdims: C x 1 x 1, else a C vector)",
        (
            FieldDef(
                "keepdims", parse_bool, True, "keep size-1 spatial axes (PyTorch AdaptivePool(1)); false: a C vector (Keras)"
            ),
        ),
        _global_builder(_mode),
        aliases=(
            f"global_{_mode}_pool",
            f"global_{_title}_pooling",
            *(f"global_{_title}_pooling{_r}d" for _r in (1, 2, 3)),  # Keras GlobalAveragePooling2D
            *(f"global_{_mode}_pool{_r}d" for _r in (1, 2, 3)),  # Keras GlobalAvgPool2D
        ),
        formulas=("output C x 1 x ... x 1;  receptive field: the whole input",),
        source=f"PyTorch AdaptiveAvgPool(1); Keras Global{_title.capitalize()}Pooling; Lin et al. 2013",
    )

# ----------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------


def _check_batchnorm1d(p: Params, shape: Shape) -> None:
    if p.rank > 1:
        raise ShapeError(
            f"batchnorm1d expects an input C or CxL but got {'x'.join(map(str, shape))}.",
            hint="Use batchnorm2d for CxHxW, batchnorm3d for CxDxHxW, or 'batchnorm' for any rank.",
        )


def _batchnorm(p: Params, shape: Shape) -> Built:
    return _single("norm", Norm("batch", p.flag("affine"), num_features=p.opt_int("num_features")))


def _batchnorm1d(p: Params, shape: Shape) -> Built:
    _check_batchnorm1d(p, shape)
    return _batchnorm(p, shape)


def _instancenorm(p: Params, shape: Shape) -> Built:
    return _single("norm", Norm("instance", p.flag("affine"), num_features=p.opt_int("num_features")))


def _layernorm(p: Params, shape: Shape) -> Built:
    normalized = cast("Axes | None", p["normalized_shape"])
    return _single("norm", Norm("layer", p.flag("elementwise_affine"), p.flag("bias"), normalized_shape=normalized))


def _groupnorm(p: Params, shape: Shape) -> Built:
    return _single("norm", Norm("group", p.flag("affine"), groups=p.num("num_groups"), num_features=p.opt_int("num_channels")))


BN_FIELDS = (NUM_FEATURES, AFFINE, TRACK, EPS, MOMENTUM)
BN_FORMULAS = ("params = 2·C when affine (weight, bias); running mean/var are buffers", "other ops = numel·(2 if affine else 1)")
_register(
    "batchnorm",
    "batch normalisation over the channel axis, any rank (BatchNorm1d/2d/3d)",
    BN_FIELDS,
    _batchnorm,
    min_rank=0,
    aliases=("bn", "batch_norm", "batchnormalization", "batch_normalization"),
    formulas=BN_FORMULAS,
    source="PyTorch torch.nn.BatchNorm2d; Ioffe & Szegedy 2015",
)
_register(
    "batchnorm1d",
    "batch normalisation of C or CxL inputs",
    BN_FIELDS,
    _batchnorm1d,
    min_rank=0,
    aliases=("batch_norm1d", "bn1d"),
    formulas=BN_FORMULAS,
    source="PyTorch torch.nn.BatchNorm1d",
)
for _r in (2, 3):
    _register(
        f"batchnorm{_r}d",
        f"batch normalisation of {_r}D feature maps",
        BN_FIELDS,
        _batchnorm,
        rank=_r,
        aliases=(f"batch_norm{_r}d", f"bn{_r}d"),
        formulas=BN_FORMULAS,
        source=f"PyTorch torch.nn.BatchNorm{_r}d",
    )
for _r in (1, 2, 3):
    _register(
        f"instancenorm{_r}d",
        f"instance normalisation of {_r}D feature maps (affine off by default, as PyTorch)",
        (
            NUM_FEATURES,
            FieldDef("affine", parse_bool, False, "learnable weight and bias (PyTorch default: false)"),
            FieldDef("track_running_stats", parse_bool, False, "running statistics (buffers)"),
            EPS,
            MOMENTUM,
        ),
        _instancenorm,
        rank=_r,
        aliases=(f"instance_norm{_r}d",),
        formulas=("params = 2·C when affine, else 0", "other ops = numel·(2 if affine else 1)"),
        source=f"PyTorch torch.nn.InstanceNorm{_r}d; Ulyanov et al. 2016",
    )
_register(
    "layernorm",
    "layer normalisation: over normalized_shape (the trailing axes, PyTorch) or, by default, over the channels at each position",
    (
        FieldDef(
            "normalized_shape", optional(axes_field), None, "trailing axes to normalise, e.g. [C, H, W] (default: the channels)"
        ),
        FieldDef("elementwise_affine", parse_bool, True, "learnable weight (and bias)", ("affine",)),
        FieldDef("bias", parse_bool, True, "learnable bias when elementwise_affine (PyTorch >= 2.1)", ("use_bias",)),
        EPS,
    ),
    _layernorm,
    min_rank=0,
    aliases=("layer_norm", "layernormalization", "ln", "layernorm2d"),
    formulas=("params = 2·prod(normalized_shape) (weight, bias) when affine; C when over channels",),
    source="PyTorch torch.nn.LayerNorm; Ba et al. 2016; ConvNeXt LayerNorm2d (Liu et al. 2022)",
)
_register(
    "groupnorm",
    "group normalisation: channels split into num_groups; params 2·C when affine",
    (
        FieldDef("num_groups", positive, REQUIRED, "number of groups (must divide C)", ("groups", "g")),
        FieldDef("num_channels", optional(positive), None, "channels (default: taken from the input)", ("channels",)),
        AFFINE,
        EPS,
    ),
    _groupnorm,
    min_rank=0,
    aliases=("group_norm", "group_normalization", "gn"),
    formulas=("C % num_groups == 0;  params = 2·C when affine",),
    source="PyTorch torch.nn.GroupNorm; Wu & He 2018",
)


def _local_response_norm(p: Params, shape: Shape) -> Built:
    alpha, beta, k = (cast(float, p[name]) for name in ("alpha", "beta", "k"))
    return _single("lrn", LocalResponseNorm(p.num("size"), alpha, beta, k))


_register(
    "local_response_norm",
    "local response normalisation across channels (AlexNet): a_c / (k + alpha/size·Σ a²)^beta over size channels",
    (
        FieldDef("size", positive, REQUIRED, "channels in the window (AlexNet: 5)"),
        FieldDef("alpha", _number, 1e-4, "scale (PyTorch divides it by size; changes no count)"),
        FieldDef("beta", _number, 0.75, "exponent (changes no count)"),
        FieldDef("k", _number, 1.0, "additive constant (AlexNet: 2; changes no count)"),
    ),
    _local_response_norm,
    aliases=("lrn", "localresponsenorm", "local_response_normalization", "local_response_normalisation"),
    formulas=(
        f"output = input; params 0, MACs 0;  other ops = numel·(size + {LRN_FIXED_OPS})"
        " (square, size for the window average, scale, add k, power, divide)",
    ),
    source="PyTorch torch.nn.LocalResponseNorm; Krizhevsky et al. 2012 §3.3",
)

# ----------------------------------------------------------------------------------------------
# Activations, dropout, identity
# ----------------------------------------------------------------------------------------------

ACTIVATIONS: dict[str, tuple[str, tuple[str, ...], tuple[FieldDef, ...]]] = {
    "relu": ("max(0, x)", (), ()),
    "relu6": ("min(max(0, x), 6) (MobileNet)", (), ()),
    "leaky_relu": ("x if x > 0 else a·x", ("leakyrelu",), (FieldDef("negative_slope", _number, 0.01, "slope a", ("alpha",)),)),
    "elu": ("x if x > 0 else a·(exp(x) - 1)", (), (FieldDef("alpha", _number, 1.0, "alpha"),)),
    "gelu": ("x·Φ(x)", (), (choice("approximate", ("none", "tanh"), "none", "'tanh': the tanh approximation"),)),
    "silu": ("x·sigmoid(x)", ("swish",), ()),
    "mish": ("x·tanh(softplus(x))", (), ()),
    "hardswish": ("x·relu6(x + 3)/6 (MobileNetV3)", ("hard_swish", "hswish", "h_swish"), ()),
    "hardsigmoid": ("relu6(x + 3)/6", ("hard_sigmoid", "hsigmoid", "h_sigmoid"), ()),
    "sigmoid": ("1/(1 + exp(-x))", (), ()),
    "tanh": ("tanh(x)", (), ()),
    "softmax": ("exp(x_c)/Σ_c exp(x_c) over the channel axis", (), (FieldDef("dim", _dim, 1, "must be 1 (channels)"),)),
    "log_softmax": ("log softmax over the channel axis", ("logsoftmax",), (FieldDef("dim", _dim, 1, "must be 1 (channels)"),)),
    "prelu": (
        "x if x > 0 else a_c·x, learnable a",
        (),
        (FieldDef("num_parameters", positive, 1, "1 (shared slope, PyTorch default) or C"),),
    ),
}


def _activation_builder(fn: str) -> Callable[[Params, Shape], Built]:
    def build(p: Params, shape: Shape) -> Built:
        if "dim" in p.values and p.num("dim") != 1:
            raise ShapeError(f"{fn} is supported over the channel axis only (dim = 1), got dim = {p.num('dim')}.")
        return _single(fn, Activation(fn, p.num("num_parameters") if fn == "prelu" else 0))

    return build


for _fn, (_formula, _aliases, _fields) in ACTIVATIONS.items():
    _register(
        _fn,
        f"activation {_fn}: {_formula}",
        (*_fields, INPLACE),
        _activation_builder(_fn),
        min_rank=0,
        aliases=_aliases,
        formulas=(f"params {'num_parameters' if _fn == 'prelu' else 0}, MACs 0;  other ops = {ACTIVATION_OPS[_fn]}·numel",),
        source=f"PyTorch torch.nn activation '{_fn}'",
    )


def _dropout(p: Params, shape: Shape) -> Built:
    return _single("dropout", Identity(f"dropout p={p['p']:g} (identity at inference)"))


_register(
    "dropout",
    "dropout: identity at inference (no params, no ops)",
    (FieldDef("p", _probability, 0.5, "drop probability (changes no count)", ("rate",)), INPLACE),
    _dropout,
    min_rank=0,
    aliases=(
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "spatial_dropout1d",
        "spatial_dropout2d",
        "spatial_dropout3d",
    ),
    formulas=("params 0, MACs 0, other ops 0 (evaluation mode)",),
    source="PyTorch torch.nn.Dropout; Srivastava et al. 2014",
)
_register(
    "identity",
    "identity: passes the input through",
    (),
    lambda p, shape: _single("identity", Identity()),
    min_rank=0,
    aliases=("noop",),
    formulas=("params 0, MACs 0",),
    source="PyTorch torch.nn.Identity",
)

# ----------------------------------------------------------------------------------------------
# Flatten, linear, embedding
# ----------------------------------------------------------------------------------------------

_register(
    "flatten",
    "flatten dims start_dim..end_dim (PyTorch numbering, batch = 0): the default gives a C·H·W vector",
    (FieldDef("start_dim", _dim, 1, "first dim to flatten (1 = channels)"), FieldDef("end_dim", _dim, -1, "last dim")),
    lambda p, shape: _single("flatten", Flatten(p.num("start_dim"), p.num("end_dim"))),
    min_rank=0,
    formulas=("out = (prod of the flattened dims,);  a view: params 0, MACs 0",),
    source="PyTorch torch.nn.Flatten",
)
_register(
    "unflatten",
    "unflatten dim (PyTorch numbering, batch = 0) into unflattened_size: view(N, C, 1, 1) after a linear gate",
    (
        FieldDef("dim", _dim, 1, "dim to unflatten (1 = channels)"),
        FieldDef("unflattened_size", axes_field, REQUIRED, "the sizes it becomes (their product = its size)", ("sizes",)),
    ),
    lambda p, shape: _single("unflatten", Unflatten(p.num("dim"), cast(Axes, p["unflattened_size"]))),
    min_rank=0,
    formulas=("out = input with dim replaced by unflattened_size;  a view: params 0, MACs 0",),
    source="PyTorch torch.nn.Unflatten",
)


def _linear(p: Params, shape: Shape) -> Built:
    given = p.opt_int("in_features")
    return _single("linear", Linear(shape[0] if given is None else given, p.num("out_features"), p.flag("bias")))


_register(
    "linear",
    "fully connected layer on the channel axis (after flatten: in·out MACs per sample)",
    (
        FieldDef("in_features", optional(positive), None, "input features (default: the input's channels)", ("in_channels",)),
        FieldDef("out_features", positive, REQUIRED, "output features", ("out_channels", "units")),
        BIAS,
    ),
    _linear,
    min_rank=0,
    aliases=("dense", "fc", "fully_connected"),
    formulas=("weights = in·out;  biases = out", "MACs = positions·in·out  (positions = 1 for a flat vector)"),
    source="PyTorch torch.nn.Linear; Keras Dense",
)
_register(
    "embedding",
    "token embedding: 1xL ids -> ExL vectors (channels first, ready for conv1d)",
    (
        FieldDef("num_embeddings", positive, REQUIRED, "vocabulary size", ("vocab_size", "input_dim")),
        FieldDef("embedding_dim", positive, REQUIRED, "vector size E", ("output_dim", "dim")),
    ),
    lambda p, shape: _single("embedding", Embedding(p.num("num_embeddings"), p.num("embedding_dim"))),
    min_rank=0,
    formulas=("weights = num_embeddings·embedding_dim;  MACs 0 (a lookup)",),
    source="PyTorch torch.nn.Embedding; Kim 2014 (TextCNN)",
)

# ----------------------------------------------------------------------------------------------
# Channel selection (ShuffleNetV2's split)
# ----------------------------------------------------------------------------------------------


def _chunk(p: Params, shape: Shape) -> Built:
    start, stop = chunk_bounds(shape[0], p.num("chunks"), p.num("index"))
    return _single("chunk", ChannelSlice(start, stop))


def _channel_slice(p: Params, shape: Shape) -> Built:
    return _single("slice", ChannelSlice(p.num("start"), p.opt_int("end")))


def _index(value: object, name: str) -> int:
    return parse_int(value, name, minimum=0)


_register(
    "chunk",
    "one chunk of torch.chunk(x, chunks, dim=1): chunks of ceil(C/chunks) channels (ShuffleNetV2 channel split)",
    (FieldDef("chunks", positive, REQUIRED, "number of chunks"), FieldDef("index", _index, REQUIRED, "which chunk, from 0")),
    _chunk,
    min_rank=0,
    aliases=("channel_split",),
    formulas=("chunk size = ceil(C / chunks); channels [index·size, min(C, (index+1)·size));  a view: params 0, ops 0",),
    source="PyTorch torch.chunk; Ma et al. 2018 (ShuffleNetV2 channel split)",
)
_register(
    "channel_slice",
    "channels start:end of the input (x[:, start:end])",
    (
        FieldDef("start", _index, 0, "first channel"),
        FieldDef("end", optional(positive), None, "one past the last channel (default: C)"),
    ),
    _channel_slice,
    min_rank=0,
    aliases=("slice_channels", "narrow"),
    formulas=("out channels = end - start;  a view: params 0, ops 0",),
    source="PyTorch tensor slicing / torch.narrow",
)

# ----------------------------------------------------------------------------------------------
# Upsampling, pixel shuffle, padding, cropping
# ----------------------------------------------------------------------------------------------

UPSAMPLE_MODES = ("nearest", "nearest_exact", "linear", "bilinear", "trilinear")


def _upsample(p: Params, shape: Shape) -> Built:
    scale, size = p["scale_factor"], p["size"]
    if (scale is None) == (size is None):
        raise SpecError("upsample needs exactly one of scale_factor and size.", hint="Example: 'scale_factor: 2'.")
    mode = p.text("mode")
    if p.flag("align_corners") and mode.startswith("nearest"):
        raise SpecError("align_corners applies to the linear modes only (PyTorch refuses it with nearest).")
    factors = (
        None if scale is None else cast(tuple[Fraction, ...], broadcast(cast(tuple[object, ...], scale), p.rank, "scale_factor"))
    )
    sizes = None if size is None else p.axes("size")
    return _single("upsample", Upsample(mode, factors, sizes, p.flag("align_corners")))


_register(
    "upsample",
    "upsampling by scale_factor or to a size: nearest, (bi/tri)linear",
    (
        FieldDef("scale_factor", optional(_ratios), None, "multiplier per axis, e.g. 2 or 2x2", ("scale",)),
        FieldDef("size", optional(axes_field), None, "output size per axis (instead of scale_factor)", ("output_size",)),
        choice("mode", UPSAMPLE_MODES, "nearest", "interpolation mode"),
        FieldDef("align_corners", parse_bool, False, "align corner pixels (linear modes; RF then untracked)"),
    ),
    _upsample,
    aliases=("interpolate", "upsampling", "upsampling1d", "upsampling2d", "upsampling3d", "resize"),
    formulas=(
        "out = size, or floor(i·scale_factor)",
        "RF for integer s: the exact transposed conv (nearest: k=s, crop 0; linear: k=2s - s mod 2, crop s//2), jump j/s",
    ),
    source="PyTorch torch.nn.Upsample / F.interpolate; Long et al. 2015 (bilinear as transposed conv)",
)


def _factor_field(name: str) -> FieldDef:
    return FieldDef(name, positive, REQUIRED, "factor r", ("factor", "r", "block_size"))


_register(
    "pixel_shuffle",
    "pixel shuffle (sub-pixel conv): C·r² x H x W -> C x H·r x W·r",
    (_factor_field("upscale_factor"),),
    lambda p, shape: _single("pixel_shuffle", PixelShuffle(p.num("upscale_factor"))),
    rank=2,
    aliases=("depth_to_space", "pixelshuffle"),
    formulas=("C_out = C/r², H_out = H·r, W_out = W·r;  params 0, MACs 0",),
    source="PyTorch torch.nn.PixelShuffle; Shi et al. 2016",
)
_register(
    "pixel_unshuffle",
    "pixel unshuffle (space to depth): C x H x W -> C·r² x H/r x W/r",
    (_factor_field("downscale_factor"),),
    lambda p, shape: _single("pixel_unshuffle", PixelShuffle(p.num("downscale_factor"), inverse=True)),
    rank=2,
    aliases=("space_to_depth", "pixelunshuffle"),
    formulas=("C_out = C·r², H_out = H/r, W_out = W/r;  params 0, MACs 0",),
    source="PyTorch torch.nn.PixelUnshuffle",
)


def _pad_builder(sign: int, field: str) -> Callable[[Params, Shape], Built]:
    def build(p: Params, shape: Shape) -> Built:
        pairs = cast(Pairs, broadcast(cast(Pairs, p[field]), p.rank, field))
        return _single(field, Pad(tuple((sign * a, sign * b) for a, b in pairs)))

    return build


for _r in (1, 2, 3):
    _register(
        f"zeropad{_r}d",
        f"{_r}D zero padding; amounts per axis in axis order (H then W), not PyTorch's (left, right, top, bottom)",
        (FieldDef("padding", _explicit_padding, REQUIRED, "int, per axis, or before:after pairs", ("p", "pad")),),
        _pad_builder(1, "padding"),
        rank=_r,
        aliases=(f"zero_pad{_r}d", f"zeropadding{_r}d", f"zero_padding{_r}d"),
        formulas=("out = i + before + after;  params 0, MACs 0",),
        source=f"PyTorch torch.nn.ZeroPad{_r}d; Keras ZeroPadding{_r}D",
    )
    _register(
        f"crop{_r}d",
        f"{_r}D cropping (U-Net skip crops): remove before:after per axis",
        (FieldDef("cropping", _explicit_padding, REQUIRED, "int, per axis, or before:after pairs", ("crop",)),),
        _pad_builder(-1, "cropping"),
        rank=_r,
        aliases=(f"cropping{_r}d",),
        formulas=("out = i - before - after;  params 0, MACs 0",),
        source=f"Keras Cropping{_r}D; Ronneberger et al. 2015 (U-Net)",
    )
