"""Bindings of pooling, normalisation, activations, linear, embedding, upsampling and local
response normalisation.

Temporaries are declared from each kernel's formula (see :data:`convcalc.execute.layers.ACTIVATIONS`);
norm weights are ``1 + 0.1·N(0, 1)``, biases ``0.1·N(0, 1)``, batch-norm running statistics
0 and 1, PReLU slopes 0.25 (PyTorch's initial value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from convcalc.execute import layers, pool, reference
from convcalc.execute.registry import Array, Check, Context, Fuse, Kernel, Plan, Weight, binds, fan_in_scale, stateless
from convcalc.primitives.activation import Activation
from convcalc.primitives.linear import Embedding, Linear
from convcalc.primitives.norm import LocalResponseNorm, Norm
from convcalc.primitives.pool import AdaptivePool, Pool
from convcalc.primitives.resample import Upsample


@binds(Pool)
def bind_pool(op: Pool, ctx: Context) -> Plan:
    """Max or average window pooling, tap by tap in a blocked workspace."""
    if op.mode == "max":

        def step(xs: Sequence[Array]) -> Array:
            return pool.max_pool(xs[0], op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode)

    else:

        def step(xs: Sequence[Array]) -> Array:
            return pool.avg_pool(xs[0], op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad)

    dilation = op.dilation if op.mode == "max" else (1,) * len(op.kernel_size)
    workspace = pool.pool_workspace_bytes(ctx.inputs[0], op.kernel_size, op.stride, op.padding, dilation, op.ceil_mode, ctx.dtype)
    return Plan(lambda _: Kernel(step), workspace_bytes=workspace)


@binds(AdaptivePool)
def bind_adaptive_pool(op: AdaptivePool, ctx: Context) -> Plan:
    """Adaptive max/average pooling (``None`` in ``output_size`` keeps that axis), separable: one
    reduced copy per axis (at most two live, each at most the input)."""
    sizes = tuple(size if size is not None else i for size, i in zip(op.output_size, ctx.inputs[0][2:], strict=True))
    fn = pool.adaptive_max_pool if op.mode == "max" else pool.adaptive_avg_pool

    def step(xs: Sequence[Array]) -> Array:
        y = fn(xs[0], sizes)
        return y if op.keepdims else y.reshape(y.shape[:2])

    return stateless(step, 2 * ctx.nbytes(ctx.inputs[0]))


@binds(Norm)
def bind_norm(op: Norm, ctx: Context) -> Plan:
    """Batch (eval mode), group, instance or layer normalisation with an optional affine."""
    channels = ctx.inputs[0][1]
    width = math.prod(op.normalized_shape) if op.normalized_shape is not None else channels
    affine = (Weight((width,), 0.1, 1.0), *((Weight((width,), 0.1),) if op.bias else ())) if op.affine else ()
    stats = (Weight((channels,), 0.0, 0.0), Weight((channels,), 0.0, 1.0)) if op.style == "batch" else ()

    def build(weights: tuple[Array, ...]) -> Kernel:
        weight = weights[0] if op.affine else None
        bias = weights[1] if op.affine and op.bias else None
        if op.style == "batch":
            mean, var = weights[len(affine) :]
            scale, shift = layers.batch_norm_affine(mean, var, weight, bias)
            return Kernel(lambda xs: layers.channel_affine(xs[0], scale, shift), affine=(scale, shift))

        def step(xs: Sequence[Array]) -> Array:
            x = xs[0]
            if op.style in ("group", "instance"):
                return layers.group_norm(x, op.groups if op.style == "group" else channels, weight, bias)
            if op.normalized_shape is not None:
                normalized = layers.layer_norm(x, op.normalized_shape)
                return _affine_trailing(normalized, weight, bias, op.normalized_shape)
            moved = np.moveaxis(x, 1, -1)
            return np.moveaxis(layers.layer_norm(moved, (channels,), weight, bias), -1, 1)

        return Kernel(step)

    # batch norm: one affine pass into the output; the others: centered, its square, y · weight (3 + the input's copy)
    temporaries = 0 if op.style == "batch" else 4 * ctx.output_bytes
    fuse = Fuse.FRESH | Fuse.AFFINE if op.style == "batch" else Fuse.NONE
    packed = 2 * ctx.nbytes((channels,)) if op.style == "batch" else 0  # scale and shift
    return Plan(build, (*affine, *stats), temporary_bytes=temporaries, packed_bytes=packed, fuse=fuse)


def _affine_trailing(x: Array, weight: Array | None, bias: Array | None, shape: Sequence[int]) -> Array:
    if weight is not None:
        x = x * weight.reshape(tuple(shape))
    if bias is not None:
        x = x + bias.reshape(tuple(shape))
    return x


@binds(Activation)
def bind_activation(op: Activation, ctx: Context) -> Plan:
    """An element-wise activation of :data:`convcalc.execute.layers.ACTIVATIONS`, or PReLU."""
    if op.fn == "prelu":

        def build(weights: tuple[Array, ...]) -> Kernel:
            return Kernel(lambda xs: layers.prelu(xs[0], weights[0]))

        slope = Weight((max(op.num_parameters, 1),), 0.0, 0.25)
        return Plan(build, (slope,), temporary_bytes=2 * ctx.output_bytes)  # mask, slope · x
    activation = layers.ACTIVATIONS[op.fn]
    in_place = activation.in_place
    return stateless(
        lambda xs: activation.fn(xs[0]),
        activation.temporaries * ctx.output_bytes,
        fresh=in_place is not None,
        in_place=None if in_place is None else lambda xs: in_place(xs[0]),
        elementwise=activation.block,
    )


@binds(Linear)
def bind_linear(op: Linear, ctx: Context) -> Plan:
    """``y = x·Wᵀ + b`` on the channel axis (a spatial input is moved channels-last, which
    matmul copies: one input-sized temporary)."""

    def build(weights: tuple[Array, ...]) -> Kernel:
        w = weights[0]
        b = weights[1] if op.bias else None

        def step(xs: Sequence[Array]) -> Array:
            return np.moveaxis(layers.linear(np.moveaxis(xs[0], 1, -1), w, b), -1, 1)

        def check(xs: Sequence[Array], y: Array) -> Check:
            return reference.linear_check(xs, y, w, b)

        return Kernel(step, check)

    weights = (
        Weight((op.out_features, op.in_features), fan_in_scale(op.in_features)),
        *((Weight((op.out_features,), 0.1),) if op.bias else ()),
    )
    temporaries = ctx.nbytes(ctx.inputs[0]) if len(ctx.inputs[0]) > 2 else 0
    verify = reference.float64_copy_bytes(ctx.inputs[0]) if ctx.verify else 0
    return Plan(build, weights, temporary_bytes=temporaries + verify)


@binds(Embedding)
def bind_embedding(op: Embedding, ctx: Context) -> Plan:
    """Table look-up; the ids are derived from the (random) input's first channel."""

    def build(weights: tuple[Array, ...]) -> Kernel:
        table = weights[0]

        def step(xs: Sequence[Array]) -> Array:
            ids = (np.abs(xs[0][:, 0]) * op.num_embeddings).astype(np.intp) % op.num_embeddings
            return np.moveaxis(table[ids], -1, 1)

        return Kernel(step)

    positions = math.prod(ctx.inputs[0]) // ctx.inputs[0][1]
    return Plan(build, (Weight((op.num_embeddings, op.embedding_dim)),), temporary_bytes=4 * positions * 8)


@binds(Upsample)
def bind_upsample(op: Upsample, ctx: Context) -> Plan:
    """Nearest or (bi/tri)linear resize to the engine's output sizes (one axis at a time: the
    linear modes keep two gathers, two products and a sum live, each at most the output)."""
    size = ctx.output[2:]
    if op.mode == "nearest":
        return stateless(lambda xs: layers.upsample_nearest(xs[0], size=size), 2 * ctx.output_bytes)
    return stateless(
        lambda xs: layers.upsample_linear(xs[0], size=size, align_corners=op.align_corners), 5 * ctx.output_bytes
    )


@binds(LocalResponseNorm)
def bind_lrn(op: LocalResponseNorm, ctx: Context) -> Plan:
    """PyTorch ``local_response_norm`` over channels."""
    return stateless(
        lambda xs: layers.local_response_norm(xs[0], op.size, op.alpha, op.beta, op.k),
        2 * layers.LRN_TEMPORARIES * ctx.output_bytes,
    )
