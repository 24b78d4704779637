"""Fully connected layers: Gemm, and MatMul with a constant weight (+ the Add of its bias)."""

from __future__ import annotations

from convcalc.interop.onnx.common import Unmappable
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer, Result, converter


def _flat_input(node: Node, g: Graph, name: str) -> None:
    """Refuse a product over the last axis of a tensor of rank > 2 (``nn.Linear`` on N x T x D):
    convcalc's linear acts on the channel axis (specs/README.md, ``linear``), and a spec has no
    transpose to bring the last axis there, so no row has its output shape."""
    shape = g.full_shape(name, node)
    if len(shape) != 2:
        raise Unmappable(
            f"{node} multiplies over the last axis of the {'x'.join(map(str, shape))} tensor '{name}' (a linear layer on a"
            f" rank-{len(shape)} input); convcalc's linear acts on the channel axis (axis 1: a vector after flatten, or every"
            " position of a feature map, like a 1x1 conv) and a spec has no transpose, so no convcalc row gives this output"
            " (flatten the input before the linear layer, or put the features on axis 1)."
        )


@converter("Gemm")
def gemm(node: Node, g: Graph) -> Result:
    """Gemm(A, B, C) = alpha·A·B' + beta·C -> ``linear``: out_features = B.shape[0] (transB) or B.shape[1]."""
    source, weight = node.inputs[0], node.inputs[1]
    if node.attr("transA", 0) or not g.is_data(source) or g.is_data(weight):
        raise Unmappable(f"{node} is not input x constant weight (transA=0), so it is not a linear layer.")
    _flat_input(node, g, source)
    dims = g.full_shape(weight, node)
    out = dims[0] if node.attr("transB", 0) else dims[1]
    bias = len(node.inputs) > 2 and g.is_learned(node.inputs[2])
    if len(node.inputs) > 2 and g.is_data(node.inputs[2]):
        raise Unmappable(f"{node} adds a tensor computed from the input, not a bias.")
    fields: dict[str, object] = {"out_features": out}
    if not bias:
        fields["bias"] = False
    return [Layer("linear", fields, [source], node.outputs[0], node.name, node.op_type, weight=weight)]


def bias_add(node: Node, g: Graph, out_features: int) -> Node | None:
    """The Add that adds a constant bias of ``out_features`` elements to this MatMul's output (its only user)."""
    users = g.users(node.outputs[0])
    if len(users) != 1 or users[0].op_type != "Add":
        return None
    add = users[0]
    other = [n for n in add.inputs if n != node.outputs[0]]
    if len(other) != 1 or g.is_data(other[0]) or g.full_shape(other[0], add)[-1:] != (out_features,):
        return None
    if len([d for d in g.full_shape(other[0], add) if d != 1]) > 1:
        return None
    return add


@converter("MatMul")
def matmul(node: Node, g: Graph) -> Result:
    """MatMul(x, W) with a constant W (in x out) -> ``linear``; a following Add of a constant
    vector of ``out`` elements is its bias (absorbed)."""
    source, weight = node.inputs
    if not g.is_data(source) or g.is_data(weight) or len(g.full_shape(weight, node)) != 2:
        raise Unmappable(f"{node} does not multiply the input by a constant matrix, so it is not a linear layer.")
    _flat_input(node, g, source)
    out = g.full_shape(weight, node)[1]
    add = bias_add(node, g, out)
    fields: dict[str, object] = {"out_features": out}
    output = node.outputs[0]
    if add is None:
        fields["bias"] = False
    else:
        g.absorbed.add(add.name)
        output = add.outputs[0]
    return [Layer("linear", fields, [source], output, node.name, node.op_type, weight=weight)]
