"""Bindings of merges and re-arrangements: add, multiply, concat, identity, flatten, channel
slice, zero padding/cropping, pixel (un)shuffle and channel shuffle. None has weights; each
allocates its output only (views allocate nothing, which the estimate over-counts)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convcalc.execute import layers
from convcalc.execute.registry import Array, Context, Plan, binds, stateless
from convcalc.primitives.activation import Identity
from convcalc.primitives.conv import ChannelShuffle
from convcalc.primitives.merge import Add, Concat, Multiply
from convcalc.primitives.padding import Pad
from convcalc.primitives.resample import PixelShuffle
from convcalc.primitives.reshape import ChannelSlice, Flatten, Unflatten


@binds(Add)
def bind_add(op: Add, ctx: Context) -> Plan:
    """``y = x_0 + x_1 + ...`` into a new array (the fused pass: into ``x_0``'s buffer, when it
    has the output's shape)."""
    in_place = (lambda xs: layers.add(xs, out=xs[0])) if ctx.inputs[0] == ctx.output else None
    return stateless(layers.add, fresh=True, in_place=in_place)


@binds(Multiply)
def bind_multiply(op: Multiply, ctx: Context) -> Plan:
    """``y = x_0 · x_1 · ...`` (multiplied in place into one copy)."""
    return stateless(layers.multiply)


@binds(Concat)
def bind_concat(op: Concat, ctx: Context) -> Plan:
    """Concatenation along the channel axis."""
    return stateless(lambda xs: np.concatenate(xs, axis=1))


@binds(Identity)
def bind_identity(op: Identity, ctx: Context) -> Plan:
    """The input itself (dropout in eval mode, identity layers)."""
    return stateless(lambda xs: xs[0])


@binds(Flatten)
def bind_flatten(op: Flatten, ctx: Context) -> Plan:
    """``torch.flatten`` over the per-sample dims (batch = dim 0), a view."""
    return stateless(lambda xs: layers.flatten(xs[0], op.start_dim, op.end_dim))


@binds(Unflatten)
def bind_unflatten(op: Unflatten, ctx: Context) -> Plan:
    """``nn.Unflatten``: one per-sample dim (batch = dim 0) split into ``unflattened_size``, a view."""
    return stateless(lambda xs: layers.unflatten(xs[0], op.dim, op.unflattened_size))


@binds(ChannelSlice)
def bind_channel_slice(op: ChannelSlice, ctx: Context) -> Plan:
    """Channels ``start:stop`` (a view)."""
    return stateless(lambda xs: xs[0][:, op.start : op.stop])


@binds(Pad)
def bind_pad(op: Pad, ctx: Context) -> Plan:
    """Zero padding (negative amounts crop)."""
    return stateless(lambda xs: layers.zero_pad(xs[0], op.padding))


@binds(PixelShuffle)
def bind_pixel_shuffle(op: PixelShuffle, ctx: Context) -> Plan:
    """``PixelShuffle(r)``, or ``PixelUnshuffle(r)`` when ``inverse``."""

    def step(xs: Sequence[Array]) -> Array:
        return layers.pixel_unshuffle(xs[0], op.factor) if op.inverse else layers.pixel_shuffle(xs[0], op.factor)

    return stateless(step)


@binds(ChannelShuffle)
def bind_channel_shuffle(op: ChannelShuffle, ctx: Context) -> Plan:
    """ShuffleNet's channel shuffle."""
    return stateless(lambda xs: layers.channel_shuffle(xs[0], op.groups))
