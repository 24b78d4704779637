"""Pooling: MaxPool, AveragePool (ceil_mode, count_include_pad, dilations), GlobalAveragePool,
GlobalMaxPool, and ReduceMean/ReduceMax over spatial axes (axes moved from an attribute to an
input in opset 18)."""

from __future__ import annotations

from convcalc.interop.onnx.common import Unmappable, compact, ints_attr, put, single, spatial_rank, window_padding
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer, Result, converter


@converter("MaxPool", "AveragePool")
def pool(node: Node, g: Graph) -> Result:
    if len(node.outputs) > 1 and node.outputs[1] and (g.users(node.outputs[1]) or node.outputs[1] in g.outputs):
        raise Unmappable(f"{node} also returns indices (MaxUnpool), which convcalc does not model.")
    rank = spatial_rank(g, node.inputs[0], node)
    mode = "max" if node.op_type == "MaxPool" else "avg"
    kernel = [int(k) for k in node.attr("kernel_shape")]
    stride = ints_attr(node, "strides", rank, 1)
    dilation = ints_attr(node, "dilations", rank, 1)
    fields: dict[str, object] = {"kernel_size": compact(kernel)}
    if stride != kernel:  # convcalc's default stride is the kernel, as PyTorch's
        fields["stride"] = compact(stride)
    put(fields, "padding", window_padding(node, g, rank, kernel, stride, dilation), 0)
    if mode == "max":
        put(fields, "dilation", compact(dilation), 1)
    elif compact(dilation) != 1:
        raise Unmappable(f"{node} is a dilated average pool, which convcalc does not model.")
    put(fields, "ceil_mode", bool(node.attr("ceil_mode", 0)), False)
    if mode == "avg":
        put(fields, "count_include_pad", bool(node.attr("count_include_pad", 0)), True)
    return single(node, g, f"{mode}pool{rank}d", fields)


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(node: Node, g: Graph) -> Result:
    return single(node, g, "global_avgpool" if node.op_type == "GlobalAveragePool" else "global_maxpool")


def _reduce(node: Node, g: Graph, axes: list[int] | None) -> Result:
    """Reduce over every spatial axis -> ``global_*pool`` (``keepdims``); over some spatial axes with
    keepdims -> ``adaptive_*pool`` with output size 1 on them and the other axes kept."""
    lifted = _lifted(node, g, axes)
    if lifted is not None:
        return lifted
    source = node.inputs[0]
    full = g.full_shape(source, node)
    mode = "avg" if node.op_type == "ReduceMean" else "max"
    if axes is None:
        if node.attr("noop_with_empty_axes", 0):
            return None
        raise Unmappable(f"{node} reduces every axis, batch and channels included.")
    axes = sorted({a + len(full) if a < 0 else a for a in axes})
    spatial = list(range(2, len(full)))
    if not axes or any(a < 2 for a in axes):
        raise Unmappable(f"{node} reduces axes {axes}; convcalc maps reductions over spatial axes (2 and up).")
    keep = bool(node.attr("keepdims", 1))
    if axes == spatial:
        fields: dict[str, object] = {}
        put(fields, "keepdims", keep, True)
        return single(node, g, f"global_{mode}pool", fields)
    if not keep:
        raise Unmappable(f"{node} drops some spatial axes ({axes}); convcalc keeps them (set keepdims=1).")
    sizes: list[object] = [1 if a in axes else None for a in spatial]
    return single(node, g, f"adaptive_{mode}pool{len(spatial)}d", {"output_size": sizes})


def _lifted(node: Node, g: Graph, axes: list[int] | None) -> list[Layer] | None:
    """PyTorch's adaptive 1D pooling to 1 as exported: Unsqueeze (a size-1 axis) -> Reduce -> Squeeze
    (that axis) is one ``global_*pool`` over the original spatial axes (Unsqueeze and Squeeze absorbed)."""
    lift = g.producer(node.inputs[0])
    users = g.users(node.outputs[0])
    if lift is None or lift.op_type != "Unsqueeze" or len(users) != 1 or users[0].op_type != "Squeeze" or axes is None:
        return None
    drop = users[0]
    source = lift.inputs[0]
    before, after = g.full_shape(source, lift), g.full_shape(drop.outputs[0], drop)
    lifted = g.full_shape(lift.outputs[0], lift)
    rank = len(lifted)
    reduced = {a + rank if a < 0 else a for a in axes}
    expected = (*before[:2], *(1 for _ in before[2:]))
    if len(g.users(lift.outputs[0])) != 1 or after != expected or not reduced or min(reduced) < 2:
        return None
    g.absorbed.update((lift.name, drop.name))
    mode = "avg" if node.op_type == "ReduceMean" else "max"
    return [Layer(f"global_{mode}pool", {}, [source], drop.outputs[0], node.name, f"Unsqueeze+{node.op_type}+Squeeze")]


@converter("ReduceMean", "ReduceMax", until=17)
def reduce_attr(node: Node, g: Graph) -> Result:
    axes = node.attr("axes")
    return _reduce(node, g, [int(a) for a in axes] if axes else None)


@converter("ReduceMean", "ReduceMax", since=18)
def reduce_input(node: Node, g: Graph) -> Result:
    name = node.inputs[1] if len(node.inputs) > 1 else ""
    axes = g.ints(name)
    if name and axes is None:
        raise Unmappable(f"{node}: its axes are not constants.")
    return _reduce(node, g, axes or None)
