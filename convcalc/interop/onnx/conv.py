"""Convolutions: Conv (groups, dilations, asymmetric pads, auto_pad), ConvTranspose (output_padding,
output_shape) and DeformConv (with the offset/mask convolutions that feed it)."""

from __future__ import annotations

from convcalc.interop.onnx.common import Unmappable, compact, ints_attr, onnx_pads, pairs, put, window_padding
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer, Result, converter


def _weight(node: Node, g: Graph) -> tuple[int, ...]:
    name = node.inputs[1]
    if g.is_data(name):
        raise Unmappable(f"{node} computes its weights from the input (a dynamic convolution).")
    return g.full_shape(name, node)


def _bias(node: Node, g: Graph, index: int = 2) -> bool:
    """A bias input computed from initializers (the dynamo exporter feeds bias-free convs a made-up zero)."""
    return len(node.inputs) > index and g.is_learned(node.inputs[index])


@converter("Conv")
def conv(node: Node, g: Graph) -> Result:
    """ONNX Conv -> ``conv{r}d``: out_channels = W.shape[0], kernel = W.shape[2:], groups = group."""
    weight = _weight(node, g)
    rank = len(weight) - 2
    if not 1 <= rank <= 3:
        raise Unmappable(f"{node} is a {rank}D convolution; convcalc has 1D to 3D.")
    kernel = [int(k) for k in node.attr("kernel_shape") or weight[2:]]
    stride, dilation = ints_attr(node, "strides", rank, 1), ints_attr(node, "dilations", rank, 1)
    fields: dict[str, object] = {"out_channels": weight[0], "kernel_size": compact(kernel)}
    put(fields, "stride", compact(stride), 1)
    put(fields, "padding", window_padding(node, g, rank, kernel, stride, dilation), 0)
    put(fields, "dilation", compact(dilation), 1)
    put(fields, "groups", int(node.attr("group", 1)), 1)
    put(fields, "bias", _bias(node, g), True)
    (layer,) = _layer(node, g, f"conv{rank}d", fields)
    return [layer]


def _layer(node: Node, g: Graph, type_name: str, fields: dict[str, object]) -> list[Layer]:
    return [Layer(type_name, fields, [node.inputs[0]], node.outputs[0], node.name, node.op_type, weight=node.inputs[1])]


@converter("ConvTranspose")
def conv_transpose(node: Node, g: Graph) -> Result:
    """ONNX ConvTranspose -> ``conv_transpose{r}d``: W is (C_in, C_out/g, k...), so out = W.shape[1]·g.

    ``output_shape`` sets the pads (ONNX spec): total = s·(i-1) + output_padding + d·(k-1) + 1 - out,
    split with the odd unit at the start (or at the end for auto_pad SAME_UPPER).
    """
    weight = _weight(node, g)
    rank = len(weight) - 2
    if not 1 <= rank <= 3:
        raise Unmappable(f"{node} is a {rank}D transposed convolution; convcalc has 1D to 3D.")
    group = int(node.attr("group", 1))
    kernel = [int(k) for k in node.attr("kernel_shape") or weight[2:]]
    stride, dilation = ints_attr(node, "strides", rank, 1), ints_attr(node, "dilations", rank, 1)
    output_padding = ints_attr(node, "output_padding", rank, 0)
    sizes = g.shape(node.inputs[0], node)[1:]
    auto = str(node.attr("auto_pad", "NOTSET"))
    target = node.attr("output_shape")
    if target or auto in ("SAME_UPPER", "SAME_LOWER"):
        outs = [int(t) for t in target][-rank:] if target else [i * s for i, s in zip(sizes, stride, strict=True)]
        before, after = [], []
        for i, k, s, d, op, o in zip(sizes, kernel, stride, dilation, output_padding, outs, strict=True):
            total = s * (i - 1) + op + d * (k - 1) + 1 - o
            if total < 0:
                raise Unmappable(f"{node}: output_shape {outs} needs negative padding.")
            upper = auto == "SAME_UPPER"
            before.append(total // 2 if upper else total - total // 2)
            after.append(total - total // 2 if upper else total // 2)
    elif auto == "VALID":
        before, after = [0] * rank, [0] * rank
    else:
        before, after = onnx_pads(node, rank)
    fields: dict[str, object] = {"out_channels": weight[1] * group, "kernel_size": compact(kernel)}
    put(fields, "stride", compact(stride), 1)
    put(fields, "padding", pairs(before, after), 0)
    put(fields, "output_padding", compact(output_padding), 0)
    put(fields, "dilation", compact(dilation), 1)
    put(fields, "groups", group, 1)
    put(fields, "bias", _bias(node, g), True)
    return _layer(node, g, f"conv_transpose{rank}d", fields)


def _feeding_conv(g: Graph, name: str, source: str, consumer: Node) -> Node | None:
    """The Conv producing ``name`` from ``source`` whose only user is ``consumer``."""
    node = g.producer(name)
    users = g.users(name)
    if node is None or node.op_type != "Conv" or node.inputs[0] != source or [u.name for u in users] != [consumer.name]:
        return None
    return node


@converter("DeformConv", since=19)
def deform_conv(node: Node, g: Graph) -> Result:
    """ONNX DeformConv (+ the Conv computing its offsets, + Sigmoid(Conv) for the v2 mask) -> ``deformable2d``.

    convcalc's ``deformable2d`` contains the offset convolution (C_in -> 2·G·K, or 3·G·K for v2 with
    the mask), so the convolutions feeding the offsets and the mask are absorbed into the row:
    their parameters and MACs are the offset conv's (one conv of 3·G·K channels costs what a 2·G·K
    and a G·K conv cost together).
    """
    source = node.inputs[0]
    weight = _weight(node, g)
    if len(weight) != 4:
        raise Unmappable(f"{node} is not 2D; convcalc's deformable2d is.")
    offset = _feeding_conv(g, node.inputs[2], source, node)
    if offset is None:
        raise Unmappable(f"{node}: its offsets do not come from a Conv of the same input, which convcalc's deformable2d assumes.")
    absorbed = [offset]
    mask_name = node.inputs[4] if len(node.inputs) > 4 else ""
    if mask_name:
        sigmoid = g.producer(mask_name)
        mask = None
        if sigmoid is not None and sigmoid.op_type == "Sigmoid" and len(g.users(mask_name)) == 1:
            mask = _feeding_conv(g, sigmoid.inputs[0], source, sigmoid)
        if sigmoid is None or mask is None:
            raise Unmappable(f"{node}: its mask is not Sigmoid(Conv(x)) of the same input, which convcalc's deformable2d assumes.")
        absorbed += [sigmoid, mask]
    g.absorbed.update(n.name for n in absorbed)
    kernel = [int(k) for k in node.attr("kernel_shape") or weight[2:]]
    stride, dilation = ints_attr(node, "strides", 2, 1), ints_attr(node, "dilations", 2, 1)
    fields: dict[str, object] = {"out_channels": weight[0], "kernel_size": compact(kernel)}
    put(fields, "stride", compact(stride), 1)
    put(fields, "padding", pairs(*onnx_pads(node, 2)), 0)
    put(fields, "dilation", compact(dilation), 1)
    put(fields, "groups", int(node.attr("group", 1)), 1)
    put(fields, "offset_groups", int(node.attr("offset_group", 1)), 1)
    put(fields, "version", 2 if mask_name else 1, 1)
    put(fields, "bias", _bias(node, g, 3), True)
    return _layer(node, g, "deformable2d", fields)
