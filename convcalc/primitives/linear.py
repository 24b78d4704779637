"""Linear (fully connected) layers and embeddings.

``macs`` counts the multiply-accumulates of linear layers: torchvision's published "GFLOPS" are
exactly these (with the convolutions').
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.formula import Term, positions, product
from convcalc.parse.values import format_shape
from convcalc.primitives.base import OpStats, Shape, identity_steps, numel, single_input


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
