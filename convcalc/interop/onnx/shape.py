"""Tensor plumbing: Identity, Dropout, Flatten/Reshape/Squeeze/Unsqueeze (where they flatten or
unflatten one axis), ShuffleNet's channel shuffle (Reshape, Transpose, Reshape), Split and Slice (channel split or spatial crop), Pad, Resize/Upsample, DepthToSpace/SpaceToDepth.

Shapes come from ONNX shape inference, so a Reshape is understood from what it produces, whatever
shape arithmetic the exporter wrote to compute its target.
"""

from __future__ import annotations

import math
from fractions import Fraction

from convcalc.interop.onnx.common import Unmappable, axis_of, only_user, single, spatial_rank
from convcalc.interop.onnx.graph import Graph, Node
from convcalc.interop.onnx.norms import group_norm_pattern
from convcalc.interop.onnx.registry import Alias, Layer, Result, converter
from convcalc.primitives.reshape import chunk_bounds

INT_MAX = 1 << 62


@converter("Identity", "Cast")
def identity(node: Node, g: Graph) -> Result:
    """Identity, and Cast (a dtype changes no shape or count): the tensor passes through."""
    return Alias(node.inputs[0])


@converter("Transpose")
def transpose(node: Node, g: Graph) -> Result:
    """The NHWC -> NCHW transpose of a channels-last model's input (TensorFlow/Keras exports):
    the spec's input becomes ``{shape: HxWxC, layout: channels_last}`` and the transpose disappears;
    the middle of a channel shuffle (:func:`channel_shuffle_pattern`). Other permutations: refused."""
    rank = len(g.full_shape(node.inputs[0], node))
    perm = [int(p) for p in node.attr("perm") or []]
    if node.inputs[0] == g.input and perm == [0, rank - 1, *range(1, rank - 1)] and len(g.users(g.input)) == 1:
        g.layout = "channels_last"
        return Alias(node.inputs[0])
    shuffle = channel_shuffle_pattern(node, g, perm)
    if shuffle is not None:
        return shuffle
    raise Unmappable(
        f"{node} permutes axes {perm}; convcalc keeps channels first (it understands a channels-last input"
        " and ShuffleNet's channel shuffle: Reshape to N x g x C/g x ..., Transpose of axes 1 and 2, Reshape back)."
    )


def channel_shuffle_pattern(node: Node, g: Graph, perm: list[int]) -> list[Layer] | None:
    """ShuffleNet's ``x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)`` as exported:
    Reshape -> Transpose(perm 0, 2, 1, ...) [-> Identity: the dynamo exporter's ``contiguous``] ->
    Reshape back to the input's shape -> one ``channel_shuffle`` row with ``groups = g`` (the Reshapes absorbed)."""
    split = g.producer(node.inputs[0])
    if split is None or split.op_type != "Reshape" or only_user(g, split.outputs[0], "Transpose") is not node:
        return None
    source = split.inputs[0]
    before, grouped = g.full_shape(source, split), g.full_shape(split.outputs[0], split)
    shape_ok = len(grouped) == len(before) + 1 >= 4 and grouped[0] == before[0] and grouped[3:] == before[2:]
    if not shape_ok or grouped[1] * grouped[2] != before[1] or grouped[1] < 2 or perm != [0, 2, 1, *range(3, len(grouped))]:
        return None
    current, passed = node.outputs[0], []
    while (step := only_user(g, current, "Identity")) is not None:
        passed.append(step)
        current = step.outputs[0]
    back = only_user(g, current, "Reshape")
    if back is None or g.full_shape(back.outputs[0], back) != before:
        return None
    g.absorbed.update(n.name for n in [split, *passed, back])
    return [Layer("channel_shuffle", {"groups": grouped[1]}, [source], back.outputs[0], node.name, "Reshape+Transpose+Reshape")]


@converter("Dropout")
def dropout(node: Node, g: Graph) -> Result:
    ratio = g.floats(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    p = ratio[0] if ratio else float(node.attr("ratio", 0.5))
    fields: dict[str, object] = {} if abs(p - 0.5) < 1e-12 else {"p": round(p, 8)}
    return single(node, g, "dropout", fields)


@converter("Flatten", "Reshape", "Squeeze", "Unsqueeze")
def reshape(node: Node, g: Graph) -> Result:
    """A reshape that merges consecutive axes -> ``flatten`` (start_dim..end_dim); that splits one
    axis -> ``unflatten`` (dim, unflattened_size: the ``view(N, C, 1, 1)`` of a squeeze-and-excitation
    gate of linear layers, an Unsqueeze); none -> alias.
    PyTorch's TorchScript GroupNorm (Reshape, InstanceNormalization, Reshape, Mul, Add) -> ``groupnorm``."""
    grouped = group_norm_pattern(node, g)
    if grouped is not None:
        return grouped
    source = node.inputs[0]
    before, after = g.full_shape(source, node), g.full_shape(node.outputs[0], node)
    if before == after:
        return Alias(source)
    found = flatten_dims(before, after)
    if found is None:
        split = unflatten_dims(before, after)
        if split is None:
            raise Unmappable(
                f"{node} reshapes {'x'.join(map(str, before))} to {'x'.join(map(str, after))}, which is neither a flatten"
                " nor an unflatten (convcalc keeps the batch axis and merges consecutive axes or splits one axis only)."
            )
        return single(node, g, "unflatten", {"dim": split[0], "unflattened_size": split[1]})
    start, end = found
    fields: dict[str, object] = {}
    if start != 1:
        fields["start_dim"] = start
    if end != len(before) - 1:
        fields["end_dim"] = end
    return single(node, g, "flatten", fields)


def flatten_dims(before: tuple[int, ...], after: tuple[int, ...]) -> tuple[int, int] | None:
    """(start, end) with ``after = before[:start] + (prod(before[start:end+1]),) + before[end+1:]``,
    batch (dim 0) untouched; size-1 axes dropped by a Squeeze count as merged into a neighbour."""
    if not after or before[0] != after[0]:
        return None
    for start in range(1, len(before)):
        for end in range(start, len(before)):
            merged = (*before[:start], math.prod(before[start : end + 1]), *before[end + 1 :])
            if merged == after:
                return start, end
    return None


def unflatten_dims(before: tuple[int, ...], after: tuple[int, ...]) -> tuple[int, list[int]] | None:
    """(dim, sizes) with ``after = before[:dim] + sizes + before[dim+1:]`` and ``prod(sizes) = before[dim]``,
    batch (dim 0) untouched; the first such dim (``N x C -> N x C x 1 x 1`` splits dim 1 into ``C, 1, 1``)."""
    count = len(after) - len(before) + 1
    if count < 2 or before[0] != after[0]:
        return None
    for dim in range(1, len(before)):
        sizes = after[dim : dim + count]
        if after[:dim] == before[:dim] and after[dim + count :] == before[dim + 1 :] and math.prod(sizes) == before[dim]:
            return dim, list(sizes)
    return None


def _split_sizes(node: Node, g: Graph, total: int) -> list[int]:
    if g.opset < 13:
        sizes = node.attr("split")
    else:
        name = node.inputs[1] if len(node.inputs) > 1 else ""
        sizes = g.ints(name) if name else None
        if name and sizes is None:
            raise Unmappable(f"{node}: its split sizes are not constants.")
    if sizes:
        return [int(s) for s in sizes]
    count = int(node.attr("num_outputs", len(node.outputs)))
    chunk = -(-total // count)
    return [min(chunk, total - i * chunk) for i in range(count)]


@converter("Split")
def split(node: Node, g: Graph) -> Result:
    """Split along the channels -> one ``chunk`` (torch.chunk sizes) or ``channel_slice`` row per
    output; along a spatial axis -> ``crop{r}d`` rows."""
    source = node.inputs[0]
    full = g.full_shape(source, node)
    axis = axis_of(node, g, int(node.attr("axis", 0)), source)
    sizes = _split_sizes(node, g, full[axis])
    if sum(sizes) != full[axis]:
        raise Unmappable(f"{node}: split sizes {sizes} do not add up to {full[axis]}.")
    layers: list[Layer] = []
    start = 0
    for index, (size, out) in enumerate(zip(sizes, node.outputs, strict=True)):
        if out and (g.users(out) or out in g.outputs):
            layers.append(_part(node, g, source, full, axis, start, start + size, out, (index, len(sizes))))
        start += size
    return layers


def _part(
    node: Node, g: Graph, source: str, full: tuple[int, ...], axis: int, start: int, end: int, out: str, chunk: tuple[int, int] | None
) -> Layer:
    if axis == 1:
        channels = full[1]
        if chunk is not None and chunk_bounds(channels, chunk[1], chunk[0]) == (start, end):
            fields: dict[str, object] = {"chunks": chunk[1], "index": chunk[0]}
            return Layer("chunk", fields, [source], out, node.name, node.op_type)
        fields = {"start": start} if end == channels else {"start": start, "end": end}
        return Layer("channel_slice", fields, [source], out, node.name, node.op_type)
    if axis == 0:
        raise Unmappable(f"{node} splits or slices the batch axis.")
    rank = len(full) - 2
    crops = [[0, 0] for _ in range(rank)]
    crops[axis - 2] = [start, full[axis] - end]
    return Layer(f"crop{rank}d", {"cropping": crops}, [source], out, node.name, node.op_type)


@converter("SplitToSequence", since=11)
def split_to_sequence(node: Node, g: Graph) -> Result:
    """Remembered, not a row: each ``SequenceAt`` picking a piece becomes one (the dynamo exporter's torch.split)."""
    source = node.inputs[0]
    full = g.full_shape(source, node)
    axis = axis_of(node, g, int(node.attr("axis", 0)), source)
    split = g.ints(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    if split is None or not int(node.attr("keepdims", 1)):
        raise Unmappable(f"{node} splits without constant sizes.")
    value = g.value(node.inputs[1])
    if value is not None and value.ndim == 0:  # one size: pieces of that size, the last one smaller
        size = split[0]
        split = [min(size, full[axis] - start) for start in range(0, full[axis], size)]
    g.sequences[node.outputs[0]] = (source, axis, split)
    return []


@converter("SequenceAt", since=11)
def sequence_at(node: Node, g: Graph) -> Result:
    found = g.sequences.get(node.inputs[0])
    position = g.ints(node.inputs[1])
    if found is None or position is None:
        raise Unmappable(f"{node} reads a sequence convcalc does not know.")
    source, axis, sizes = found
    index = position[0] % len(sizes)
    start = sum(sizes[:index])
    full = g.full_shape(source, node)
    return [_part(node, g, source, full, axis, start, start + sizes[index], node.outputs[0], (index, len(sizes)))]


def _slice_params(node: Node, g: Graph) -> tuple[list[int], list[int], list[int] | None, list[int] | None]:
    if g.opset < 10:
        return list(node.attr("starts")), list(node.attr("ends")), node.attr("axes"), None
    values = []
    for index in range(1, 5):
        name = node.inputs[index] if len(node.inputs) > index else ""
        found = g.ints(name) if name else None
        if name and found is None:
            raise Unmappable(f"{node}: its bounds are not constants.")
        values.append(found)
    starts, ends, axes, steps = values
    if starts is None or ends is None:
        raise Unmappable(f"{node} has no starts/ends.")
    return starts, ends, axes, steps


@converter("Slice")
def slice_(node: Node, g: Graph) -> Result:
    """Slice along the channels -> ``channel_slice``; along spatial axes (step 1) -> ``crop{r}d``."""
    source = node.inputs[0]
    full = g.full_shape(source, node)
    starts, ends, axes, steps = _slice_params(node, g)
    axes = [a + len(full) if a < 0 else a for a in (axes or list(range(len(starts))))]
    if steps and any(s != 1 for s in steps):
        raise Unmappable(f"{node} slices with steps {steps}; convcalc maps step 1 only.")
    bounds = {}
    for axis, start, end in zip(axes, starts, ends, strict=True):
        size = full[axis]
        lo = max(0, min(size, start + size if start < 0 else start))
        hi = max(0, min(size, end + size if end < 0 else end))
        if (lo, hi) != (0, size):
            bounds[axis] = (lo, hi)
    if not bounds:
        return Alias(source)
    if 0 in bounds:
        raise Unmappable(f"{node} slices the batch axis.")
    if 1 in bounds:
        if len(bounds) > 1:
            raise Unmappable(f"{node} slices channels and space at once; convcalc needs two rows (channel_slice, crop).")
        return [_part(node, g, source, full, 1, *bounds[1], node.outputs[0], None)]
    rank = len(full) - 2
    crops = [[bounds.get(a, (0, full[a]))[0], full[a] - bounds.get(a, (0, full[a]))[1]] for a in range(2, len(full))]
    return [Layer(f"crop{rank}d", {"cropping": crops}, [source], node.outputs[0], node.name, node.op_type)]


def _pad_amounts(node: Node, g: Graph, rank: int) -> list[int]:
    if g.opset < 11:
        return [int(p) for p in node.attr("pads")]
    pads = g.ints(node.inputs[1])
    if pads is None:
        raise Unmappable(f"{node}: its pads are not constants.")
    axes_name = node.inputs[3] if len(node.inputs) > 3 else ""
    if axes_name:
        axes = g.ints(axes_name)
        if axes is None:
            raise Unmappable(f"{node}: its axes are not constants.")
        full = [0] * (2 * rank)
        for i, given in enumerate(axes):
            axis = given + rank if given < 0 else given
            full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
        return full
    return pads


@converter("Pad")
def pad(node: Node, g: Graph) -> Result:
    """Pad -> ``zeropad{r}d`` (negative amounts: ``crop{r}d``). Reflect/edge padding moves the same
    elements, so it is written as zero padding with a comment."""
    source = node.inputs[0]
    full = g.full_shape(source, node)
    amounts = _pad_amounts(node, g, len(full))
    rank = len(full)
    if any(amounts[a] or amounts[a + rank] for a in (0, 1)):
        raise Unmappable(f"{node} pads the batch or channel axis.")
    pairs = [[amounts[a], amounts[a + rank]] for a in range(2, rank)]
    mode = str(node.attr("mode", "constant"))
    comment = "" if mode == "constant" else f"ONNX Pad mode={mode}: same shape and data movement as zero padding"
    flat = [v for p in pairs for v in p]
    if all(v >= 0 for v in flat):
        return [Layer(f"zeropad{rank - 2}d", {"padding": pairs}, [source], node.outputs[0], node.name, node.op_type, comment)]
    if all(v <= 0 for v in flat):
        crops = [[-a, -b] for a, b in pairs]
        return [Layer(f"crop{rank - 2}d", {"cropping": crops}, [source], node.outputs[0], node.name, node.op_type)]
    raise Unmappable(f"{node} pads some sides and crops others.")


MODES = {"nearest": "nearest", "linear": "linear", "bilinear": "linear"}
LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


@converter("Resize", "Upsample")
def resize(node: Node, g: Graph) -> Result:
    """Resize/Upsample -> ``upsample``: scale_factor from constant scales (exact fractions), else the
    inferred output size; linear -> (bi/tri)linear; align_corners from the coordinate transform."""
    source = node.inputs[0]
    before, after = g.full_shape(source, node), g.full_shape(node.outputs[0], node)
    if before[:2] != after[:2]:
        raise Unmappable(f"{node} resizes the batch or channel axis.")
    rank = len(before) - 2
    mode = str(node.attr("mode", "nearest"))
    if mode not in MODES:
        raise Unmappable(f"{node} uses mode '{mode}'; convcalc's upsample has nearest and (bi/tri)linear.")
    fields: dict[str, object] = {}
    scales = _scales(node, g)
    if scales is not None and len(scales) == len(before) and all(s > 0 for s in scales):
        ratios = [Fraction(str(s)).limit_denominator(1000) for s in scales[2:]]
        if all(math.floor(i * r) == o for i, r, o in zip(before[2:], ratios, after[2:], strict=True)):
            values = [int(r) if r.denominator == 1 else float(r) for r in ratios]
            fields["scale_factor"] = values[0] if len(set(values)) == 1 else values
    if not fields:
        sizes = list(after[2:])
        fields["size"] = sizes[0] if len(set(sizes)) == 1 else sizes
    if mode != "nearest":
        fields["mode"] = LINEAR[rank]
        if str(node.attr("coordinate_transformation_mode", "half_pixel")) == "align_corners":
            fields["align_corners"] = True
    return single(node, g, "upsample", fields)


def _scales(node: Node, g: Graph) -> list[float] | None:
    if node.op_type == "Upsample" and g.opset < 9:
        value = node.attr("scales")
        return [float(v) for v in value] if value else None
    index = 1 if node.op_type == "Upsample" or g.opset < 11 else 2
    name = node.inputs[index] if len(node.inputs) > index else ""
    return g.floats(name) if name else None


@converter("DepthToSpace", "SpaceToDepth")
def depth_to_space(node: Node, g: Graph) -> Result:
    """DepthToSpace (DCR or CRD: same shapes and counts) -> ``pixel_shuffle``; SpaceToDepth -> ``pixel_unshuffle``."""
    if spatial_rank(g, node.inputs[0], node) != 2:
        raise Unmappable(f"{node} is not 2D.")
    factor = int(node.attr("blocksize"))
    if node.op_type == "DepthToSpace":
        return single(node, g, "pixel_shuffle", {"upscale_factor": factor})
    return single(node, g, "pixel_unshuffle", {"downscale_factor": factor})
