"""Non-convolution primitives of real networks, with the same protocol as :mod:`convcalc.ops`.

Pooling (max/avg, adaptive, global), normalisation (batch, layer, group, instance, local
response), activations, linear, flatten, upsampling, pixel (un)shuffle, padding/cropping,
embedding and identity. Each is a frozen dataclass whose
:meth:`analyse` returns an :class:`~convcalc.ops.OpStats` for channels-first shapes without the
batch axis; a shape ``(F,)`` (no spatial axis) is a flat vector, e.g. after ``flatten``.

Conventions (stated once):

* ``macs`` counts only the multiply-accumulates of linear layers (and convolutions in
  :mod:`convcalc.ops`): torchvision's published "GFLOPS" are exactly these.
* Every other arithmetic operation goes to ``other_ops``, per sample, with the rule stated on
  each class: pooling counts one comparison (max) or one addition (avg, plus the division) per
  window element; normalisation counts ``numel`` (normalise) plus ``numel`` for the affine
  transform (the ptflops convention, statistics folded); an activation counts its stated ops
  per element.
* Parameters are counted as PyTorch's ``Module.parameters()`` does: running statistics of
  batch norm are buffers, not parameters.
* Receptive field: pooling is a window like a convolution (Distill 2019). Upsampling by an
  integer factor ``s`` is the transposed convolution that computes it exactly (nearest: kernel
  ``s``, crop 0; linear: kernel ``2s - s mod 2``, crop ``s // 2``), so it follows the stated
  fractional-stride rule of :func:`convcalc.ops.transposed_step`: the window lies on the grid
  refined ``s`` times (jump ``j/s``), with exact :class:`~fractions.Fraction` arithmetic. That
  is exact where the upsampled units are single input pixels; deeper in a network a unit's true
  span can be narrower by less than ``(s - 1)·j_out`` per side (the window's end positions may
  fall between real units, depending on the phase ``o mod s``): the rule gives the
  phase-independent bound (``tests/test_rf_bruteforce.py``). ``rf=None`` marks a field convcalc
  does not track (non-integer resampling ratios, uneven adaptive windows; each says so in
  ``notes``) or a result without spatial axes (flatten).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.formula import Term, axis_names, positions, product
from convcalc.ops import OpStats, Shape, check_rank, conv_out_size, effective_kernel, numel, single_input, transposed_step
from convcalc.rf import IDENTITY_STEP, AxisStep
from convcalc.values import Axes, Pairs, format_shape


def identity_steps(shape: Shape) -> tuple[AxisStep, ...]:
    """The receptive-field steps of an element-wise op: one identity step per spatial axis."""
    return tuple(IDENTITY_STEP for _ in shape[1:])


def _pads_text(padding: Pairs) -> str:
    return "x".join(f"{a}" if a == b else f"{a}:{b}" for a, b in padding)


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------


def pool_out_size(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int, ceil_mode: bool, axis: str) -> int:
    """Output size of a pooling window (PyTorch ``pooling_output_shape_pad_lr``).

    * floor mode: ``floor((i + p_b + p_a - d(k-1) - 1)/s) + 1`` (:func:`convcalc.ops.conv_out_size`);
    * ceil mode: ``ceil(...) + 1`` — the floor formula with ``s - 1`` more padding after — then
      minus one if that last window would start at or after ``i + p_b`` ("the last pooling must
      start inside the image or the left padding").
    """
    if not ceil_mode:
        return conv_out_size(size, kernel, stride, pad, dilation, axis)
    try:
        out = conv_out_size(size, kernel, stride, (pad[0], pad[1] + stride - 1), dilation, axis)
    except ShapeError:
        raise ShapeError(
            f"along axis {axis} the pooling window d·(k-1)+1 = {effective_kernel(kernel, dilation)} does not fit the"
            f" padded input {size} + {pad[0]} + {pad[1]}, even in ceil mode (the output would be smaller than 1).",
            hint="Use a smaller kernel or dilation, or a larger input.",
        ) from None
    if (out - 1) * stride >= size + pad[0]:
        out -= 1
    return out


def check_pool_padding(kernel: Axes, padding: Pairs) -> None:
    """PyTorch refuses pooling padding larger than half the (undilated) kernel: ``p <= k // 2``."""
    for name, k, (before, after) in zip(axis_names(len(kernel)), kernel, padding, strict=True):
        if max(before, after) > k // 2:
            raise ShapeError(
                f"along axis {name} the pooling padding {max(before, after)} is more than half the kernel {k}"
                f" (PyTorch requires padding <= kernel_size // 2 = {k // 2}).",
                hint="Lower the padding or enlarge the kernel.",
            )


@dataclass(frozen=True)
class Pool:
    """Max or average pooling, PyTorch ``MaxPool{1,2,3}d`` / ``AvgPool{1,2,3}d`` semantics.

    * output per axis: :func:`pool_out_size` (floor or ceil mode); channels unchanged
    * params 0, MACs 0; ``other_ops = out_elements × (K - 1)`` comparisons (max) or
      ``out_elements × K`` (avg: ``K - 1`` additions and one division), ``K = prod(k)``
    * receptive-field step: kernel ``d(k-1)+1``, stride ``s``, padding ``p_b`` (Distill 2019).
      ``count_include_pad`` changes values only, never shapes or counts.
    """

    op: ClassVar[str] = "pool"
    merge: ClassVar[bool] = False

    mode: str
    kernel_size: Axes
    stride: Axes
    padding: Pairs
    dilation: Axes
    ceil_mode: bool = False
    count_include_pad: bool = True

    def describe(self) -> str:
        text = f"{self.mode}pool k={format_shape(self.kernel_size)} s={format_shape(self.stride)}"
        if any(p != (0, 0) for p in self.padding):
            text += f" p={_pads_text(self.padding)}"
        if any(d != 1 for d in self.dilation):
            text += f" d={format_shape(self.dilation)}"
        return text + (" ceil" if self.ceil_mode else "")

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, len(self.kernel_size), f"this {self.mode} pooling")
        check_pool_padding(self.kernel_size, self.padding)
        out = tuple(
            pool_out_size(i, k, s, p, d, self.ceil_mode, n)
            for i, k, s, p, d, n in zip(
                shape[1:], self.kernel_size, self.stride, self.padding, self.dilation, axis_names(len(shape) - 1), strict=True
            )
        )
        window = numel(self.kernel_size)
        per_out = window - 1 if self.mode == "max" else window
        ops = product(
            "other ops",
            [("C", shape[0]), positions(out, "out"), ("K-1 comparisons" if self.mode == "max" else "K adds+div", per_out)],
        )
        return OpStats(
            output=(shape[0], *out),
            other_ops=ops.value,
            rf=tuple(
                AxisStep(effective_kernel(k, d), s, Fraction(p[0]))
                for k, s, p, d in zip(self.kernel_size, self.stride, self.padding, self.dilation, strict=True)
            ),
            explain=(ops.explain(),),
        )


def adaptive_windows_total(size: int, out: int) -> int:
    """Sum of the adaptive window lengths along one axis: ``I + O - gcd(I, O)``.

    PyTorch's window ``o`` is ``[floor(o·I/O), ceil((o+1)·I/O))``. With ``Σ_{o<O} floor(o·I/O) =
    ((I-1)(O-1) + gcd(I,O) - 1)/2`` and ``ceil(k·I/O) = I - floor((O-k)·I/O)``, the sum of
    ``end - start`` telescopes to ``I + O - gcd(I, O)`` (e.g. I=5, O=3: 2+3+2 = 7).
    """
    return size + out - gcd(size, out)


def adaptive_step(size: int, out: int) -> AxisStep | None:
    """Receptive-field step of adaptive pooling along one axis, or None when windows are uneven.

    ``I % O == 0``: windows of ``I/O`` with stride ``I/O`` (an ordinary pooling). ``O % I == 0``:
    every output copies one input, exactly nearest upsampling by ``O/I``. Otherwise windows differ
    in length and position: no regular grid.
    """
    if size % out == 0:
        return AxisStep(size // out, size // out, Fraction(0))
    if out % size == 0:
        return transposed_step(out // size, out // size, 0)
    return None


@dataclass(frozen=True)
class AdaptivePool:
    """Adaptive (and global) max/avg pooling, PyTorch ``AdaptiveAvgPool{1,2,3}d`` semantics.

    * output: ``output_size`` per axis (``None`` keeps the input size); ``keepdims=False`` drops
      the spatial axes (global pooling to a ``(C,)`` vector, Keras ``GlobalAveragePooling``)
    * window ``o`` along an axis: ``[floor(o·I/O), ceil((o+1)·I/O))``; params 0, MACs 0
    * ``other_ops = C × prod(W_a)`` (avg: one op per window element) or ``C × (prod(W_a) -
      out_positions)`` (max), ``W_a = I + O - gcd(I, O)`` (:func:`adaptive_windows_total`)
    """

    op: ClassVar[str] = "adaptive_pool"
    merge: ClassVar[bool] = False

    mode: str
    output_size: tuple[int | None, ...]
    keepdims: bool = True

    def describe(self) -> str:
        sizes = "x".join("*" if o is None else str(o) for o in self.output_size)
        return f"adaptive {self.mode}pool -> {sizes}" + ("" if self.keepdims else " (flat)")

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, len(self.output_size), f"this adaptive {self.mode} pooling")
        out = tuple(i if o is None else o for i, o in zip(shape[1:], self.output_size, strict=True))
        read = shape[0] * math.prod(adaptive_windows_total(i, o) for i, o in zip(shape[1:], out, strict=True))
        other = read if self.mode == "avg" else read - shape[0] * numel(out)
        steps = [adaptive_step(i, o) for i, o in zip(shape[1:], out, strict=True)]
        notes: tuple[str, ...] = ()
        rf: tuple[AxisStep, ...] | None = tuple(s for s in steps if s is not None)
        if None in steps or not self.keepdims:
            rf = None
        if None in steps:
            notes = (
                f"receptive field not tracked: adaptive pooling {format_shape(shape[1:])} -> {format_shape(out)}"
                " has windows of unequal length (neither size divides the other).",
            )
        return OpStats(
            output=(shape[0], *out) if self.keepdims else (shape[0],),
            other_ops=other,
            rf=rf,
            notes=notes,
            explain=(f"other ops = {other:,} ({self.mode} over windows of total length I + O - gcd(I, O) per axis)",),
        )


# ----------------------------------------------------------------------------------------------
# Normalisation, activations, identity
# ----------------------------------------------------------------------------------------------


NORM_STYLES = ("batch", "layer", "group", "instance")


@dataclass(frozen=True)
class Norm:
    """Batch / layer / group / instance normalisation (PyTorch ``BatchNorm*d``, ``LayerNorm``,
    ``GroupNorm``, ``InstanceNorm*d``).

    * learnable parameters when ``affine``: weight and bias of ``P`` values each, ``P = C`` for
      batch, group and instance norm, ``P = prod(normalized_shape)`` for layer norm (``C`` when
      normalising over the channels at each position, ConvNeXt's ``LayerNorm2d``); layer norm's
      ``bias=False`` drops the bias. Batch norm's running mean/variance are buffers (0 params).
    * ``other_ops = numel × (2 if affine else 1)``: normalise, then scale-and-shift (ptflops).
    * group norm needs ``C % groups == 0``; layer norm's ``normalized_shape`` must equal the
      trailing axes of the (channels-first) input, as PyTorch requires.
    """

    op: ClassVar[str] = "norm"
    merge: ClassVar[bool] = False

    style: str
    affine: bool = True
    bias: bool = True
    groups: int = 1
    normalized_shape: Axes | None = None
    num_features: int | None = None

    def describe(self) -> str:
        extra = f" g={self.groups}" if self.style == "group" else ""
        if self.normalized_shape is not None:
            extra = f" over {format_shape(self.normalized_shape)}"
        return f"{self.style}norm{extra}" + ("" if self.affine else " (no affine)")

    def _count(self, shape: Shape) -> int:
        if self.num_features is not None and self.num_features != shape[0]:
            raise ShapeError(
                f"num_features = {self.num_features} but the input has {shape[0]} channels.",
                hint="Drop num_features (it is taken from the input) or fix the input shape.",
            )
        if self.style == "group" and shape[0] % self.groups:
            raise ShapeError(
                f"group norm needs the {shape[0]} channels to be divisible by num_groups = {self.groups}.",
                hint="Pick a number of groups that divides the channel count.",
            )
        if self.style != "layer" or self.normalized_shape is None:
            return shape[0]
        tail = shape[len(shape) - len(self.normalized_shape) :]
        if len(self.normalized_shape) > len(shape) or tuple(tail) != self.normalized_shape:
            raise ShapeError(
                f"normalized_shape {format_shape(self.normalized_shape)} must equal the trailing axes of the input"
                f" {format_shape(shape)} (PyTorch LayerNorm).",
                hint="Omit normalized_shape to normalise over the channels at each position.",
            )
        return numel(self.normalized_shape)

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        count = self._count(shape)
        ops = numel(shape) * (2 if self.affine else 1)
        return OpStats(
            output=shape,
            weights=count if self.affine else 0,
            biases=count if self.affine and self.bias else 0,
            other_ops=ops,
            rf=identity_steps(shape),
            explain=(
                f"params = {(2 if self.bias else 1) if self.affine else 0} × {count:,}"
                f" (weight{' and bias' if self.bias else ''})",
                f"other ops = numel × {2 if self.affine else 1} = {ops:,}",
            ),
        )


LRN_FIXED_OPS = 5
"""Per-element operations of local response normalisation besides the window sum: square, scale
by ``alpha/size``, add ``k``, power ``beta``, divide (see :class:`LocalResponseNorm`)."""


@dataclass(frozen=True)
class LocalResponseNorm:
    """Local response normalisation across channels (PyTorch ``nn.LocalResponseNorm(size,
    alpha=1e-4, beta=0.75, k=1.0)``; Krizhevsky et al. 2012 §3.3)::

        b_c = a_c / (k + alpha/size · Σ_{c' in window(c)} a_c'^2) ^ beta

    the window being the ``size`` channels around ``c`` (zero-padded at the ends).

    * output shape = input shape (at least one spatial axis, as PyTorch requires); params 0, MACs 0
    * ``other_ops = numel × (size + 5)``: per element one square, the window's ``size - 1``
      additions and one division by ``size`` (the average-pooling convention: ``size`` ops, as
      PyTorch computes it with ``avg_pool``), then scale by ``alpha``, add ``k``, power ``beta``
      and divide (:data:`LRN_FIXED_OPS` = 5 with the square)
    * receptive field: mixes channels only, so spatially the identity
    """

    op: ClassVar[str] = "lrn"
    merge: ClassVar[bool] = False

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def describe(self) -> str:
        return f"local response norm size={self.size} alpha={self.alpha:g} beta={self.beta:g} k={self.k:g}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        if len(shape) < 2:
            raise ShapeError(
                f"local response norm needs at least one spatial axis (C x ...), got {format_shape(shape)}.",
                hint="PyTorch's LocalResponseNorm takes 3D or higher inputs (N, C, *).",
            )
        per = self.size + LRN_FIXED_OPS
        ops = numel(shape) * per
        return OpStats(
            output=shape,
            other_ops=ops,
            rf=identity_steps(shape),
            explain=(f"other ops = numel × (size + {LRN_FIXED_OPS}) = {numel(shape):,} × {per} = {ops:,}",),
        )


ACTIVATION_OPS = {
    "relu": 1, "relu6": 1, "leaky_relu": 1, "elu": 1, "gelu": 1, "silu": 1, "mish": 1, "hardswish": 1,
    "hardsigmoid": 1, "sigmoid": 1, "tanh": 1, "prelu": 1, "softmax": 3, "log_softmax": 3,
}  # fmt: skip
"""Operations per element: 1 for every element-wise function; softmax 3 (exp, sum, divide)."""


@dataclass(frozen=True)
class Activation:
    """An activation function (PyTorch ``ReLU``, ``GELU``, ``SiLU``, ``Softmax(dim=1)``, ``PReLU``...).

    * output shape = input shape; params 0 except PReLU: ``num_parameters`` (1 or ``C``)
    * ``other_ops = numel × ops per element`` (:data:`ACTIVATION_OPS`); MACs 0
    * softmax normalises over the channel axis (``dim=1`` of an NC... tensor)
    """

    op: ClassVar[str] = "activation"
    merge: ClassVar[bool] = False

    fn: str
    num_parameters: int = 0

    def describe(self) -> str:
        return self.fn + (f" ({self.num_parameters} params)" if self.num_parameters else "")

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        if self.fn == "prelu" and self.num_parameters not in (1, shape[0]):
            raise ShapeError(
                f"prelu has num_parameters = {self.num_parameters} but needs 1 or the {shape[0]} input channels.",
                hint="Use 1 (one shared slope, PyTorch default) or the channel count.",
            )
        ops = numel(shape) * ACTIVATION_OPS[self.fn]
        return OpStats(output=shape, weights=self.num_parameters, other_ops=ops, rf=identity_steps(shape))


@dataclass(frozen=True)
class Identity:
    """Passes its input through: ``identity``, and ``dropout`` at inference. No params, no ops."""

    op: ClassVar[str] = "identity"
    merge: ClassVar[bool] = False

    label: str = "identity"

    def describe(self) -> str:
        return self.label

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        return OpStats(output=shape, rf=identity_steps(shape))


# ----------------------------------------------------------------------------------------------
# Reshaping: flatten, linear, embedding
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flatten:
    """PyTorch ``nn.Flatten(start_dim, end_dim)``; dims count the batch axis as 0, as in PyTorch.

    The default ``start_dim=1, end_dim=-1`` turns ``(C, *spatial)`` into ``(C·prod(spatial),)``.
    A view: no params, no ops. A flattened result has no per-axis receptive field (``rf=None``).
    """

    op: ClassVar[str] = "flatten"
    merge: ClassVar[bool] = False

    start_dim: int = 1
    end_dim: int = -1

    def describe(self) -> str:
        return "flatten" if (self.start_dim, self.end_dim) == (1, -1) else f"flatten dims {self.start_dim}..{self.end_dim}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        ndim = len(shape) + 1
        start, end = self.start_dim % ndim, self.end_dim % ndim
        if not -ndim <= self.start_dim < ndim or not -ndim <= self.end_dim < ndim or start == 0 or start > end:
            raise ShapeError(
                f"flatten dims {self.start_dim}..{self.end_dim} do not fit the input {format_shape(shape)}"
                f" (with the batch axis: {ndim} dims, batch = dim 0).",
                hint="Use 1 <= start_dim <= end_dim; the batch axis (dim 0) cannot be flattened.",
            )
        out = (*shape[: start - 1], numel(shape[start - 1 : end]), *shape[end:])
        same_rank = len(out) == len(shape)
        return OpStats(output=out, rf=identity_steps(shape) if same_rank else None)


def _positions_term(shape: Shape) -> Term:
    """Spatial positions of an input as a formula term (``("vector", 1)`` for a flat vector)."""
    return positions(shape[1:], "in") if len(shape) > 1 else ("vector", 1)


@dataclass(frozen=True)
class Linear:
    """Fully connected layer (PyTorch ``nn.Linear``, Keras ``Dense``) applied on the channel axis.

    The input's channel axis is ``in_features``; every spatial position (none for a flat vector
    after ``flatten``) is transformed independently, like a 1x1 convolution:

    * output ``(out_features, *spatial)``
    * weights ``in_features × out_features``; biases ``out_features``
    * MACs ``positions × in_features × out_features`` (``in × out`` per sample for a vector)
    """

    op: ClassVar[str] = "linear"
    merge: ClassVar[bool] = False

    in_features: int
    out_features: int
    bias: bool = True

    def describe(self) -> str:
        return f"linear {self.in_features}->{self.out_features}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        if shape[0] != self.in_features:
            raise ShapeError(
                f"the input has {shape[0]} features (channels) but in_features = {self.in_features}.",
                hint="Drop in_features (it is taken from the input), or flatten first.",
            )
        weights = product("weights", [("in", self.in_features), ("out", self.out_features)])
        macs = product("MACs", [_positions_term(shape), ("in", self.in_features), ("out", self.out_features)])
        biases = self.out_features if self.bias else 0
        return OpStats(
            output=(self.out_features, *shape[1:]),
            weights=weights.value,
            biases=biases,
            macs=macs.value,
            bias_adds=biases * numel(shape[1:]),
            rf=identity_steps(shape),
            explain=(weights.explain(), f"biases = {biases:,}", macs.explain()),
        )


@dataclass(frozen=True)
class Embedding:
    """Token embedding (PyTorch ``nn.Embedding``) laid out channels first.

    Input ``(1, *positions)`` of token ids; output ``(embedding_dim, *positions)`` (PyTorch's
    ``(L, E)`` transposed so a ``conv1d`` can follow). Weights ``num_embeddings × embedding_dim``;
    a lookup, so no MACs; ``moved`` = output elements.
    """

    op: ClassVar[str] = "embedding"
    merge: ClassVar[bool] = False

    num_embeddings: int
    embedding_dim: int

    def describe(self) -> str:
        return f"embedding {self.num_embeddings}x{self.embedding_dim}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        if shape[0] != 1:
            raise ShapeError(
                f"an embedding reads token ids with 1 channel, but the input is {format_shape(shape)}.",
                hint="Give the input as 1xL (one id per position).",
            )
        weights = product("weights", [("num_embeddings", self.num_embeddings), ("embedding_dim", self.embedding_dim)])
        out = (self.embedding_dim, *shape[1:])
        return OpStats(
            output=out, weights=weights.value, moved=numel(out), rf=identity_steps(shape), explain=(weights.explain(),)
        )


def chunk_bounds(channels: int, chunks: int, index: int) -> tuple[int, int]:
    """Channels ``[start, stop)`` of chunk ``index`` of ``torch.chunk(x, chunks, dim=1)``.

    PyTorch cuts chunks of ``ceil(C / chunks)`` channels, the last one smaller; so there can be
    fewer chunks than asked (C=6, chunks=4 -> sizes 2, 2, 2).
    """
    size = -(-channels // chunks)
    count = -(-channels // size)
    if not 0 <= index < count:
        raise ShapeError(
            f"torch.chunk cuts {channels} channels into {count} chunk(s) of up to {size}, so there is no chunk {index}.",
            hint=f"Use an index from 0 to {count - 1}.",
        )
    return index * size, min(channels, (index + 1) * size)


@dataclass(frozen=True)
class ChannelSlice:
    """Channels ``[start, stop)`` of the input (``x[:, start:stop]``; ShuffleNetV2's channel split
    is two of them, :func:`chunk_bounds`). A view: no params, no ops; the receptive field is unchanged."""

    op: ClassVar[str] = "channel_slice"
    merge: ClassVar[bool] = False

    start: int
    stop: int | None = None

    def describe(self) -> str:
        return f"channels {self.start}:{'' if self.stop is None else self.stop}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        stop = shape[0] if self.stop is None else self.stop
        if not 0 <= self.start < stop <= shape[0]:
            raise ShapeError(
                f"channels {self.start}:{stop} are not a non-empty range of the {shape[0]} input channels.",
                hint=f"Use 0 <= start < end <= {shape[0]}.",
            )
        return OpStats(output=(stop - self.start, *shape[1:]), rf=identity_steps(shape))


# ----------------------------------------------------------------------------------------------
# Resampling: upsample, pixel shuffle/unshuffle, padding
# ----------------------------------------------------------------------------------------------

UPSAMPLE_RANKS = {"linear": 1, "bilinear": 2, "trilinear": 3}
"""PyTorch accepts each linear mode for one input rank only (3-D, 4-D, 5-D tensors)."""


def upsample_step(mode: str, ratio: Fraction, align_corners: bool) -> AxisStep | None:
    """Receptive-field step of upsampling by ``ratio = O/I`` along one axis (module docstring).

    Integer ``s``: nearest copies source ``floor(o/s)``, i.e. a transposed conv with kernel ``s``,
    stride ``s``, crop 0. Linear (``align_corners=False``) samples ``x = (o + 1/2)/s - 1/2`` from
    its two neighbours, i.e. the transposed conv with the triangle kernel ``2s - s mod 2``,
    stride ``s``, crop ``s // 2`` (FCN, Long et al. 2015). Other ratios: None (untracked).
    """
    if ratio.denominator != 1 or (align_corners and mode != "nearest"):
        return None
    s = ratio.numerator
    if mode == "nearest":
        return transposed_step(s, s, 0)
    return transposed_step(2 * s - s % 2, s, s // 2)


@dataclass(frozen=True)
class Upsample:
    """PyTorch ``nn.Upsample`` / ``F.interpolate`` with ``scale_factor`` or ``size``.

    * output per axis: ``size``, or ``floor(i × scale_factor)`` (computed in double precision,
      as PyTorch does)
    * params 0, MACs 0; nearest moves ``out_elements`` values; linear modes count ``2 × 2^n``
      ops per output element (one multiply and one add per tap of the ``2^n`` neighbours)
    * receptive field: :func:`upsample_step` (exact for integer factors)
    """

    op: ClassVar[str] = "upsample"
    merge: ClassVar[bool] = False

    mode: str
    scale_factor: tuple[Fraction, ...] | None = None
    size: Axes | None = None
    align_corners: bool = False

    def describe(self) -> str:
        how = (
            f"x{'x'.join(_fraction_text(f) for f in self.scale_factor)}"
            if self.scale_factor
            else f"-> {format_shape(self.size or ())}"
        )
        return f"upsample {self.mode} {how}"

    def _out(self, sizes: Sequence[int]) -> tuple[int, ...]:
        if self.size is not None:
            return self.size
        if self.scale_factor is None:
            raise ShapeError("upsample needs a scale_factor or a size.", hint="Add e.g. 'scale_factor: 2'.")
        return tuple(math.floor(i * float(f)) for i, f in zip(sizes, self.scale_factor, strict=True))

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        rank = len(shape) - 1
        if self.mode in UPSAMPLE_RANKS and UPSAMPLE_RANKS[self.mode] != rank:
            raise ShapeError(
                f"'{self.mode}' interpolation needs {UPSAMPLE_RANKS[self.mode]} spatial axes"
                f" but the input is {format_shape(shape)}.",
                hint="Use linear (1D), bilinear (2D), trilinear (3D) or nearest (any).",
            )
        check_rank(shape, len(self.size or self.scale_factor or ()), "this upsampling")
        out = self._out(shape[1:])
        for name, size in zip(axis_names(rank), out, strict=True):
            if size < 1:
                raise ShapeError(
                    f"along axis {name} the upsampled size is {size} (< 1).", hint="Use a larger scale_factor or size."
                )
        steps = [upsample_step(self.mode, Fraction(o, i), self.align_corners) for i, o in zip(shape[1:], out, strict=True)]
        rf = None if None in steps else tuple(s for s in steps if s is not None)
        notes = (
            ()
            if rf is not None
            else (
                f"receptive field not tracked: {self.mode} resampling {format_shape(shape[1:])} -> {format_shape(out)}"
                " is not an integer upscaling" + (" with align_corners=False" if self.mode != "nearest" else "") + ".",
            )
        )
        out_elements = shape[0] * numel(out)
        ops = 0 if self.mode.startswith("nearest") else out_elements * 2 * 2**rank
        return OpStats(output=(shape[0], *out), other_ops=ops, moved=out_elements if ops == 0 else 0, rf=rf, notes=notes)


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


@dataclass(frozen=True)
class PixelShuffle:
    """PyTorch ``PixelShuffle(r)`` (Shi et al. 2016): ``(C·r², H, W) -> (C, H·r, W·r)``; and,
    with ``inverse``, ``PixelUnshuffle(r)``: ``(C, H, W) -> (C·r², H/r, W/r)``.

    No params or ops; every element is moved once. Receptive field: shuffle is nearest
    upsampling by ``r`` (:func:`upsample_step`), unshuffle a window ``r`` with stride ``r``.
    """

    op: ClassVar[str] = "pixel_shuffle"
    merge: ClassVar[bool] = False

    factor: int
    inverse: bool = False

    def describe(self) -> str:
        return f"pixel_{'un' if self.inverse else ''}shuffle r={self.factor}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, 2, "pixel (un)shuffle")
        r = self.factor
        if self.inverse:
            if any(size % r for size in shape[1:]):
                raise ShapeError(f"pixel_unshuffle needs H and W divisible by {r}, got {format_shape(shape)}.")
            out = (shape[0] * r * r, *(size // r for size in shape[1:]))
            steps = tuple(AxisStep(r, r, Fraction(0)) for _ in shape[1:])
        else:
            if shape[0] % (r * r):
                raise ShapeError(f"pixel_shuffle needs the {shape[0]} channels to be divisible by r² = {r * r}.")
            out = (shape[0] // (r * r), *(size * r for size in shape[1:]))
            steps = tuple(transposed_step(r, r, 0) for _ in shape[1:])
        return OpStats(output=out, moved=numel(out), rf=steps)


@dataclass(frozen=True)
class Pad:
    """Zero padding (PyTorch ``ZeroPad*d``, Keras ``ZeroPadding*D``) or, with negative amounts,
    cropping (Keras ``Cropping*D``): ``out = i + before + after`` per axis.

    No params or ops; ``moved`` = output elements. Receptive-field step: kernel 1, stride 1,
    padding ``before`` (the first output unit sits ``before`` pixels left of the first input).
    """

    op: ClassVar[str] = "pad"
    merge: ClassVar[bool] = False

    padding: tuple[tuple[int, int], ...]

    def describe(self) -> str:
        if all(a <= 0 and b <= 0 for a, b in self.padding):
            return "crop " + _pads_text(tuple((-a, -b) for a, b in self.padding))
        return "zero pad " + _pads_text(self.padding)

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, len(self.padding), "this padding")
        out = tuple(i + a + b for i, (a, b) in zip(shape[1:], self.padding, strict=True))
        for name, size in zip(axis_names(len(out)), out, strict=True):
            if size < 1:
                raise ShapeError(f"along axis {name} the cropped size is {size} (< 1).", hint="Crop less.")
        return OpStats(
            output=(shape[0], *out),
            moved=shape[0] * numel(out),
            rf=tuple(AxisStep(1, 1, Fraction(a)) for a, _ in self.padding),
        )


__all__ = [
    "ACTIVATION_OPS",
    "LRN_FIXED_OPS",
    "NORM_STYLES",
    "Activation",
    "AdaptivePool",
    "ChannelSlice",
    "Embedding",
    "Flatten",
    "Identity",
    "Linear",
    "LocalResponseNorm",
    "Norm",
    "Pad",
    "PixelShuffle",
    "Pool",
    "Upsample",
    "adaptive_step",
    "adaptive_windows_total",
    "chunk_bounds",
    "pool_out_size",
    "upsample_step",
]
