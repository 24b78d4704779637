"""Non-convolution layers with ``torch.nn.functional`` semantics.

Linear, eval-mode batch norm, layer/group norm, activations, softmax,
nearest / (bi,tri)linear upsampling, pixel (un)shuffle, channel shuffle,
zero padding and flatten.  Arrays are ``(N, C, *spatial)`` unless noted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from math import prod
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from convcalc.execute import parallel
from convcalc.execute.geometry import FloatArray, PadSpec, as_float_array, pad_pairs, spatial_ndim

# ---------------------------------------------------------------- affine / norms


def linear(x: ArrayLike, w: ArrayLike, b: ArrayLike | None = None) -> FloatArray:
    """``y = x @ w.T + b`` with ``x`` (..., in), ``w`` (out, in) (``F.linear``)."""
    xa = as_float_array(x)
    wa = as_float_array(w, xa.dtype)
    if wa.ndim != 2 or xa.shape[-1] != wa.shape[1]:
        raise ValueError(f"linear: x {xa.shape} and weight {wa.shape} do not match")
    y: FloatArray = xa @ wa.T
    if b is not None:
        y += as_float_array(b, xa.dtype)
    return y


def _channel(v: ArrayLike | None, x: FloatArray, default: float) -> FloatArray:
    """Per-channel vector broadcast against ``(N, C, *spatial)``."""
    c = x.shape[1]
    arr = np.full(c, default, x.dtype) if v is None else as_float_array(v, x.dtype)
    if arr.shape != (c,):
        raise ValueError(f"expected a per-channel vector of length {c}, got shape {arr.shape}")
    return arr.reshape((1, c) + (1,) * (x.ndim - 2))


BATCH_NORM_EPS = 1e-5
"""PyTorch's default ``eps`` of ``BatchNorm*d``."""


def batch_norm_affine(
    running_mean: FloatArray,
    running_var: FloatArray,
    weight: FloatArray | None = None,
    bias: FloatArray | None = None,
    eps: float = BATCH_NORM_EPS,
) -> tuple[FloatArray, FloatArray]:
    """Eval-mode batch norm as a per-channel affine ``y = x·scale + shift``:
    ``scale = weight / sqrt(var + eps)``, ``shift = bias - mean·scale`` (vectors of ``C``)."""
    dtype = running_var.dtype
    scale = (np.ones_like(running_var) if weight is None else weight) / np.sqrt(running_var + dtype.type(eps))
    shift = (np.zeros_like(running_mean) if bias is None else bias) - running_mean * scale
    return scale, shift


def batch_norm(
    x: ArrayLike,
    running_mean: ArrayLike,
    running_var: ArrayLike,
    weight: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    eps: float = BATCH_NORM_EPS,
) -> FloatArray:
    """Eval-mode batch norm: ``(x - mean) / sqrt(var + eps) * weight + bias`` (:func:`batch_norm_affine`)."""
    xa = as_float_array(x)
    vectors = [None if v is None else _channel(v, xa, 0.0).reshape(-1) for v in (running_mean, running_var, weight, bias)]
    assert vectors[0] is not None and vectors[1] is not None
    return channel_affine(xa, *batch_norm_affine(vectors[0], vectors[1], vectors[2], vectors[3], eps))


def channel_affine(x: FloatArray, scale: FloatArray, shift: FloatArray) -> FloatArray:
    """``x·scale + shift`` with per-channel vectors, in one new array."""
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    scale_c, shift_c = scale.reshape(shape), shift.reshape(shape)

    def part(y: FloatArray, index: Index) -> None:
        np.multiply(x[index], scale_c[index], out=y[index])
        np.add(y[index], shift_c[index], out=y[index])

    return _chunked(np.empty(x.shape, x.dtype), part)


Index = tuple[slice, ...]


def _chunked(out: FloatArray, body: Callable[[FloatArray, Index], object]) -> FloatArray:
    """Fill ``out`` by ``body(out, index)`` over ranges of its channel axis (axis 0 of a vector),
    split among the threads of :mod:`convcalc.execute.parallel`."""
    axis = 1 if out.ndim >= 2 else 0
    lead: Index = (slice(None),) * axis
    ranges = parallel.parts(out.shape[axis], out.size) if out.size else []
    parallel.run([functools.partial(body, out, (*lead, slice(lo, hi))) for lo, hi in ranges])
    return out


def _normalize(x: FloatArray, axes: tuple[int, ...], eps: float) -> FloatArray:
    mean = x.mean(axis=axes, keepdims=True)
    centered: FloatArray = x - mean
    var = np.mean(np.square(centered), axis=axes, keepdims=True)
    centered /= np.sqrt(var + x.dtype.type(eps))
    return centered


def layer_norm(
    x: ArrayLike,
    normalized_shape: Sequence[int],
    weight: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    eps: float = 1e-5,
) -> FloatArray:
    """Normalise over the trailing ``normalized_shape`` axes (biased variance), then affine."""
    xa = as_float_array(x)
    shape = tuple(normalized_shape)
    if xa.shape[xa.ndim - len(shape) :] != shape:
        raise ValueError(f"layer_norm: trailing shape of {xa.shape} is not {shape}")
    y = _normalize(xa, tuple(range(xa.ndim - len(shape), xa.ndim)), eps)
    if weight is not None:
        y *= as_float_array(weight, xa.dtype).reshape(shape)
    if bias is not None:
        y += as_float_array(bias, xa.dtype).reshape(shape)
    return y


def group_norm(
    x: ArrayLike, num_groups: int, weight: ArrayLike | None = None, bias: ArrayLike | None = None, eps: float = 1e-5
) -> FloatArray:
    """Normalise each of ``num_groups`` channel groups per sample, then per-channel affine."""
    xa = as_float_array(x)
    n, c = xa.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide C={c}")
    y = _normalize(xa.reshape(n, num_groups, -1), (2,), eps).reshape(xa.shape)
    return y * _channel(weight, xa, 1.0) + _channel(bias, xa, 0.0)


# ---------------------------------------------------------------- activations


def relu(x: ArrayLike, out: FloatArray | None = None) -> FloatArray:
    """``max(x, 0)`` (into ``out``, which may be ``x``, when given)."""
    xa = as_float_array(x)
    zero = xa.dtype.type(0)
    return _chunked(_out(xa, out), lambda y, i: np.maximum(xa[i], zero, out=y[i]))


def relu6(x: ArrayLike, out: FloatArray | None = None) -> FloatArray:
    """``min(max(x, 0), 6)`` (into ``out``, which may be ``x``, when given)."""
    xa = as_float_array(x)
    lo, hi = xa.dtype.type(0), xa.dtype.type(6)
    return _chunked(_out(xa, out), lambda y, i: np.clip(xa[i], lo, hi, out=y[i]))


def _out(x: FloatArray, out: FloatArray | None) -> FloatArray:
    return np.empty(x.shape, x.dtype) if out is None else out


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> FloatArray:
    """``x if x >= 0 else negative_slope * x``."""
    xa = as_float_array(x)
    return np.where(xa >= 0, xa, xa * xa.dtype.type(negative_slope))


def sigmoid(x: ArrayLike) -> FloatArray:
    """``1 / (1 + exp(-x))``, evaluated without overflow."""
    xa = as_float_array(x)
    z = np.exp(-np.abs(xa))
    return np.where(xa >= 0, 1 / (1 + z), z / (1 + z))


def tanh(x: ArrayLike, out: FloatArray | None = None) -> FloatArray:
    """Hyperbolic tangent (into ``out``, which may be ``x``, when given)."""
    xa = as_float_array(x)
    return np.tanh(xa, out=_out(xa, out))


def silu(x: ArrayLike) -> FloatArray:
    """SiLU / swish: ``x * sigmoid(x)``."""
    xa = as_float_array(x)
    return xa * sigmoid(xa)


def hardsigmoid(x: ArrayLike) -> FloatArray:
    """``relu6(x + 3) / 6``."""
    xa = as_float_array(x)
    return np.asarray(relu6(xa + xa.dtype.type(3)) / xa.dtype.type(6))


def hardswish(x: ArrayLike) -> FloatArray:
    """``x * relu6(x + 3) / 6``."""
    xa = as_float_array(x)
    return xa * hardsigmoid(xa)


_ERF_SERIES_LIMIT = 3.0
_ERF_SERIES_TERMS = 80
_ERF_FRACTION_TERMS = 60


def erf(x: ArrayLike) -> FloatArray:
    """Vectorised error function, float64 accuracy (~1e-15 relative).

    ``|x| < 3``: ``erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (2n+1)!!``
    (all terms positive, no cancellation); ``|x| >= 3``: ``1 - erfc(|x|)`` with
    the continued fraction ``erfc(x) = exp(-x^2)/sqrt(pi) / (x + 1/2 / (x + 1 / (x + 3/2 / ...)))``
    (Abramowitz & Stegun 7.1.5 and 7.1.14).
    """
    xa = as_float_array(x)
    z = np.abs(xa.astype(np.float64))
    out = np.ones_like(z)
    small = z < _ERF_SERIES_LIMIT
    zs = z[small]
    term = zs.copy()
    total = zs.copy()
    for n in range(1, _ERF_SERIES_TERMS):
        term *= 2 * zs * zs / (2 * n + 1)
        total += term
    out[small] = 2 / math.sqrt(math.pi) * np.exp(-zs * zs) * total
    zl = z[~small]
    frac = zl.copy()
    for k in range(_ERF_FRACTION_TERMS, 0, -1):
        frac = zl + (k / 2) / frac
    out[~small] = 1 - np.exp(-zl * zl) / (math.sqrt(math.pi) * frac)
    return (np.sign(xa) * out).astype(xa.dtype)


def gelu(x: ArrayLike, approximate: str = "none") -> FloatArray:
    """GELU: ``x * Phi(x)`` with ``Phi(x) = (1 + erf(x / sqrt(2))) / 2``; ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    xa = as_float_array(x)
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (xa + 0.044715 * xa**3)
        return np.asarray(0.5 * xa * (1 + np.tanh(inner)), dtype=xa.dtype)
    if approximate != "none":
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return np.asarray(0.5 * xa * (1 + erf(xa / math.sqrt(2))), dtype=xa.dtype)


def softmax(x: ArrayLike, axis: int = 1) -> FloatArray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    xa = as_float_array(x)
    e: FloatArray = np.exp(xa - xa.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def elu(x: ArrayLike) -> FloatArray:
    """``x if x > 0 else exp(x) - 1`` (alpha 1)."""
    xa = as_float_array(x)
    return np.where(xa > 0, xa, np.expm1(np.minimum(xa, xa.dtype.type(0))))


def mish(x: ArrayLike) -> FloatArray:
    """``x · tanh(softplus(x))`` with ``softplus(x) = log(1 + exp(x))`` (Misra 2019)."""
    xa = as_float_array(x)
    return np.asarray(xa * np.tanh(np.logaddexp(xa.dtype.type(0), xa)))


def log_softmax(x: ArrayLike, axis: int = 1) -> FloatArray:
    """``x - max - log(sum(exp(x - max)))`` along ``axis``."""
    xa = as_float_array(x)
    shifted: FloatArray = xa - xa.max(axis=axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def prelu(x: ArrayLike, slope: ArrayLike) -> FloatArray:
    """``x if x >= 0 else slope · x``, ``slope`` one value or one per channel (``F.prelu``)."""
    xa = as_float_array(x)
    sa = as_float_array(slope, xa.dtype)
    shaped = sa.reshape((1, -1) + (1,) * (xa.ndim - 2)) if sa.size > 1 else sa
    return np.where(xa >= 0, xa, xa * shaped)


class Activation(NamedTuple):
    """An element-wise activation and the output-sized temporaries one call allocates besides
    its output (an upper bound counted from the formula, in units of the output's bytes; boolean
    masks count as a whole array)."""

    fn: Callable[[FloatArray], FloatArray]
    temporaries: int
    in_place: Callable[[FloatArray], FloatArray] | None = None
    """The activation written into its input's buffer (returns it), for the fused pass."""
    block: Callable[[FloatArray], object] | None = None
    """The activation in place on one block, in the calling thread: a convolution's epilogue,
    called per output block (no thread split, no checks: ~10 µs less per call)."""


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu, 0, lambda x: relu(x, out=x), lambda a: np.maximum(a, a.dtype.type(0), out=a)),
    "relu6": Activation(
        relu6, 0, lambda x: relu6(x, out=x), lambda a: np.clip(a, a.dtype.type(0), a.dtype.type(6), out=a)
    ),
    "leaky_relu": Activation(leaky_relu, 2),  # mask, slope · x
    "elu": Activation(elu, 3),  # mask, minimum, expm1
    "gelu": Activation(gelu, 28),  # erf runs in float64 (2 units per array), ~12 arrays live, + x/sqrt2, sign
    "silu": Activation(silu, 8),  # sigmoid's 7 + the sigmoid itself
    "mish": Activation(mish, 2),  # logaddexp, tanh
    "hardswish": Activation(hardswish, 3),  # x + 3, clip, / 6
    "hardsigmoid": Activation(hardsigmoid, 2),  # x + 3, clip
    "sigmoid": Activation(sigmoid, 7),  # |x|, -|x|, exp, mask, 1 + z, 1 / (1 + z), z / (1 + z)
    "tanh": Activation(tanh, 0, lambda x: tanh(x, out=x), lambda a: np.tanh(a, out=a)),
    "softmax": Activation(lambda x: softmax(x, axis=1), 1),  # x - max
    "log_softmax": Activation(lambda x: log_softmax(x, axis=1), 1),  # exp(shifted)
}


def local_response_norm(x: ArrayLike, size: int, alpha: float, beta: float, k: float) -> FloatArray:
    """``F.local_response_norm``: ``x / (k + α/n · Σ_window x²)^β`` over ``size`` channels
    (window ``[c - n//2, c + (n-1)//2]``, zero outside), by a cumulative sum."""
    xa = as_float_array(x)
    squares = np.pad(xa * xa, [(0, 0), (size // 2, (size - 1) // 2)] + [(0, 0)] * (xa.ndim - 2))
    csum = np.cumsum(squares, axis=1)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    window = csum[:, size:] - csum[:, :-size]
    return np.asarray(xa / (k + alpha / size * window) ** beta, dtype=xa.dtype)


LRN_TEMPORARIES = 7
"""Output-sized temporaries of :func:`local_response_norm` (x², padded, cumsum, concatenated,
window, the denominator and its power), each at most ``(C + size)/C`` outputs; counted as 2 each."""


def add(xs: Sequence[FloatArray], out: FloatArray | None = None) -> FloatArray:
    """Element-wise sum of same-shaped arrays, into one new array (or ``out``, which may be
    ``xs[0]``): one pass for the first two, then one per further input."""
    first = xs[0]

    def part(y: FloatArray, index: Index) -> None:
        if len(xs) == 1:
            np.copyto(y[index], first[index])
            return
        np.add(first[index], xs[1][index], out=y[index])
        for x in xs[2:]:
            np.add(y[index], x[index], out=y[index])

    return _chunked(_out(first, out), part)


def multiply(xs: Sequence[FloatArray]) -> FloatArray:
    """Element-wise product under NumPy's broadcasting rules, in whatever order the inputs come
    (a squeeze-and-excitation gate ``C x 1 x 1`` first or last): one new array of the broadcast
    shape, multiplied in place."""
    y: FloatArray = np.empty(np.broadcast_shapes(*(x.shape for x in xs)), xs[0].dtype)
    np.copyto(y, xs[0])
    for x in xs[1:]:
        np.multiply(y, x, out=y)
    return y


# ---------------------------------------------------------------- resampling


def _resize_plan(
    x: FloatArray, size: int | Sequence[int] | None, scale_factor: float | Sequence[float] | None
) -> tuple[tuple[int, ...], tuple[float | None, ...]]:
    """Output sizes and the user scales (PyTorch: ``floor(L * scale)``)."""
    nd = spatial_ndim(x)
    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size and scale_factor")
    if size is not None:
        sizes = (int(size),) * nd if isinstance(size, int | np.integer) else tuple(int(v) for v in size)
        scales: tuple[float | None, ...] = (None,) * nd
    else:
        assert scale_factor is not None
        scales = (float(scale_factor),) * nd if isinstance(scale_factor, int | float) else tuple(float(v) for v in scale_factor)
        sizes = tuple(math.floor(length * sc) for length, sc in zip(x.shape[2:], scales, strict=True))
    if len(sizes) != nd or min(sizes) < 1:
        raise ValueError(f"invalid output size {sizes} for input {x.shape}")
    return sizes, scales


def _src_scale(length: int, out: int, scale: float | None, dtype: np.dtype[Any]) -> FloatArray:
    """PyTorch ``compute_scales_value``: ``1/scale`` if given, else ``L/out`` (0-d array of ``dtype``)."""
    if scale is not None and scale > 0:
        return np.asarray(1.0 / scale, dtype=dtype)
    return np.asarray(np.asarray(length, dtype=dtype) / np.asarray(out, dtype=dtype))


def upsample_nearest(
    x: ArrayLike, size: int | Sequence[int] | None = None, scale_factor: float | Sequence[float] | None = None
) -> FloatArray:
    """Nearest resize (``F.interpolate(mode='nearest')``): ``src = min(floor(dst * scale), L-1)``."""
    xa = as_float_array(x)
    sizes, scales = _resize_plan(xa, size, scale_factor)
    y = xa
    for axis, (length, out, sc) in enumerate(zip(xa.shape[2:], sizes, scales, strict=True)):
        scale = _src_scale(length, out, sc, np.dtype(np.float32))
        src = np.floor(np.arange(out, dtype=np.float32) * scale).astype(np.int64)
        y = np.take(y, np.minimum(src, length - 1), axis=axis + 2)
    return np.ascontiguousarray(y)


def upsample_linear(
    x: ArrayLike,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    align_corners: bool = False,
) -> FloatArray:
    """Linear / bilinear / trilinear resize (``F.interpolate(mode='*linear')``), separable.

    ``align_corners``: ``src = dst * (L-1)/(out-1)``; otherwise
    ``src = max(scale * (dst + 0.5) - 0.5, 0)``; blend ``x[i0]`` and
    ``x[min(i0+1, L-1)]`` with weight ``src - i0``.
    """
    xa = as_float_array(x)
    sizes, scales = _resize_plan(xa, size, scale_factor)
    dt = xa.dtype
    y = xa
    for axis, (length, out, sc) in enumerate(zip(xa.shape[2:], sizes, scales, strict=True)):
        dst = np.arange(out, dtype=dt)
        if align_corners:
            step = dt.type(length - 1) / dt.type(out - 1) if out > 1 else dt.type(0)
            src = dst * step
        else:
            src = np.maximum(_src_scale(length, out, sc, dt) * (dst + dt.type(0.5)) - dt.type(0.5), dt.type(0))
        i0 = np.minimum(src.astype(np.int64), length - 1)
        i1 = np.minimum(i0 + 1, length - 1)
        lam = (src - i0).astype(dt)
        shape = [1] * y.ndim
        shape[axis + 2] = out
        lam_b = lam.reshape(shape)
        y = np.take(y, i0, axis=axis + 2) * (1 - lam_b) + np.take(y, i1, axis=axis + 2) * lam_b
    return np.ascontiguousarray(y, dtype=dt)


# ---------------------------------------------------------------- re-arrangements


def pixel_shuffle(x: ArrayLike, upscale: int) -> FloatArray:
    """(N, C*r^D, *S) -> (N, C, *S*r): ``y[n, c, i*r + a] = x[n, c*r^D + flat(a), i]`` (N-d)."""
    xa = as_float_array(x)
    nd = spatial_ndim(xa)
    n, c, *sp = xa.shape
    r = upscale
    if c % r**nd:
        raise ValueError(f"channels {c} not divisible by {r}^{nd}")
    v = xa.reshape(n, c // r**nd, *([r] * nd), *sp)
    perm = [0, 1] + [i for a in range(nd) for i in (2 + nd + a, 2 + a)]
    return np.ascontiguousarray(v.transpose(perm)).reshape(n, c // r**nd, *(s * r for s in sp))


def pixel_unshuffle(x: ArrayLike, downscale: int) -> FloatArray:
    """Inverse of :func:`pixel_shuffle`: (N, C, *S*r) -> (N, C*r^D, *S)."""
    xa = as_float_array(x)
    nd = spatial_ndim(xa)
    n, c, *sp = xa.shape
    r = downscale
    if any(s % r for s in sp):
        raise ValueError(f"spatial shape {tuple(sp)} not divisible by {r}")
    v = xa.reshape(n, c, *(d for s in sp for d in (s // r, r)))
    perm = [0, 1] + [3 + 2 * a for a in range(nd)] + [2 + 2 * a for a in range(nd)]
    return np.ascontiguousarray(v.transpose(perm)).reshape(n, c * r**nd, *(s // r for s in sp))


def channel_shuffle(x: ArrayLike, groups: int) -> FloatArray:
    """ShuffleNet: reshape (N, g, C/g, ...) -> swap the two channel axes -> reshape."""
    xa = as_float_array(x)
    n, c = xa.shape[:2]
    if groups < 1 or c % groups:
        raise ValueError(f"groups={groups} must divide C={c}")
    v = xa.reshape(n, groups, c // groups, *xa.shape[2:]).swapaxes(1, 2)
    return np.ascontiguousarray(v).reshape(xa.shape)


def zero_pad(x: ArrayLike, padding: PadSpec) -> FloatArray:
    """Zero-pad the spatial axes by ``(before, after)`` pairs; negative values crop."""
    xa = as_float_array(x)
    pads = pad_pairs(padding, spatial_ndim(xa), allow_negative=True)
    out_sp = tuple(s + pb + pa for s, (pb, pa) in zip(xa.shape[2:], pads, strict=True))
    if min(out_sp) < 0:
        raise ValueError(f"cropping {pads} exceeds input {xa.shape}")
    y = np.zeros((*xa.shape[:2], *out_sp), xa.dtype)
    src: tuple[Any, ...] = (
        Ellipsis,
        *(slice(max(0, -pb), s - max(0, -pa)) for s, (pb, pa) in zip(xa.shape[2:], pads, strict=True)),
    )
    dst: tuple[Any, ...] = (Ellipsis, *(slice(max(0, pb), o - max(0, pa)) for o, (pb, pa) in zip(out_sp, pads, strict=True)))
    y[dst] = xa[src]
    return y


def flatten(x: ArrayLike, start_dim: int = 1, end_dim: int = -1) -> FloatArray:
    """Merge axes ``start_dim..end_dim`` into one (``torch.flatten``; negative dims count from the end)."""
    xa = as_float_array(x)
    start = start_dim % xa.ndim
    end = end_dim % xa.ndim
    return xa.reshape(*xa.shape[:start], prod(xa.shape[start : end + 1]), *xa.shape[end + 1 :])


def unflatten(x: ArrayLike, dim: int, sizes: Sequence[int]) -> FloatArray:
    """Split axis ``dim`` into ``sizes`` (``torch.unflatten``; a negative dim counts from the end)."""
    xa = as_float_array(x)
    axis = dim % xa.ndim
    return xa.reshape(*xa.shape[:axis], *sizes, *xa.shape[axis + 1 :])
