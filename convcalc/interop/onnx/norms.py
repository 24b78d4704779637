"""Normalisation: BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, LRN. Parameters as PyTorch counts them: BatchNorm's running mean and variance
are state, not parameters; scale and bias are parameters when they are learnable initializers."""

from __future__ import annotations

from convcalc.interop.onnx.common import Unmappable, axis_of, only_user, put, single, spatial_rank
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer, Result, converter


def _ranked(base: str, rank: int) -> str:
    return f"{base}{max(rank, 1)}d"


@converter("BatchNormalization")
def batch_norm(node: Node, g: Graph) -> Result:
    """-> ``batchnorm{r}d`` (``batchnorm1d`` for N x C and N x C x L): params 2·C (scale, bias). The
    scale (``layer1.0.bn1.weight``) names the row: the TorchScript exporter's scope name may not."""
    return single(node, g, _ranked("batchnorm", spatial_rank(g, node.inputs[0], node)), weight=node.inputs[1])


@converter("InstanceNormalization")
def instance_norm(node: Node, g: Graph) -> Result:
    rank = spatial_rank(g, node.inputs[0], node)
    if not 1 <= rank <= 3:
        raise Unmappable(f"{node} normalises a {rank}D input; convcalc has instancenorm1d/2d/3d.")
    fields: dict[str, object] = {}
    put(fields, "affine", g.is_param(node.inputs[1]), False)
    return single(node, g, _ranked("instancenorm", rank), fields)


@converter("LayerNormalization", since=17)
def layer_norm(node: Node, g: Graph) -> Result:
    """-> ``layernorm`` over ``normalized_shape`` = the input's axes from ``axis`` on (PyTorch's rule)."""
    source = node.inputs[0]
    axis = axis_of(node, g, int(node.attr("axis", -1)), source)
    if axis < 1:
        raise Unmappable(f"{node} normalises over the batch axis.")
    full = g.full_shape(source, node)
    fields: dict[str, object] = {"normalized_shape": list(full[axis:])}
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    affine = g.is_param(node.inputs[1]) or (has_bias and g.is_param(node.inputs[2]))
    put(fields, "elementwise_affine", affine, True)
    if affine:
        put(fields, "bias", has_bias and g.is_param(node.inputs[2]), True)
    return single(node, g, "layernorm", fields)


@converter("GroupNormalization", since=18)
def group_norm(node: Node, g: Graph) -> Result:
    """-> ``groupnorm``: scale and bias per channel (opset 21, PyTorch's GroupNorm). Opset 18's
    per-group scale has no PyTorch (or convcalc) counterpart unless groups = channels."""
    channels = g.shape(node.inputs[0], node)[0]
    if g.numel(node.inputs[1]) != channels:
        raise Unmappable(
            f"{node} has a scale of {g.numel(node.inputs[1])} elements (per group, opset 18);"
            f" convcalc's groupnorm (as PyTorch's) has one per channel ({channels})."
        )
    fields: dict[str, object] = {"num_groups": int(node.attr("num_groups"))}
    put(fields, "affine", g.is_param(node.inputs[1]), True)
    return single(node, g, "groupnorm", fields)


@converter("LRN")
def lrn(node: Node, g: Graph) -> Result:
    """-> ``local_response_norm``: ONNX's alpha/size·Σx² convention is PyTorch's (bias = k)."""
    fields: dict[str, object] = {"size": int(node.attr("size"))}
    put(fields, "alpha", round(float(node.attr("alpha", 1e-4)), 10), 1e-4)
    put(fields, "beta", round(float(node.attr("beta", 0.75)), 10), 0.75)
    put(fields, "k", round(float(node.attr("bias", 1.0)), 10), 1.0)
    return single(node, g, "local_response_norm", fields)


def _affine_step(g: Graph, node: Node | None, current: str, channels: int) -> Node | None:
    """``node`` when it is a Mul/Add of ``current`` by a learned constant of ``channels`` elements."""
    if node is None:
        return None
    others = [n for n in node.inputs if n != current]
    if len(others) != 1 or not g.is_learned(others[0]) or g.is_data(others[0]):
        return None
    shape = g.full_shape(others[0], node)
    return node if [d for d in shape if d != 1] == [channels] else None


def group_norm_pattern(node: Node, g: Graph) -> list[Layer] | None:
    """PyTorch's exported GroupNorm: Reshape(x, N x G x -1) -> InstanceNormalization -> Reshape(back)
    [-> Mul(weight) -> Add(bias)] is one ``groupnorm`` row (the nodes after the first are absorbed)."""
    if node.op_type != "Reshape":
        return None
    source = node.inputs[0]
    before, grouped = g.full_shape(source, node), g.full_shape(node.outputs[0], node)
    norm = only_user(g, node.outputs[0], "InstanceNormalization")
    if norm is None or len(grouped) != 3 or len(before) < 3 or grouped[0] != before[0] or before[1] % grouped[1]:
        return None
    back = only_user(g, norm.outputs[0], "Reshape")
    if back is None or g.full_shape(back.outputs[0], back) != before:
        return None
    channels, output, absorbed = before[1], back.outputs[0], [norm, back]
    mul = _affine_step(g, only_user(g, output, "Mul"), output, channels)
    add = _affine_step(g, only_user(g, mul.outputs[0], "Add"), mul.outputs[0], channels) if mul else None
    if mul is not None and add is not None:
        absorbed += [mul, add]
        output = add.outputs[0]
    g.absorbed.update(n.name for n in absorbed)
    fields: dict[str, object] = {"num_groups": grouped[1]}
    put(fields, "affine", add is not None, True)
    last = absorbed[-1]  # the node the exporters name after the GroupNorm module
    return [Layer("groupnorm", fields, [source], output, last.name, "Reshape+InstanceNormalization+Reshape")]
