"""Helpers the converters share: reading attributes the ONNX way, writing fields the convcalc way."""

from __future__ import annotations

from collections.abc import Sequence

from convcalc.errors import SpecError
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.registry import Layer


class Unmappable(SpecError):
    """A node convcalc cannot express (collected for one error listing every such node)."""


def compact(values: Sequence[int]) -> object:
    """``[3, 3]`` -> ``3``; ``[1, 7]`` stays a list (one value per axis)."""
    items = [int(v) for v in values]
    return items[0] if len(set(items)) == 1 else items


def pairs(before: Sequence[int], after: Sequence[int]) -> object:
    """Padding as convcalc writes it: an int, per axis, or ``[[before, after], ...]``."""
    if list(before) == list(after):
        return compact(before)
    return [[int(b), int(a)] for b, a in zip(before, after, strict=True)]


def spatial_rank(g: Graph, name: str, node: Node) -> int:
    return len(g.shape(name, node)) - 1


def onnx_pads(node: Node, rank: int) -> tuple[list[int], list[int]]:
    """``pads`` = [x1_begin, x2_begin, ..., x1_end, x2_end, ...] -> (before, after)."""
    pads = [int(p) for p in (node.attr("pads") or [0] * (2 * rank))]
    return pads[:rank], pads[rank:]


def same_pads(mode: str, sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> tuple[list[int], list[int]]:
    """ONNX ``auto_pad`` SAME_UPPER/SAME_LOWER: out = ceil(i/s), total = max((out-1)·s + d·(k-1) + 1 - i, 0);
    the odd unit goes at the end (UPPER) or the beginning (LOWER). ONNX operators spec, Conv."""
    before, after = [], []
    for i, k, s, d in zip(sizes, kernel, stride, dilation, strict=True):
        out = -(-i // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - i, 0)
        small, large = total // 2, total - total // 2
        before.append(small if mode == "SAME_UPPER" else large)
        after.append(large if mode == "SAME_UPPER" else small)
    return before, after


def window_padding(node: Node, g: Graph, rank: int, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> object:
    """The padding field of a windowed op (Conv, pools) from ``auto_pad`` or ``pads``."""
    auto = str(node.attr("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        sizes = g.shape(node.inputs[0], node)[1:]
        return pairs(*same_pads(auto, sizes, kernel, stride, dilation))
    if auto == "VALID":
        return 0
    return pairs(*onnx_pads(node, rank))


def ints_attr(node: Node, name: str, rank: int, default: int) -> list[int]:
    value = node.attr(name)
    return [int(v) for v in value] if value else [default] * rank


def put(fields: dict[str, object], name: str, value: object, default: object) -> None:
    """Write a field only when it differs from the convcalc default (readable rows)."""
    if value != default:
        fields[name] = value


def single(
    node: Node, g: Graph, type_name: str, fields: dict[str, object] | None = None, comment: str = "", weight: str | None = None
) -> list[Layer]:
    """The usual result: one layer reading the node's first data input, writing its first output
    (``weight``: the input holding the layer's weight, which names the layer after its module)."""
    inputs = g.data_inputs(node)
    if not inputs:
        raise Unmappable(f"{node} has no input computed from the network input.")
    return [Layer(type_name, fields or {}, [inputs[0]], node.outputs[0], node.name, node.op_type, comment, weight)]


def axis_of(node: Node, g: Graph, axis: int, name: str) -> int:
    """A (possibly negative) axis normalised against the input's full rank (batch = 0)."""
    rank = len(g.full_shape(name, node))
    return axis + rank if axis < 0 else axis


def only_user(g: Graph, name: str, *op_types: str) -> Node | None:
    """The one node reading ``name`` when it is of one of ``op_types`` and ``name`` is not a graph
    output (so a pattern may absorb the tensor), else None."""
    users = g.users(name)
    return users[0] if len(users) == 1 and users[0].op_type in op_types and name not in g.outputs else None


def scalar_operand(node: Node, g: Graph, data: str, position: int | None = None) -> float | None:
    """The value of the one-element constant that binary ``node`` combines with ``data`` (at input
    ``position`` when the order matters, as for Div and Pow), or None."""
    if len(node.inputs) != 2 or data not in node.inputs or (position is not None and node.inputs[position] != data):
        return None
    other = node.inputs[1] if node.inputs[0] == data else node.inputs[0]
    values = None if g.is_data(other) else g.floats(other)
    return values[0] if values is not None and len(values) == 1 else None


def near(value: float | None, target: float) -> bool:
    """``value`` is ``target`` up to float32 rounding of the exporter's constant."""
    return value is not None and abs(value - target) <= 1e-5 * abs(target)
