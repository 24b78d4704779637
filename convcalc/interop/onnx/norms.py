"""Normalisation: BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, LRN. Parameters as PyTorch counts them: BatchNorm's running mean and variance
are state, not parameters; scale and bias are parameters when they are learnable initializers."""

from __future__ import annotations

from convcalc.interop.onnx.common import Unmappable, axis_of, put, single, spatial_rank
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Result, converter


def _ranked(base: str, rank: int) -> str:
    return f"{base}{max(rank, 1)}d"


@converter("BatchNormalization")
def batch_norm(node: Node, g: Graph) -> Result:
    """-> ``batchnorm{r}d`` (``batchnorm1d`` for N x C and N x C x L): params 2·C (scale, bias)."""
    return single(node, g, _ranked("batchnorm", spatial_rank(g, node.inputs[0], node)))


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
