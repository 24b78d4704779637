"""An ONNX model, analysed once: nodes in topological order, every tensor's shape, constants folded.

* Loading refuses non-ONNX and truncated files, graphs with a cycle and tensors nothing produces
  (exit 2, never a traceback). External weight data is not read: only shapes matter.
* The input's dynamic dimensions are fixed by ``in_shape`` (``--in``; a dynamic batch becomes 1),
  then ``onnx.shape_inference.infer_shapes(data_prop=True)`` gives every intermediate shape.
* A node that does not depend on the graph input is *static*: its outputs are folded to values
  (``Constant``, ``Shape`` of a tensor of known shape, and anything computable from those with the
  ONNX reference evaluator, bounded by :data:`MAX_FOLD_ELEMENTS`), so the shape arithmetic that
  exporters emit never becomes a layer. Values derived from initializers stay "learnable".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convcalc.errors import LimitError, ShapeError, SpecError

INSTALL = "pip install 'convcalc[onnx]'"
MAX_FOLD_ELEMENTS = 1 << 22
"""Largest constant computation (input elements) folded at import time."""
MAX_NODES = 1_000_000
FullShape = tuple[int | None, ...]
SAME_SHAPE = frozenset(
    ["BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization", "LRN", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Gelu", "Elu", "Mish", "Softmax", "LogSoftmax", "Dropout", "Identity", "Cast"]
)
"""Ops whose output has their first input's shape (used where ONNX shape inference gives none)."""


def require_onnx() -> Any:
    """The ``onnx`` module, or a SpecError (exit 2) naming the command that installs it."""
    try:
        import onnx
    except ImportError:
        raise SpecError(
            "reading ONNX models needs the optional 'onnx' package, which is not installed.",
            hint=f"Install it with: {INSTALL}",
        ) from None
    return onnx


def load_model(source: object) -> tuple[Any, str]:
    """A ModelProto from a path, bytes or a ModelProto (copied: the caller's object is not changed)."""
    onnx = require_onnx()
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model, "<ModelProto>"
    if isinstance(source, (bytes, bytearray)):
        return _parse(onnx, bytes(source), "<bytes>"), "<bytes>"
    if not isinstance(source, (str, Path)):
        raise SpecError(f"expected a path to an .onnx file or an onnx.ModelProto, got {type(source).__name__}.")
    path = Path(source)
    if not path.is_file():
        raise SpecError(f"no such file: {str(path)!r}.", hint="Give the path of an .onnx model.")
    return _parse(onnx, path.read_bytes(), str(path)), str(path)


def _parse(onnx: Any, data: bytes, source: str) -> Any:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as err:  # protobuf's DecodeError and friends: not an ONNX file
        raise SpecError(
            f"{source} is not an ONNX model (it could not be decoded: {type(err).__name__}); the file may be truncated.",
            hint="Export the model again (torch.onnx.export) or check the path.",
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise SpecError(f"{source} is not an ONNX model with a graph (no nodes found).", hint="Check the path and the file.")
    return model


class Node:
    """One ONNX node: op type, name, inputs/outputs ('' = an absent optional input), attributes."""

    def __init__(self, proto: Any, index: int) -> None:
        from onnx import helper

        self.proto = proto
        self.index = index
        self.op_type: str = proto.op_type
        self.domain: str = proto.domain or ""
        self.name: str = proto.name or f"{proto.op_type}_{index}"
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        self.attrs: dict[str, object] = {}
        for attr in proto.attribute:
            value = helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            self.attrs[attr.name] = value
        self.meta: dict[str, str] = {p.key: p.value for p in proto.metadata_props}

    def attr(self, name: str, default: object = None) -> Any:
        return self.attrs.get(name, default)

    def __repr__(self) -> str:
        return f"{self.op_type} node '{self.name}'"


class Graph:
    """The analysed graph that converters query (shapes without the batch axis, constant values)."""

    def __init__(
        self, model: Any, source: str, in_shape: Sequence[int] | None = None, default_shape: Sequence[int] | None = None
    ) -> None:
        require_onnx()
        self.source = source
        graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        if len(graph.node) > MAX_NODES:
            raise LimitError(f"the graph has {len(graph.node):,} nodes (limit {MAX_NODES:,}).")
        self.initializers: dict[str, Any] = {t.name: t for t in graph.initializer}
        for sparse in graph.sparse_initializer:
            self.initializers[sparse.values.name] = sparse.values
        inputs = [i for i in graph.input if i.name not in self.initializers]
        if len(inputs) != 1:
            names = ", ".join(repr(i.name) for i in inputs) or "none"
            raise SpecError(
                f"{source}: a convcalc network has one input; this model has {len(inputs)} ({names}).",
                hint="Export the model with a single input tensor.",
            )
        self.input = inputs[0].name
        self.batch = self._fix_input(inputs[0], in_shape, default_shape)
        self.nodes = self._sorted([Node(p, i) for i, p in enumerate(graph.node)])
        self.outputs = [o.name for o in graph.output]
        self.producers: dict[str, Node] = {t: n for n in self.nodes for t in n.outputs if t}
        self.consumers: dict[str, list[Node]] = {}  # readers of the values (Shape, Size and CastLike's 'like' read less)
        for node in self.nodes:
            for index, name in enumerate(node.inputs):
                if name and not (node.op_type in ("Shape", "Size") or (node.op_type == "CastLike" and index == 1)):
                    self.consumers.setdefault(name, []).append(node)
        self.values: dict[str, Any] = {}
        self.absorbed: set[str] = set()
        self.layout = "channels_first"  # channels_last when the input is transposed NHWC -> NCHW first
        self.sequences: dict[str, tuple[str, int, list[int]]] = {}  # SplitToSequence output -> (source, axis, sizes)
        self._substituted: set[str] = set()
        self.shapes = self._infer(model)
        self._fold()
        for _ in range(3):  # shapes that depend on folded arithmetic: infer again with the values as constants
            missing = any(self.shapes.get(t) is None or None in self.shapes[t] for n in self.data_nodes for t in n.outputs if t)
            folded = {t: v for t, v in self.values.items() if t not in self.initializers and t in self.producers}
            if not missing or not folded or folded.keys() <= self._substituted:
                break
            self._substituted = set(folded)
            self.shapes = self._infer(self._with_constants(model, folded))
            self._fold()

    # -- input and order ------------------------------------------------------------------------

    def _fix_input(self, info: Any, in_shape: Sequence[int] | None, default_shape: Sequence[int] | None) -> int:
        dims = info.type.tensor_type.shape.dim
        if in_shape is None and default_shape is not None and len(default_shape) == len(dims) - 1:
            static = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims[1:]]
            in_shape = [s if s is not None else t for s, t in zip(static, default_shape, strict=True)]
        if not info.type.tensor_type.HasField("shape") or len(dims) < 2:
            if in_shape is None:
                raise ShapeError(
                    f"{self.source}: the input '{info.name}' has no fixed rank (N x C x ...).",
                    hint="Give the input shape with --in (channels first, no batch), e.g. --in 3x224x224.",
                )
            for _ in range(1 + len(in_shape) - len(dims)):
                dims.add()
        batch = dims[0].dim_value if dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 1
        if in_shape is not None:
            if len(in_shape) != len(dims) - 1:
                raise ShapeError(
                    f"--in has {len(in_shape)} sizes but the model's input '{info.name}' has {len(dims) - 1} besides the batch.",
                    hint="Give channels and spatial sizes, e.g. --in 3x224x224 for an N x 3 x H x W input.",
                )
            sizes = [batch, *in_shape]
        else:
            dynamic = [
                d.dim_param or f"dim {i}"
                for i, d in enumerate(dims)
                if i > 0 and not (d.HasField("dim_value") and d.dim_value > 0)
            ]
            if dynamic:
                raise ShapeError(
                    f"{self.source}: the input '{info.name}' has dynamic dimensions ({', '.join(dynamic)}).",
                    hint="Fix them with --in (channels first, no batch), e.g. --in 3x224x224.",
                )
            return batch
        for dim, size in zip(dims, sizes, strict=True):
            dim.Clear()
            dim.dim_value = int(size)
        return batch

    def _sorted(self, nodes: list[Node]) -> list[Node]:
        """Kahn's algorithm, stable in file order; a cycle or a dangling input is an error."""
        producer = {t: n for n in nodes for t in n.outputs if t}
        known = {self.input, "", *self.initializers}
        waiting: dict[int, int] = {}
        users: dict[int, list[Node]] = {}
        ready: list[Node] = []
        for node in nodes:
            deps = set()
            for name in node.inputs:
                if name in known:
                    continue
                if name not in producer:
                    raise SpecError(
                        f"{self.source}: {node} reads tensor '{name}', which no node, input or initializer produces.",
                        hint="The model is malformed; export it again.",
                    )
                deps.add(producer[name].index)
            waiting[node.index] = len(deps)
            for dep in deps:
                users.setdefault(dep, []).append(node)
            if not deps:
                ready.append(node)
        order: list[Node] = []
        import heapq

        heap = [(n.index, n) for n in ready]
        heapq.heapify(heap)
        while heap:
            _, node = heapq.heappop(heap)
            order.append(node)
            for user in users.get(node.index, ()):
                waiting[user.index] -= 1
                if waiting[user.index] == 0:
                    heapq.heappush(heap, (user.index, user))
        if len(order) != len(nodes):
            stuck = [n.name for n in nodes if waiting[n.index] > 0]
            shown = ", ".join(repr(s) for s in stuck[:5]) + (f" and {len(stuck) - 5} more" if len(stuck) > 5 else "")
            raise SpecError(
                f"{self.source}: the graph has a cycle through nodes {shown}.",
                hint="An ONNX graph must be acyclic; export the model again.",
            )
        return order

    # -- shapes and constants -------------------------------------------------------------------------

    def _infer(self, model: Any) -> dict[str, FullShape]:
        """Every tensor's shape (batch included) from ``onnx.shape_inference`` with data propagation."""
        onnx = require_onnx()
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ShapeError(
                f"{self.source}: ONNX shape inference failed: {first}.",
                hint="Check the model with onnx.checker.check_model, or fix the input shape with --in.",
            ) from None
        shapes: dict[str, FullShape] = {}
        for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            shape = _shape_of(info)
            if shape is not None:
                shapes[info.name] = shape
        for name, tensor in self.initializers.items():
            shapes[name] = tuple(int(d) for d in tensor.dims)
        for node in self.nodes:  # ops ONNX may not infer (functions such as GroupNormalization) keep the shape
            if node.op_type in SAME_SHAPE and node.inputs and node.outputs[0] not in shapes and node.inputs[0] in shapes:
                shapes[node.outputs[0]] = shapes[node.inputs[0]]
        return shapes

    def _with_constants(self, model: Any, folded: dict[str, Any]) -> Any:
        """A copy of ``model`` whose folded tensors are initializers (their nodes removed), for inference."""
        import numpy as np
        from onnx import ModelProto, numpy_helper

        copy = ModelProto()
        copy.CopyFrom(model)
        keep = [n for n in copy.graph.node if not (n.output and all(o in folded for o in n.output if o))]
        del copy.graph.node[:]
        copy.graph.node.extend(keep)
        for name, value in folded.items():
            copy.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return copy

    def _fold(self) -> None:
        self.static: set[str] = set(self.initializers)
        self.learnable: set[str] = set(self.initializers)
        self.params: set[str] = {name for name in self.initializers if not _generated(name)}
        self.data: set[str] = {self.input}
        self.data_nodes: list[Node] = []
        for node in self.nodes:
            standard = node.domain in ("", "ai.onnx")
            if node.op_type in ("Shape", "Size") and standard and self._shape_value(node):
                continue
            if node.op_type == "CastLike" and standard and node.inputs[0] not in self.data:
                # CastLike(v, like) reads only the type of 'like': a constant when v is one
                self.static.add(node.outputs[0])
                self._inherit(node, node.inputs[:1])
                value = self.value(node.inputs[0])
                if value is not None:
                    self.values[node.outputs[0]] = value
                continue
            if any(name in self.data for name in node.inputs if name):
                self.data.update(t for t in node.outputs if t)
                self.data_nodes.append(node)
                continue
            self.static.update(t for t in node.outputs if t)
            self._inherit(node, node.inputs)
            self._evaluate(node)

    def _inherit(self, node: Node, inputs: Sequence[str]) -> None:
        """Values computed from parameters are parameters (a transposed or reshaped weight)."""
        for marks in (self.learnable, self.params):
            if any(name in marks for name in inputs if name):
                marks.update(t for t in node.outputs if t)

    def _shape_value(self, node: Node) -> bool:
        import numpy as np

        shape = self.shapes.get(node.inputs[0])
        if shape is None or any(d is None for d in shape):
            return False
        if node.op_type == "Size":
            value = np.array(math.prod(d for d in shape if d is not None), dtype=np.int64)
        else:
            start, end = node.attr("start", 0), node.attr("end", None)
            value = np.array(shape[start:end], dtype=np.int64)
        self.static.add(node.outputs[0])
        self.values[node.outputs[0]] = value
        return True

    def _evaluate(self, node: Node) -> None:
        inputs = [self.value(name) if name else None for name in node.inputs]
        if any(v is None for v, name in zip(inputs, node.inputs, strict=True) if name):
            return
        if sum(int(v.size) for v in inputs if v is not None) > MAX_FOLD_ELEMENTS:
            return
        try:
            from onnx.reference import ReferenceEvaluator

            evaluator = ReferenceEvaluator(node.proto, opsets={"": self.opset})
            feeds = {name: v for name, v in zip(node.inputs, inputs, strict=True) if name}
            results = evaluator.run(None, feeds)
        except Exception:  # an op the reference evaluator lacks: the tensor stays static without a value
            return
        for name, value in zip(node.outputs, results, strict=False):
            if name:
                self.values[name] = value

    # -- queries for converters ----------------------------------------------------------------

    def value(self, name: str) -> Any:
        """The constant value of a static tensor (a NumPy array), or None."""
        if name in self.values:
            return self.values[name]
        tensor = self.initializers.get(name)
        if tensor is None:
            return None
        from onnx import numpy_helper

        try:
            value = numpy_helper.to_array(tensor)
        except Exception:  # external data not loaded
            return None
        self.values[name] = value
        return value

    def ints(self, name: str) -> list[int] | None:
        """A constant integer tensor as a list (None when absent or unknown)."""
        if not name:
            return None
        value = self.value(name)
        return None if value is None else [int(v) for v in value.reshape(-1).tolist()]

    def floats(self, name: str) -> list[float] | None:
        if not name:
            return None
        value = self.value(name)
        return None if value is None else [float(v) for v in value.reshape(-1).tolist()]

    def full_shape(self, name: str, node: Node | None = None) -> tuple[int, ...]:
        """The inferred shape with the batch axis; an error when ONNX could not infer it."""
        shape = self.shapes.get(name)
        if (shape is None or any(d is None for d in shape)) and name in self.static and self.value(name) is not None:
            shape = tuple(int(d) for d in self.value(name).shape)
        if shape is None or any(d is None for d in shape):
            raise ShapeError(
                f"ONNX shape inference could not determine the shape of tensor '{name}'"
                + (f" ({node})." if node else "."),
                hint="Fix the input shape with --in, or check the model with onnx.checker.",
            )
        return tuple(d for d in shape if d is not None)

    def shape(self, name: str, node: Node | None = None) -> tuple[int, ...]:
        """Channels-first shape of one sample (the batch axis dropped)."""
        return self.full_shape(name, node)[1:]

    def numel(self, name: str) -> int:
        return math.prod(self.full_shape(name))

    def is_data(self, name: str) -> bool:
        return name in self.data

    def is_learned(self, name: str) -> bool:
        """An initializer or a value computed from one (a parameter of the exported graph)."""
        return bool(name) and name in self.learnable

    def is_param(self, name: str) -> bool:
        """A module parameter (an initializer named like one, or a value computed from one), not exporter-made plumbing."""
        return bool(name) and name in self.params

    def producer(self, name: str) -> Node | None:
        return self.producers.get(name)

    def users(self, name: str) -> list[Node]:
        return self.consumers.get(name, [])

    def data_inputs(self, node: Node) -> list[str]:
        return [name for name in node.inputs if name and name in self.data]


def _generated(name: str) -> bool:
    """Names exporters give constants they make up (not module parameters)."""
    return name.startswith(("onnx::", "val_", "_val", "/")) or "Constant" in name


def _shape_of(info: Any) -> FullShape | None:
    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
