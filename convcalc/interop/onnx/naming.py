"""Layer names from the graph: module paths such as ``layer1.0.conv1``.

Sources, first match wins:

1. the layer's weight initializer ``layer1.0.conv1.weight`` (both PyTorch exporters keep parameter
   names, also when the dynamo exporter folded a BatchNorm into the conv);
2. the dynamo exporter's node metadata ``pkg.torch.onnx.name_scopes``
   (``['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu']``: the module path is the last entry but one);
3. the TorchScript exporter's node name ``/layer1/layer1.0/conv1/Conv``: each scope is the module's
   name from its last non-numeric atom on (``layer1.0`` inside ``layer1``), rebuilt into the path;
4. otherwise the node name itself (hand-built graphs), made a valid spec name.

A module that produced one row (or several rows of one type: a module called twice, as
torchvision's ``relu``) names them ``path``, ``path_2``; a module with sub-modules or several kinds of
rows names its own rows after their type (``layer1.0.add``), as convcalc names merges.
"""

from __future__ import annotations

import ast
import re

from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer

_INVALID = re.compile(r"[^A-Za-z0-9_\-]+")
RESERVED = ("input", "previous")


def segment(text: str, fallback: str) -> str:
    """A valid spec name: no '.', '/', or reserved word."""
    name = _INVALID.sub("_", text).strip("_") or fallback
    return f"{name}_" if name in RESERVED else name


def torchscript_path(name: str) -> str | None:
    """``/layer1/layer1.0/conv1/Conv_1`` -> ``layer1.0.conv1``; ``/Add`` -> ``''``; other names -> None."""
    if not name.startswith("/"):
        return None
    scopes = name.split("/")[1:-1]
    path, previous = "", ""
    for scope in scopes:
        rest = scope[len(previous) + 1 :] if previous and scope.startswith(previous + ".") else None
        if rest is not None and all(part.isdigit() for part in rest.split(".")):
            path = f"{path}.{rest}"
        else:
            path = f"{path}.{scope}" if path else scope
        previous = scope
    return path


def dynamo_path(node: Node) -> str | None:
    scopes = node.meta.get("pkg.torch.onnx.name_scopes")
    if not scopes:
        return None
    try:
        entries = ast.literal_eval(scopes)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(entries, list) or len(entries) < 2:
        return None
    return str(entries[-2]) if len(entries) > 2 else ""


def module_of(layer: Layer, node: Node | None, g: Graph) -> str | None:
    """The module path that produced ``layer`` (``''``: the top module), or None if unknown."""
    if layer.weight and g.is_param(layer.weight) and layer.weight.endswith(".weight"):
        return layer.weight[: -len(".weight")]
    if node is None:
        return None
    found = dynamo_path(node)
    return found if found is not None else torchscript_path(node.name)


def base_name(layer: Layer) -> str:
    if layer.type == "unknown":
        return segment(str(layer.fields.get("op_type", "unknown")).lower(), "unknown")
    return layer.type


def assign(layers: list[Layer], nodes: dict[str, Node], g: Graph) -> None:
    """Set every layer's ``name`` to a unique dotted path."""
    raw = [module_of(layer, nodes.get(layer.node), g) for layer in layers]
    modules: list[str | None] = [None if m is None else ".".join(segment(p, "m") for p in m.split(".")) if m else "" for m in raw]
    leaves = _leaves(modules, layers)
    if any(m is not None for m in modules):
        producer: dict[str, int] = {}
        for index, layer in enumerate(layers):
            if modules[index] is None:  # no metadata (e.g. a dynamo Split): the scope of its input's producer
                source = producer.get(layer.inputs[0]) if layer.inputs else None
                module = modules[source] if source is not None else ""
                modules[index] = module.rpartition(".")[0] if module and module in leaves else module or ""
            producer[layer.output] = index
        leaves = _leaves(modules, layers)
    candidates: list[str] = []
    for layer, module in zip(layers, modules, strict=True):
        if module is None:
            candidates.append(segment(layer.node, base_name(layer)))
        elif module in leaves:
            candidates.append(module)
        else:
            candidates.append(f"{module}.{base_name(layer)}" if module else base_name(layer))
    blocks = {".".join(c.split(".")[:i]) for c in candidates for i in range(1, c.count(".") + 1)}
    used: set[str] = set()
    for layer, candidate in zip(layers, candidates, strict=True):
        name, suffix = candidate, 1
        while name in used or name in blocks:
            suffix += 1
            name = f"{candidate}_{suffix}"
        used.add(name)
        layer.name = name


def _leaves(modules: list[str | None], layers: list[Layer]) -> set[str]:
    """Modules without sub-modules whose rows are all of one type (a module called twice included)."""
    types: dict[str, set[str]] = {}
    for module, layer in zip(modules, layers, strict=True):
        if module:
            types.setdefault(module, set()).add(layer.type)
    parents = {".".join(m.split(".")[:i]) for m in types for i in range(1, m.count(".") + 1)}
    return {m for m, kinds in types.items() if len(kinds) == 1 and m not in parents}
