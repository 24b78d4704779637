"""Layers convcalc can place in a network but not analyse, so an imported graph stays whole.

* ``unknown`` (alias ``opaque``): an operation convcalc has no formula for (an ONNX op without a
  converter, kept by ``convcalc import --allow-unknown``). Its output shape is *given* (taken from
  ONNX shape inference); its parameters, MACs and other ops are **unknown, not zero**: every row
  says so in its notes, and the receptive field is not tracked from there on.
* ``elementwise``: ``x <op> constant`` (an ONNX ``Add``/``Sub``/``Mul``/``Div`` whose other operand
  is a constant, e.g. a layer scale or ``x / 6``): the shape is kept, one operation per element
  (other ops, never MACs), and ``params`` learnable elements when the constant is a parameter.

Their two primitives live here, not in :mod:`convcalc.primitives`: they have no formula and no
executor kernel (``convcalc run`` cannot execute an op whose computation is unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

from convcalc.kinds.base import REQUIRED, Built, FieldDef, Kind, Params, register
from convcalc.parse.values import Axes, format_shape, parse_axes, parse_int
from convcalc.primitives.base import OpStats, Shape, Stage, identity_steps, numel, single_input

UNKNOWN_NOTE = "unknown op: params, MACs and other ops are NOT counted (unknown, not zero); shape from the model"


@dataclass(frozen=True)
class Opaque:
    """An operation without a formula: the output shape is given, every cost is unknown."""

    op: ClassVar[str] = "opaque"
    merge: ClassVar[bool] = False

    op_type: str
    output_shape: Shape

    def describe(self) -> str:
        return f"unknown op {self.op_type} -> {format_shape(self.output_shape)}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        single_input(inputs, self.op)
        return OpStats(output=self.output_shape, rf=None, notes=(f"{UNKNOWN_NOTE} ('{self.op_type}').",))


@dataclass(frozen=True)
class Elementwise:
    """``x <op> c`` for a constant ``c``: output = input, ``numel`` other ops, ``params`` weights."""

    op: ClassVar[str] = "elementwise"
    merge: ClassVar[bool] = False

    label: str
    params: int = 0

    def describe(self) -> str:
        return f"x {self.label} constant"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        return OpStats(output=shape, weights=self.params, other_ops=numel(shape), rf=identity_steps(shape))


def _text(value: object, name: str) -> str:
    return str(value)


def _shape(value: object, name: str) -> Axes:
    return parse_axes(value, name)


def _count(value: object, name: str) -> int:
    return parse_int(value, name, minimum=0)


def _unknown(p: Params, shape: Shape) -> Built:
    out = cast(Axes, p["output_shape"])
    return Built((Stage("unknown", Opaque(p.text("op_type"), tuple(out)), ("in",)),))


def _elementwise(p: Params, shape: Shape) -> Built:
    return Built((Stage("elementwise", Elementwise(p.text("op"), p.num("params")), ("in",)),))


register(
    Kind(
        "unknown",
        "an operation convcalc cannot analyse (imported with --allow-unknown): shape given, costs unknown",
        (
            FieldDef("op_type", _text, REQUIRED, "the operation's name (e.g. the ONNX op type)", ("op",)),
            FieldDef("output_shape", _shape, REQUIRED, "its output shape, channels first, no batch (e.g. 64x7x7)", ("shape",)),
        ),
        _unknown,
        aliases=("opaque",),
        min_rank=0,
        formulas=("output = output_shape; params, MACs, other ops: unknown (reported, never counted as 0)",),
        source="convcalc import --allow-unknown (ONNX shape inference)",
    )
)
register(
    Kind(
        "elementwise",
        "x <op> constant (add, sub, mul, div, pow...): shape kept, one op per element, optional learnable constant",
        (
            FieldDef("op", _text, "mul", "the operation (add, sub, mul, div, ...)"),
            FieldDef("params", _count, 0, "learnable elements of the constant (e.g. a layer scale: C)"),
        ),
        _elementwise,
        min_rank=0,
        aliases=("scalar_op", "constant_op"),
        formulas=("output = input;  params = params;  MACs 0;  other ops = numel",),
        source="ONNX Add/Sub/Mul/Div with a constant operand",
    )
)
