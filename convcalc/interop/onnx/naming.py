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

A forward that calls nested modules directly (``self.layer1["0"].conv1(x)`` in the top module, as
``convcalc export`` writes) runs its own operations in the top scope (``x + identity``: scope ``''``)
and, under the TorchScript exporter, names each module scope by its last atom only (``relu1``,
``relu1_1``: torch's ``_unqualified_variable_name`` plus a counter). Such a parameter-free row,
placed between rows of one block, joins the innermost block its neighbours share, so the block is
not cut in two (which would rename everything after it ``layer1_2``); see :func:`_lift`.
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


def module_of(layer: Layer, node: Node | None, g: Graph) -> tuple[str | None, str]:
    """The module path that produced ``layer`` (``''``: the top module; None if unknown) and where
    it was read: ``weight``, ``dynamo``, ``torchscript`` or ``''``."""
    if layer.weight and g.is_param(layer.weight) and layer.weight.endswith(".weight"):
        return layer.weight[: -len(".weight")], "weight"
    if node is None:
        return None, ""
    found = dynamo_path(node)
    if found is not None:
        return found, "dynamo"
    found = torchscript_path(node.name)
    return found, "torchscript" if found is not None else ""


def base_name(layer: Layer) -> str:
    if layer.type == "unknown":
        return segment(str(layer.fields.get("op_type", "unknown")).lower(), "unknown")
    return layer.type


def assign(layers: list[Layer], nodes: dict[str, Node], g: Graph) -> None:
    """Set every layer's ``name`` to a unique dotted path."""
    found = [module_of(layer, nodes.get(layer.node), g) for layer in layers]
    modules: list[str | None] = [None if m is None else ".".join(segment(p, "m") for p in m.split(".")) if m else "" for m, _ in found]
    origins = [origin for _, origin in found]
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
        _lift(modules, origins, leaves)
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


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _within(path: str, block: str) -> bool:
    """``path`` is ``block`` or lies inside it."""
    return not block or path == block or path.startswith(block + ".")


def shared_prefix(a: list[str], b: list[str]) -> int:
    """How many leading parts two paths (split at '.') have in common."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


_COUNTER = re.compile(r"_[0-9]+$")


def _lift(modules: list[str | None], origins: list[str], leaves: set[str]) -> None:
    """Move parameter-free rows that the exporter scoped above their neighbours into the innermost
    block the rows around them share (in graph order, the forward's order).

    A row qualifies when its module is not read from a weight, and it is either an operation of a
    module's own forward (``x + identity``: not a leaf) or a leaf named from a TorchScript scope
    (whose name may have lost its path). Its neighbours are the previous row and the next row
    outside its own block; when both lie in a block B below the row's block, the row moves into B:
    an operation becomes B's own (``layer1.0.add``), a leaf ``B.<its name>`` without the exporter's
    counter (``relu1_1`` -> ``relu1`` when a ``relu1`` exists too). Rows whose neighbours share no
    block below theirs (between ``layer1`` and ``layer2``, or at the end), and leaves with a full
    path (dynamo scopes, weights), stay where they are.
    """
    homes = [None if m is None else _parent(m) if m in leaves else m for m in modules]
    names = {m for m in modules if m}
    for index, (module, origin, home) in enumerate(zip(modules, origins, homes, strict=True)):
        if module is None or home is None or index == 0 or origin == "weight":
            continue
        if module in leaves and origin != "torchscript":
            continue
        before = homes[index - 1]
        after = next((h for h in homes[index + 1 :] if h is not None and not _within(home, h)), None)
        if before is None or after is None:
            continue
        parts = before.split(".")
        block = ".".join(parts[: shared_prefix(parts, after.split("."))])
        if block == home or not _within(block, home):
            continue
        if module in leaves:
            own = module[len(home) + 1 :] if home else module
            plain = _COUNTER.sub("", own)
            own = plain if plain != own and (f"{home}.{plain}" if home else plain) in names else own
            modules[index] = f"{block}.{own}"
        else:
            modules[index] = block
        homes[index] = block
