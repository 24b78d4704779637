"""The graph walker: every node that depends on the network input goes through its converter;
static nodes were folded by :class:`~convcalc.interop.onnx.graph.Graph`; unmappable nodes are
collected and reported together (or kept as ``unknown`` rows with ``allow_unknown``)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from convcalc.errors import ConvcalcError, SpecError
from convcalc.interop.onnx.common import Unmappable
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.naming import assign, shared_prefix
from convcalc.interop.onnx.registry import Alias, Layer, lookup

CONVERTER_MODULES = ("conv", "activations", "norms", "pooling", "shape", "merges", "linear")


def load_converters() -> None:
    """Import the converter modules (each registers its ops on import)."""
    for module in CONVERTER_MODULES:
        importlib.import_module(f"convcalc.interop.onnx.{module}")


@dataclass
class Converted:
    """The layers of a graph in spec order, with their final names."""

    layers: list[Layer]
    input: str
    notes: list[str] = field(default_factory=list)


def convert(g: Graph, allow_unknown: bool = False) -> Converted:
    load_converters()
    results: list[tuple[Node, list[Layer] | Alias | None]] = []
    unknown: list[tuple[Node, str]] = []
    for node in g.data_nodes:
        found = lookup(node.op_type, g.opset) if node.domain in ("", "ai.onnx") else None
        if found is None:
            domain = f" (domain '{node.domain}')" if node.domain not in ("", "ai.onnx") else ""
            unknown.append((node, f"no converter for {node.op_type}{domain} at opset {g.opset}"))
            results.append((node, None))
            continue
        try:
            results.append((node, found(node, g)))
        except Unmappable as err:
            unknown.append((node, err.message))
            results.append((node, None))
        except ConvcalcError as err:
            raise err.with_context(layer=node.name) from None
    unknown = [(n, why) for n, why in unknown if n.name not in g.absorbed]
    if unknown and not allow_unknown:
        raise SpecError(_unknown_message(unknown), hint=_UNKNOWN_HINT)
    bad = {n.name for n, _ in unknown}
    aliases: dict[str, str] = {}
    layers: list[Layer] = []
    for node, result in results:
        if node.name in g.absorbed:
            continue
        if isinstance(result, Alias):
            aliases[node.outputs[0]] = result.source
        elif node.name in bad:
            layers.extend(_unknown_rows(node, g))
        elif result:
            layers.extend(result)

    def resolve(name: str) -> str:
        seen = 0
        while name in aliases and seen < len(aliases):
            name, seen = aliases[name], seen + 1
        return name

    for layer in layers:
        layer.inputs = [resolve(name) for name in layer.inputs]
    nodes = {n.name: n for n in g.data_nodes}
    layers = _reachable(layers, [resolve(o) for o in g.outputs])
    assign(layers, nodes, g)
    ordered = order(layers)
    converted = Converted(ordered, g.input)
    output = resolve(g.outputs[0]) if g.outputs else ""
    if ordered and ordered[-1].output != output:
        converted.notes.append(
            f"the graph's first output '{g.outputs[0]}' is not the last row; the spec's output is '{ordered[-1].name}'."
        )
    return converted


_UNKNOWN_HINT = (
    "Run with --allow-unknown to keep them as shape-only rows (their costs reported as unknown, never as zero),"
    " or export the model without these operations; 'convcalc types' lists the layer types convcalc knows."
)


def _unknown_message(unknown: Sequence[tuple[Node, str]]) -> str:
    groups: dict[str, list[tuple[Node, str]]] = {}
    for node, why in unknown:
        groups.setdefault(node.op_type, []).append((node, why))
    parts = []
    for op_type, members in groups.items():
        names = ", ".join(repr(n.name) for n, _ in members[:5]) + (f" and {len(members) - 5} more" if len(members) > 5 else "")
        parts.append(f"{op_type} ({len(members)} node{'s' if len(members) > 1 else ''}: {names}): {members[0][1].rstrip('.')}")
    return f"{len(unknown)} node(s) cannot be mapped to convcalc layers: " + "; ".join(parts) + "."


def _unknown_rows(node: Node, g: Graph) -> list[Layer]:
    """Shape-only ``unknown`` rows (one per used output), reading the node's first data input."""
    rows = []
    for out in node.outputs:
        if out and (g.users(out) or out in g.outputs):
            fields: dict[str, object] = {"op_type": node.op_type, "output_shape": list(g.shape(out, node))}
            comment = f"UNKNOWN: ONNX {node.op_type} - shape from ONNX shape inference, costs not counted"
            rows.append(Layer("unknown", fields, [g.data_inputs(node)[0]], out, node.name, node.op_type, comment))
    return rows


def _reachable(layers: list[Layer], outputs: list[str]) -> list[Layer]:
    """Drop layers whose output nothing uses (dead code, e.g. a Split output only the exporter saw)."""
    producers = {layer.output: layer for layer in layers}
    keep: set[int] = set()
    stack = [producers[o] for o in outputs if o in producers]
    while stack:
        layer = stack.pop()
        if id(layer) in keep:
            continue
        keep.add(id(layer))
        stack.extend(producers[name] for name in layer.inputs if name in producers)
    return [layer for layer in layers if id(layer) in keep] or layers


def order(layers: list[Layer]) -> list[Layer]:
    """A topological order that keeps each module's layers together (so blocks nest cleanly):
    among the ready layers, the one sharing the longest module path with the last one wins,
    ties in graph order."""
    producer = {layer.output: i for i, layer in enumerate(layers)}
    deps = [{producer[n] for n in layer.inputs if n in producer} for layer in layers]
    users: dict[int, list[int]] = {}
    for i, needed in enumerate(deps):
        for dep in needed:
            users.setdefault(dep, []).append(i)
    waiting = [len(d) for d in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    scopes = [layer.name.split(".")[:-1] for layer in layers]
    out: list[Layer] = []
    current: list[str] = []
    while ready:
        best = max(ready, key=lambda i: (shared_prefix(scopes[i], current), -i))
        ready.remove(best)
        out.append(layers[best])
        current = scopes[best]
        for user in users.get(best, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    return out
