"""Element-wise activations (with their stated ops per element) and identity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.primitives.base import OpStats, Shape, identity_steps, numel, single_input

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
