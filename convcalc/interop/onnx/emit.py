"""Write converted layers as a readable convcalc network spec.

Dotted names become nested named blocks (``layer1`` > ``0`` > ``conv1``), so every row keeps its
module path; a row reads the previous row's output unless it says ``input:``, and merges name
their inputs, so tensors are named only where the graph branches. A reference is the shortest
name that the spec's lookup (innermost block outwards) resolves to the right layer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from convcalc.interop.onnx.registry import Layer

INPUT = "input"


@dataclass
class Block:
    name: str
    path: str
    items: list[object] = field(default_factory=list)


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(s) for s in shape)


def build_spec(
    layers: list[Layer],
    graph_input: str,
    in_shape: tuple[int, ...],
    batch: int,
    name: str,
    description: str,
    layout: str = "channels_first",
) -> dict[str, object]:
    """The spec as a dict (``layers`` nested by module path); renames re-opened blocks ``x_2``."""
    root = Block("", "")
    stack = [root]
    closed: set[str] = set()
    known: dict[str, str] = {}  # path of every evaluated row / closed block -> its output tensor
    latest: dict[str, str] = {}  # tensor -> the last path known to produce it (a closed block over its last row)
    current = graph_input
    for layer in layers:
        parts = layer.name.split(".")
        scope = parts[:-1]
        depth = 0
        while depth < len(scope) and depth + 1 < len(stack) and stack[depth + 1].name == scope[depth]:
            depth += 1
        while len(stack) > depth + 1:
            block = stack.pop()
            closed.add(block.path)
            known[block.path] = current
            latest[current] = block.path
        for segment in scope[depth:]:
            parent = stack[-1]
            label, suffix = segment, 1
            while _join(parent.path, label) in closed or _join(parent.path, label) in known:
                suffix += 1
                label = f"{segment}_{suffix}"
            block = Block(label, _join(parent.path, label))
            parent.items.append(block)
            stack.append(block)
        layer.name = _join(stack[-1].path, parts[-1])
        item: dict[str, object] = {"type": layer.type, "name": parts[-1]}
        refs = [_ref(name, current, graph_input, stack, known, latest) for name in layer.inputs]
        if layer.merge:
            item["inputs"] = refs
        elif refs[0] != "previous":
            item["input"] = refs[0]
        item.update(layer.fields)
        if layer.comment:
            item["#"] = layer.comment
        stack[-1].items.append(item)
        known[layer.name] = layer.output
        latest[layer.output] = layer.name
        current = layer.output
    spec: dict[str, object] = {"name": name}
    if description:
        spec["description"] = description
    given: dict[str, object] = {"shape": shape_text(in_shape)}
    if batch != 1:
        given["batch"] = batch
    if layout != "channels_first":  # in_shape is then written as the model's input is: channels last
        given["layout"] = layout
    spec["input"] = given if len(given) > 1 else given["shape"]
    spec["layers"] = [_plain(item) for item in root.items]
    return spec


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _ref(tensor: str, current: str, graph_input: str, stack: list[Block], known: dict[str, str], latest: dict[str, str]) -> str:
    """The shortest reference to the layer producing ``tensor`` as seen from the innermost open block."""
    if tensor == current:
        return "previous"
    if tensor == graph_input:
        return INPUT
    target = latest[tensor]
    scope = stack[-1].path
    parts = target.split(".")
    for size in range(1, len(parts) + 1):
        candidate = ".".join(parts[-size:])
        if _resolve(candidate, scope, known) == target:
            return candidate
    return target


def _resolve(value: str, scope: str, known: dict[str, str]) -> str | None:
    prefix = scope
    while True:
        key = _join(prefix, value)
        if key in known:
            return key
        if not prefix:
            return None
        prefix = prefix.rpartition(".")[0]


def _plain(item: object) -> object:
    if isinstance(item, Block):
        return {"name": item.name, "layers": [_plain(i) for i in item.items]}
    return item


# ----------------------------------------------------------------------------------------------
# YAML text (one row per layer, flow mappings; comments carry the notes)
# ----------------------------------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_SHAPE = re.compile(r"^\d+(x\d+)+$")
_RESERVED_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "y", "n"}


def scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    if value is None:
        return "null"
    text = str(value)
    if _SHAPE.match(text) or (_PLAIN.match(text) and text.lower() not in _RESERVED_WORDS):
        return text
    return json.dumps(text, ensure_ascii=False)


def to_yaml(spec: dict[str, object], header: list[str]) -> str:
    lines = [f"# {line}" for line in header]
    for key, value in spec.items():
        if key == "layers":
            lines.append("layers:")
            _items(lines, value, "  ")  # type: ignore[arg-type]
        elif isinstance(value, dict):
            lines.append(f"{key}: {{" + ", ".join(f"{k}: {scalar(v)}" for k, v in value.items()) + "}")
        else:
            lines.append(f"{key}: {scalar(value)}")
    return "\n".join(lines) + "\n"


def _items(lines: list[str], items: list[dict[str, object]], indent: str) -> None:
    for item in items:
        if "layers" in item:
            lines.append(f"{indent}- name: {scalar(item['name'])}")
            lines.append(f"{indent}  layers:")
            _items(lines, item["layers"], indent + "    ")  # type: ignore[arg-type]
            continue
        comment = item.get("#")
        body = ", ".join(f"{k}: {scalar(v)}" for k, v in item.items() if k != "#")
        lines.append(f"{indent}- {{{body}}}" + (f"  # {comment}" if comment else ""))


def strip_comments(spec: object) -> object:
    """The spec without the ``#`` comment keys (what ``from_onnx`` returns and ``network`` reads)."""
    if isinstance(spec, dict):
        return {k: strip_comments(v) for k, v in spec.items() if k != "#"}
    if isinstance(spec, list):
        return [strip_comments(v) for v in spec]
    return spec
