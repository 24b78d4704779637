"""Normalisation: batch, layer, group, instance and local response norm.

``other_ops`` counts ``numel`` (normalise) plus ``numel`` for the affine transform (the ptflops
convention, statistics folded). Parameters are counted as PyTorch's ``Module.parameters()``
does: running statistics of batch norm are buffers, not parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.parse.values import Axes, format_shape
from convcalc.primitives.base import OpStats, Shape, identity_steps, numel, single_input

# ----------------------------------------------------------------------------------------------
# Normalisation, activations, identity
# ----------------------------------------------------------------------------------------------


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
