"""Merges of several tensors: add, concat, multiply (shapes as PyTorch broadcasting allows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.parse.values import format_shape
from convcalc.primitives.base import OpStats, Shape, numel


def _merge_names(inputs: Sequence[Shape], names: Sequence[str]) -> list[str]:
    labels = list(names) + [f"input #{i + 1}" for i in range(len(names), len(inputs))]
    return [f"'{n}' {format_shape(s)}" for n, s in zip(labels, inputs, strict=False)]


def _check_arity(inputs: Sequence[Shape], op: str) -> None:
    if len(inputs) < 2:
        raise ShapeError(f"{op} needs at least two inputs, got {len(inputs)}.")
    if len({len(s) for s in inputs}) != 1:
        raise ShapeError(f"{op} inputs have different ranks: " + ", ".join(_merge_names(inputs, ())) + ".")


@dataclass(frozen=True)
class Add:
    """Element-wise sum of equal shapes (residual connections). ``(n-1) × numel`` additions."""

    op: ClassVar[str] = "add"
    merge: ClassVar[bool] = True

    def describe(self) -> str:
        return "add"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        _check_arity(inputs, "add")
        if len(set(inputs)) != 1:
            raise ShapeError(
                "add needs equal shapes but got " + " and ".join(_merge_names(inputs, names)) + ".",
                hint="Add a projection (1x1 conv) on one branch or fix the strides.",
            )
        return OpStats(output=inputs[0], other_ops=(len(inputs) - 1) * numel(inputs[0]))


@dataclass(frozen=True)
class Concat:
    """Concatenation along channels; spatial sizes must be equal."""

    op: ClassVar[str] = "concat"
    merge: ClassVar[bool] = True

    def describe(self) -> str:
        return "concat"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        _check_arity(inputs, "concat")
        if len({s[1:] for s in inputs}) != 1:
            raise ShapeError(
                "concat needs equal spatial sizes but got " + " and ".join(_merge_names(inputs, names)) + ".",
                hint="Crop, pad or resample one branch so the spatial sizes agree.",
            )
        out = (sum(s[0] for s in inputs), *inputs[0][1:])
        return OpStats(output=out, moved=numel(out))


@dataclass(frozen=True)
class Multiply:
    """Broadcasting element-wise product (squeeze-and-excitation gates): NumPy broadcasting rules."""

    op: ClassVar[str] = "multiply"
    merge: ClassVar[bool] = True

    def describe(self) -> str:
        return "multiply"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        _check_arity(inputs, "multiply")
        out = []
        for sizes in zip(*inputs, strict=True):
            big = {s for s in sizes if s != 1}
            if len(big) > 1:
                raise ShapeError(
                    "multiply needs broadcastable shapes but got " + " and ".join(_merge_names(inputs, names)) + ".",
                    hint="Each axis must be equal or 1 on all but one branch.",
                )
            out.append(max(sizes))
        return OpStats(output=tuple(out), other_ops=(len(inputs) - 1) * numel(out))
