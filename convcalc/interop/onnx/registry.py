"""One converter per ONNX op type (and opset range), in the style of onnx2torch's ``@add_converter``.

A converter receives the node and the analysed graph and returns the layers it becomes
(:class:`Layer` rows), an alias (the node passes a tensor through), or nothing (the node was
absorbed by a neighbour's converter, e.g. the ``Sigmoid`` of ``x * sigmoid(x)``). Registering the
same op type for overlapping opset ranges is refused. Attributes that moved to inputs over time
(Pad, Resize, Split, ReduceMean, Squeeze/Unsqueeze, Clip) get one converter per opset range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from convcalc.interop.onnx.graph import Graph, Node

OPSET_MAX = 1_000


@dataclass
class Layer:
    """One row of the spec: a convcalc layer type (or merge), its fields, and the ONNX tensors
    it reads (``inputs``: one for a layer, two or more for ``add``/``concat``/``multiply``) and writes."""

    type: str
    fields: dict[str, object]
    inputs: list[str]
    output: str
    node: str = ""
    op_type: str = ""
    comment: str = ""
    weight: str | None = None  # initializer name of the weight: names the layer after its module
    name: str = ""  # the dotted path, set by naming.assign

    @property
    def merge(self) -> bool:
        return self.type in ("add", "concat", "multiply")


@dataclass(frozen=True)
class Alias:
    """The node's output is its input (Identity, a Reshape that changes nothing)."""

    source: str


Result = Union[list[Layer], Alias, None]
Converter = Callable[["Node", "Graph"], Result]


@dataclass(frozen=True)
class Entry:
    op_type: str
    since: int
    until: int
    convert: Converter


_REGISTRY: dict[str, list[Entry]] = {}


def converter(*op_types: str, since: int = 1, until: int = OPSET_MAX) -> Callable[[Converter], Converter]:
    """Register ``convert`` for ``op_types`` at opsets ``since <= opset <= until``; overlaps are refused."""

    def add(convert: Converter) -> Converter:
        for op_type in op_types:
            entries = _REGISTRY.setdefault(op_type, [])
            for other in entries:
                if since <= other.until and other.since <= until:
                    raise ValueError(
                        f"ONNX converter for {op_type} registered twice for opsets {max(since, other.since)}..{min(until, other.until)}"
                    )
            entries.append(Entry(op_type, since, until, convert))
        return convert

    return add


def lookup(op_type: str, opset: int) -> Converter | None:
    """The converter of ``op_type`` at ``opset``, or None."""
    for entry in _REGISTRY.get(op_type, ()):
        if entry.since <= opset <= entry.until:
            return entry.convert
    return None

