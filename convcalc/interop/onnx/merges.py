"""Element-wise merges and concatenation: Add/Sub/Mul/Div/Sum with broadcasting (residuals,
squeeze-and-excitation gates), Concat along the channels. An operand that is a constant makes the
node an ``elementwise`` row (``x / 6``, a learnable layer scale) instead of a merge."""

from __future__ import annotations

import math

from convcalc.interop.onnx.activations import silu_layer
from convcalc.interop.onnx.common import Unmappable, axis_of
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Alias, Layer, Result, converter

OPS = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Sum": "add", "Pow": "pow"}


@converter("Add", "Sub", "Mul", "Div", "Sum", "Pow")
def arithmetic(node: Node, g: Graph) -> Result:
    if node.op_type == "Mul":
        silu = silu_layer(node, g)
        if silu is not None:
            return silu
    data = g.data_inputs(node)
    out = node.outputs[0]
    constants = [name for name in node.inputs if name and name not in g.data]
    if len(data) == 1:
        if g.full_shape(data[0], node) != g.full_shape(out, node):
            raise Unmappable(f"{node}: a constant operand broadcasts the input to a larger shape.")
        # a parameter by name, or (optimised graphs rename them) a stored tensor of more than one element
        sizes = {c: math.prod(g.full_shape(c, node)) for c in constants}
        params = sum(n for c, n in sizes.items() if g.is_param(c) or (g.is_learned(c) and n > 1))
        fields: dict[str, object] = {"op": OPS[node.op_type]}
        if params:
            fields["params"] = params
        return [Layer("elementwise", fields, data, out, node.name, node.op_type)]
    if node.op_type == "Pow":
        raise Unmappable(f"{node} raises a tensor to a tensor power.")
    shapes = {g.full_shape(name, node) for name in data}
    merge = "add" if node.op_type in ("Add", "Sub", "Sum") and len(shapes) == 1 else "multiply"
    comment = "" if OPS[node.op_type] in (merge, "mul") else f"ONNX {node.op_type}: counted as {merge} (same element count)"
    return [Layer(merge, {}, data, out, node.name, node.op_type, comment)]


@converter("Concat")
def concat(node: Node, g: Graph) -> Result:
    data = g.data_inputs(node)
    if len(data) != len([n for n in node.inputs if n]):
        raise Unmappable(f"{node} concatenates a constant tensor.")
    axis = axis_of(node, g, int(node.attr("axis")), data[0])
    if axis != 1:
        raise Unmappable(f"{node} concatenates along axis {axis}; convcalc's concat is along the channels (axis 1).")
    if len(data) == 1:
        return Alias(data[0])
    return [Layer("concat", {}, data, node.outputs[0], node.name, node.op_type)]
