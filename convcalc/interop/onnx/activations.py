"""Activations: Relu, LeakyRelu, PRelu, Clip (ReLU6/ReLU), Sigmoid, HardSigmoid, HardSwish, Tanh,
Gelu, Elu, Softmax/LogSoftmax over the channels, and SiLU exported as ``x * Sigmoid(x)``."""

from __future__ import annotations

import math

from convcalc.interop.onnx.common import Unmappable, axis_of, put, single
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer, Result, converter

SIMPLE = {"Relu": "relu", "Tanh": "tanh", "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid", "Mish": "mish"}


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
