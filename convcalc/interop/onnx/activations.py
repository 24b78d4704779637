"""Activations: Relu, LeakyRelu, PRelu, Clip (ReLU6/ReLU), Sigmoid, HardSigmoid, HardSwish, Tanh,
Gelu, Elu, Softmax/LogSoftmax over the channels, SiLU exported as ``x * Sigmoid(x)``, and GELU
exported as a subgraph (below opset 20, which has no Gelu op): ``x·½(1 + erf(x/√2))`` around an
Erf node, ``x·½(1 + tanh(√(2/π)·(x + 0.044715·x³)))`` around a Tanh node."""

from __future__ import annotations

import math

from convcalc.interop.onnx.common import Unmappable, axis_of, near, only_user, put, scalar_operand, single
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer, Result, converter

SIMPLE = {"Relu": "relu", "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid", "Mish": "mish"}


@converter(*SIMPLE)
def simple(node: Node, g: Graph) -> Result:
    return single(node, g, SIMPLE[node.op_type])


def silu_source(node: Node, g: Graph) -> tuple[str, Node] | None:
    """For ``Mul(x, Sigmoid(x))`` (either order) whose Sigmoid feeds only this Mul: (x, the Sigmoid)."""
    if node.op_type != "Mul" or len(node.inputs) != 2:
        return None
    for mine, other in ((0, 1), (1, 0)):
        sig = g.producer(node.inputs[mine])
        if (
            sig is not None
            and sig.op_type == "Sigmoid"
            and sig.inputs[0] == node.inputs[other]
            and [u.name for u in g.users(node.inputs[mine])] == [node.name]
        ):
            return node.inputs[other], sig
    return None


@converter("Sigmoid")
def sigmoid(node: Node, g: Graph) -> Result:
    return single(node, g, "sigmoid")


@converter("LeakyRelu")
def leaky_relu(node: Node, g: Graph) -> Result:
    fields: dict[str, object] = {}
    put(fields, "negative_slope", round(float(node.attr("alpha", 0.01)), 8), 0.01)
    return single(node, g, "leaky_relu", fields)


@converter("Elu")
def elu(node: Node, g: Graph) -> Result:
    fields: dict[str, object] = {}
    put(fields, "alpha", round(float(node.attr("alpha", 1.0)), 8), 1.0)
    return single(node, g, "elu", fields)


@converter("PRelu")
def prelu(node: Node, g: Graph) -> Result:
    """PRelu: slope of 1 (shared) or C elements (per channel) -> ``prelu num_parameters``."""
    slope = g.full_shape(node.inputs[1], node)
    fields: dict[str, object] = {}
    put(fields, "num_parameters", math.prod(slope), 1)
    return single(node, g, "prelu", fields)


def _clip_bounds(node: Node, g: Graph) -> tuple[float | None, float | None]:
    if g.opset < 11:
        return node.attr("min"), node.attr("max")
    bounds: list[float | None] = []
    for index in (1, 2):
        name = node.inputs[index] if len(node.inputs) > index else ""
        values = g.floats(name) if name else None
        if name and values is None:
            raise Unmappable(f"{node}: its bounds are not constants.")
        bounds.append(values[0] if values else None)
    return bounds[0], bounds[1]


@converter("Clip")
def clip(node: Node, g: Graph) -> Result:
    """Clip(0, 6) -> ``relu6``; Clip(0, inf) -> ``relu``; other bounds have no convcalc type."""
    low, high = _clip_bounds(node, g)
    if low == 0 and high == 6:
        return single(node, g, "relu6")
    if low == 0 and (high is None or math.isinf(high)):
        return single(node, g, "relu")
    raise Unmappable(f"{node} clips to [{low}, {high}]; convcalc maps Clip(0, 6) (ReLU6) and Clip(0, inf) (ReLU).")


@converter("Gelu", since=20)
def gelu(node: Node, g: Graph) -> Result:
    fields: dict[str, object] = {}
    put(fields, "approximate", str(node.attr("approximate", "none")), "none")
    return single(node, g, "gelu", fields)


def _gelu_tail(g: Graph, current: str, x: str) -> list[Node] | None:
    """The Add of 1 after erf/tanh, then the two Muls by ``x`` and by 0.5 (either order; the
    TorchScript exporter multiplies by x first, the dynamo exporter by 0.5), or None."""
    add = only_user(g, current, "Add")
    if add is None or not near(scalar_operand(add, g, current), 1.0):
        return None
    nodes, current, pending = [add], add.outputs[0], {"x", "half"}
    for _ in range(2):
        mul = only_user(g, current, "Mul")
        others = [] if mul is None else [name for name in mul.inputs if name != current]
        if mul is None or len(others) != 1:
            return None
        if others[0] == x and "x" in pending:
            pending.remove("x")
        elif near(scalar_operand(mul, g, current), 0.5) and "half" in pending:
            pending.remove("half")
        else:
            return None
        nodes.append(mul)
        current = mul.outputs[0]
    return nodes


def _gelu_row(anchor: Node, g: Graph, x: str, inner: list[Node], fields: dict[str, object], ops: str) -> list[Layer] | None:
    """The ``gelu`` row of the subgraph ``inner`` (the nodes before the anchor) + anchor + tail, the
    other nodes absorbed; None when the tail does not match."""
    tail = _gelu_tail(g, anchor.outputs[0], x)
    if tail is None:
        return None
    g.absorbed.update(n.name for n in [*inner, *tail])
    return [Layer("gelu", fields, [x], tail[-1].outputs[0], anchor.name, ops, f"GELU exported as {ops}")]


@converter("Erf")
def erf(node: Node, g: Graph) -> Result:
    """GELU (approximate='none') below opset 20: Div(x, √2) (or Mul(x, 1/√2)) -> Erf -> Add 1 ->
    Mul x, Mul 0.5 (torch.onnx's symbolic for gelu) -> one ``gelu`` row. Erf alone has no convcalc type."""
    scale = g.producer(node.inputs[0])
    if scale is not None and only_user(g, scale.outputs[0], "Erf") is node:
        for x in g.data_inputs(scale):
            by_div = scale.op_type == "Div" and near(scalar_operand(scale, g, x, 0), math.sqrt(2))
            by_mul = scale.op_type == "Mul" and near(scalar_operand(scale, g, x), math.sqrt(0.5))
            found = _gelu_row(node, g, x, [scale], {}, f"{scale.op_type}, Erf, Add, Mul, Mul") if by_div or by_mul else None
            if found is not None:
                return found
    raise Unmappable(f"{node} is not part of GELU's x·½(1 + erf(x/√2)); convcalc has no erf layer.")


def _cube(g: Graph, name: str) -> tuple[str, list[Node]] | None:
    """(x, its nodes) when ``name`` is x³ as Pow(x, 3) (dynamo) or Mul(x, Mul(x, x)) (TorchScript)."""
    node = g.producer(name)
    if node is None or only_user(g, name, "Mul") is None:  # read by the Mul of 0.044715 only
        return None
    if node.op_type == "Pow" and near(scalar_operand(node, g, node.inputs[0], 0), 3.0) and g.is_data(node.inputs[0]):
        return node.inputs[0], [node]
    if node.op_type != "Mul" or len(node.inputs) != 2:
        return None
    for square_name, x in (node.inputs, node.inputs[::-1]):
        square = g.producer(square_name)
        if square is not None and square.op_type == "Mul" and square.inputs == [x, x] and only_user(g, square_name, "Mul") is node:
            return x, [square, node]
    return None


def tanh_gelu(node: Node, g: Graph) -> list[Layer] | None:
    """GELU (approximate='tanh') below opset 20: tanh(√(2/π)·(x + 0.044715·x³)) -> Add 1 -> Mul x,
    Mul 0.5 -> one ``gelu`` row (approximate: tanh), or None when ``node`` is a plain Tanh."""
    scaled = g.producer(node.inputs[0])
    if scaled is None or scaled.op_type != "Mul" or only_user(g, scaled.outputs[0], "Tanh") is not node:
        return None
    for inner in g.data_inputs(scaled):
        add = g.producer(inner)
        if add is None or add.op_type != "Add" or not near(scalar_operand(scaled, g, inner), math.sqrt(2 / math.pi)):
            continue
        if only_user(g, inner, "Mul") is not scaled:
            continue
        for x, term in (add.inputs, add.inputs[::-1]):
            coeff = g.producer(term)
            if coeff is None or coeff.op_type != "Mul" or only_user(g, term, "Add") is not add:
                continue
            for cubed in g.data_inputs(coeff):
                cube = _cube(g, cubed) if near(scalar_operand(coeff, g, cubed), 0.044715) else None
                if cube is not None and cube[0] == x:
                    ops = f"{', '.join(n.op_type for n in cube[1])}, Mul, Add, Mul, Tanh, Add, Mul, Mul"
                    found = _gelu_row(node, g, x, [*cube[1], coeff, add, scaled], {"approximate": "tanh"}, ops)
                    if found is not None:
                        return found
    return None


@converter("Tanh")
def tanh(node: Node, g: Graph) -> Result:
    """Tanh -> ``tanh``, unless it is the middle of a tanh-approximate GELU (:func:`tanh_gelu`)."""
    return tanh_gelu(node, g) or single(node, g, "tanh")


def _softmax(type_name: str):  # type: ignore[no-untyped-def]
    def convert(node: Node, g: Graph) -> Result:
        source = g.data_inputs(node)[0]
        default = 1 if g.opset < 13 else -1
        axis = axis_of(node, g, int(node.attr("axis", default)), source)
        if axis != 1:
            raise Unmappable(f"{node} normalises over axis {axis}; convcalc's {type_name} is over the channels (axis 1).")
        return single(node, g, type_name)

    return convert


converter("Softmax")(_softmax("softmax"))
converter("LogSoftmax")(_softmax("log_softmax"))


def silu_layer(node: Node, g: Graph) -> list[Layer] | None:
    """The ``silu`` row of ``x * sigmoid(x)`` (the Sigmoid is absorbed), or None."""
    found = silu_source(node, g)
    if found is None:
        return None
    source, sig = found
    g.absorbed.add(sig.name)
    return [Layer("silu", {}, [source], node.outputs[0], node.name, "Mul(x, Sigmoid(x))")]
