"""Reshaping without arithmetic: flatten, unflatten and channel slices (``torch.chunk``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.parse.values import format_shape
from convcalc.primitives.base import OpStats, Shape, identity_steps, numel, single_input

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


@dataclass(frozen=True)
class Unflatten:
    """PyTorch ``nn.Unflatten(dim, unflattened_size)``: dim ``dim`` (batch = 0) becomes the axes
    ``unflattened_size``, whose product is its size (a squeeze-and-excitation gate of linear layers
    goes back to ``C x 1 x 1``: ``view(N, C, 1, 1)``). A view: no params, no ops. Axes it creates
    have no receptive field of their own (``rf=None`` unless the rank is unchanged)."""

    op: ClassVar[str] = "unflatten"
    merge: ClassVar[bool] = False

    dim: int
    unflattened_size: tuple[int, ...]

    def describe(self) -> str:
        return f"unflatten dim {self.dim} -> {format_shape(self.unflattened_size)}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        ndim = len(shape) + 1
        dim = self.dim % ndim
        if not -ndim <= self.dim < ndim or dim == 0:
            raise ShapeError(
                f"unflatten dim {self.dim} does not fit the input {format_shape(shape)} (with the batch axis: {ndim} dims, batch = dim 0).",
                hint="Use 1 <= dim; the batch axis (dim 0) cannot be unflattened.",
            )
        if numel(self.unflattened_size) != shape[dim - 1]:
            raise ShapeError(
                f"unflattened_size {format_shape(self.unflattened_size)} has {numel(self.unflattened_size):,} elements"
                f" but dim {self.dim} of the input {format_shape(shape)} has {shape[dim - 1]:,}.",
                hint="The sizes must multiply to the size of the unflattened dim.",
            )
        out = (*shape[: dim - 1], *self.unflattened_size, *shape[dim:])
        return OpStats(output=out, rf=identity_steps(shape) if len(out) == len(shape) else None)


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
