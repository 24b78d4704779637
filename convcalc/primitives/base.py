"""The protocol every exact operation follows: shapes, :class:`OpStats`, :class:`Op`, :class:`Stage`.

Each primitive is a frozen dataclass whose :meth:`analyse` takes the input shapes
(channels first, no batch axis) and returns an :class:`OpStats`: output shape, learnable
weights and biases, multiply-accumulates (MACs) per sample, bias additions, other
element-wise operations, and the receptive-field step per axis. All numbers are Python ints.

Conventions (stated once):

* MACs count multiply-accumulates; FLOPs = 2 x MACs. Bias additions are reported apart
  so every counter's convention can be reproduced (``flops + bias_adds`` is fvcore-free
  "FLOPs with bias").
* Other arithmetic (pooling, normalisation, activations, merges) goes to ``other_ops``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple, Protocol

from convcalc.errors import ShapeError
from convcalc.parse.values import Pairs, format_shape
from convcalc.rf import IDENTITY_STEP, AxisStep

Shape = tuple[int, ...]
"""Channels-first shape of one sample: ``(C, *spatial)``."""


class OpStats(NamedTuple):
    """What one primitive costs and produces, per sample."""

    output: Shape
    weights: int = 0
    biases: int = 0
    macs: int = 0
    bias_adds: int = 0
    other_ops: int = 0
    moved: int = 0
    rf: tuple[AxisStep, ...] | None = None
    notes: tuple[str, ...] = ()
    explain: tuple[str, ...] = ()
    global_reduction: bool = False
    """One output unit pools a whole map of more than one position (global pooling): what it
    sees is global context, not a local field (:mod:`convcalc.rf`)."""

    @property
    def params(self) -> int:
        return self.weights + self.biases


class Op(Protocol):
    """A primitive: ``op`` names it (the executor has one kernel per ``op``)."""

    op: ClassVar[str]
    merge: ClassVar[bool]

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats: ...

    def describe(self) -> str: ...


def numel(shape: Sequence[int]) -> int:
    """Number of elements of a shape."""
    return math.prod(shape)


def single_input(inputs: Sequence[Shape], op: str) -> Shape:
    """The one input of a unary primitive."""
    if len(inputs) != 1:
        raise ShapeError(f"{op} takes exactly one input, got {len(inputs)}.")
    return inputs[0]


def check_rank(shape: Shape, rank: int, op: str) -> None:
    """The input must have ``rank`` spatial axes."""
    if len(shape) - 1 != rank:
        raise ShapeError(
            f"{op} expects {rank} spatial axes (C{'xN' * rank}) but the input is {format_shape(shape)} with {len(shape) - 1}.",
            hint="Check --in / input, or use the 1d/2d/3d variant that matches.",
        )


class Stage(NamedTuple):
    """One node of a layer's or network's graph: a primitive applied to named earlier tensors."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    label: str = ""


def identity_steps(shape: Shape) -> tuple[AxisStep, ...]:
    """The receptive-field steps of an element-wise op: one identity step per spatial axis."""
    return tuple(IDENTITY_STEP for _ in shape[1:])


def pads_text(padding: Pairs) -> str:
    """Padding per axis as text: ``1`` when symmetric, ``0:1`` as before:after; axes joined by ``x``."""
    return "x".join(f"{a}" if a == b else f"{a}:{b}" for a, b in padding)
