"""Bindings of the convolution family: convolution, transposed convolution and the sampling
stage of a deformable convolution.

Weights follow PyTorch's layouts: ``(C_out, C_in/g, *k)`` for a convolution,
``(C_in, C_out/g, *k)`` for a transposed one; He-scaled by the fan-in, biases ``0.1·N(0, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from convcalc.execute import deform, fuse, reference
from convcalc.execute.conv import pack_conv, packed_shape, plan_conv, run_plan
from convcalc.execute.registry import Array, Check, Context, Fuse, Kernel, Plan, Weight, binds, fan_in_scale, stateless
from convcalc.execute.transposed import pack_col2im, plan_conv_transpose, run_transpose_plan
from convcalc.primitives.conv import Conv, ConvTranspose, DeformSample


def _bias(out_channels: int, bias: bool) -> tuple[Weight, ...]:
    return (Weight((out_channels,), 0.1),) if bias else ()


CONV_FUSE = Fuse.FRESH | Fuse.FOLDS | Fuse.EPILOGUE
"""A convolution (transposed too) returns a new output, absorbs a following per-channel affine
and applies a following element-wise stage to each output block it writes."""


def _split(weights: tuple[Array, ...]) -> tuple[Array, Array | None]:
    return weights[0], (weights[1] if len(weights) > 1 else None)


@binds(Conv)
def bind_conv(op: Conv, ctx: Context) -> Plan:
    """``y = conv(x, w) + b`` planned by :func:`convcalc.execute.conv.plan_conv` (Winograd's
    transformed weights and rowsum's re-arranged ones made once here, as inference engines
    pre-pack them)."""
    c_in_g = op.in_channels // op.groups
    w_shape = (op.out_channels, c_in_g, *op.kernel_size)
    plan = plan_conv(ctx.inputs[0], w_shape, op.stride, op.padding, op.dilation, op.groups, ctx.dtype)
    verify = reference.float64_copy_bytes(ctx.inputs[0], op.padding) if ctx.verify else 0

    def build(weights: tuple[Array, ...], epilogue: Callable[[Array], object] | None = None) -> Kernel:
        w, b = _split(weights)
        packed = pack_conv(w, plan, b)

        def step(xs: Sequence[Array]) -> Array:
            # shapes fixed at plan time: no re-planning per call
            return run_plan(plan, xs[0], w, b, packed, epilogue=epilogue)

        def check(xs: Sequence[Array], y: Array) -> Check:
            return reference.conv_check(xs, y, w, b, op.stride, op.padding, op.dilation, op.groups)

        return Kernel(
            step,
            check,
            fold=None if epilogue else lambda scale, shift: build(fuse.fold_conv(w, b, scale, shift)),
            epilogue=lambda then: build(weights, then),
        )

    weight = Weight(w_shape, fan_in_scale(c_in_g * math.prod(op.kernel_size)))
    shape = packed_shape(plan)
    packed_bytes = 0 if shape is None else ctx.nbytes(shape)
    return Plan(build, (weight, *_bias(op.out_channels, op.bias)), plan.workspace_bytes, verify, packed_bytes, CONV_FUSE)


@binds(ConvTranspose)
def bind_conv_transpose(op: ConvTranspose, ctx: Context) -> Plan:
    """``y = conv_transpose(x, w) + b`` planned by :func:`convcalc.execute.transposed.plan_conv_transpose`
    (weights packed once here when the plan is channels-last col2im)."""
    w_shape = (op.in_channels, op.out_channels // op.groups, *op.kernel_size)
    plan = plan_conv_transpose(
        ctx.inputs[0], w_shape, op.stride, op.padding, op.output_padding, op.dilation, op.groups, ctx.dtype
    )
    verify = reference.float64_copy_bytes(ctx.inputs[0]) if ctx.verify else 0

    def build(weights: tuple[Array, ...], epilogue: Callable[[Array], object] | None = None) -> Kernel:
        w, b = _split(weights)
        packed = pack_col2im(w, op.groups) if plan.channels_last else None

        def step(xs: Sequence[Array]) -> Array:
            return run_transpose_plan(plan, xs[0], w, b, packed, epilogue=epilogue)  # shapes fixed at plan time

        def check(xs: Sequence[Array], y: Array) -> Check:
            return reference.conv_transpose_check(xs, y, w, b, op.stride, op.padding, op.dilation, op.groups)

        return Kernel(
            step,
            check,
            fold=None if epilogue else lambda scale, shift: build(fuse.fold_conv_transpose(w, b, scale, shift, op.groups)),
            epilogue=lambda then: build(weights, then),
        )

    weight = Weight(w_shape, fan_in_scale(op.in_channels // op.groups))
    packed_bytes = ctx.nbytes(w_shape) if plan.channels_last else 0
    return Plan(build, (weight, *_bias(op.out_channels, op.bias)), plan.workspace_bytes, verify, packed_bytes, CONV_FUSE)


@binds(DeformSample)
def bind_deform_sample(op: DeformSample, ctx: Context) -> Plan:
    """Bilinear sampling into the ``(C, k_h·H_out, k_w·W_out)`` layout of :class:`convcalc.primitives.conv.DeformSample`."""
    kernel = (op.kernel_size[0], op.kernel_size[1])
    stride = (op.stride[0], op.stride[1])
    dilation = (op.dilation[0], op.dilation[1])
    out_sizes = (ctx.inputs[1][2], ctx.inputs[1][3])

    def step(xs: Sequence[Array]) -> Array:
        return deform.deform_sample(xs[0], xs[1], kernel, stride, op.padding, dilation, op.offset_groups, op.modulated)

    temporaries = deform.deform_sample_temporary_bytes(
        ctx.inputs[0], out_sizes, math.prod(kernel), op.offset_groups, ctx.dtype.itemsize
    )
    return stateless(step, temporaries)
