"""ONNX import: a model file (or ``onnx.ModelProto``) -> a convcalc network spec.

``import_model`` loads and analyses the graph (:mod:`.graph`: shapes inferred, constants and shape
arithmetic folded), converts every node with the converter registered for its op type and opset
(:mod:`.registry`; converters by family in :mod:`.conv`, :mod:`.activations`, :mod:`.norms`,
:mod:`.pooling`, :mod:`.shape`, :mod:`.merges`, :mod:`.linear`), names the rows after the modules
that produced them (:mod:`.naming`), writes the spec (:mod:`.emit`) and evaluates it with convcalc,
checking every row's output shape against ONNX's inferred one (a difference is a converter bug
and reported as such, exit 3). The ``onnx`` package is needed only here (``pip install 'convcalc[onnx]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from convcalc.errors import ConvcalcError, SpecError

if TYPE_CHECKING:
    from convcalc.interop.onnx.registry import Layer
    from convcalc.network.result import NetResult


class ConverterBug(ConvcalcError):
    """The imported spec disagrees with ONNX's own shapes: a bug in a converter (exit 3)."""

    exit_code = 3


@dataclass
class Imported:
    """An imported model: the spec (dict and YAML text), its evaluation, and where each row came from."""

    spec: dict[str, object]
    text: str
    result: NetResult
    nodes: dict[str, str]  # row path -> ONNX node name
    notes: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # paths of the 'unknown' rows
    layers: list[Layer] = field(default_factory=list)


def import_model(
    source: object,
    *,
    in_shape: Sequence[int] | None = None,
    allow_unknown: bool = False,
    name: str | None = None,
    default_shape: Sequence[int] | None = None,
) -> Imported:
    """Import an ONNX model (path, bytes or ModelProto); see the module docstring.

    ``in_shape`` (channels first, no batch) replaces the model's input shape; ``default_shape``
    only fills its dynamic dimensions (``check --against`` passes the spec's input).
    """
    from convcalc.interop.onnx.convert import convert
    from convcalc.interop.onnx.emit import build_spec, strip_comments, to_yaml
    from convcalc.interop.onnx.graph import Graph, load_model

    model, src = load_model(source)
    g = Graph(model, src, in_shape, default_shape)
    converted = convert(g, allow_unknown)
    if not converted.layers:
        raise ConvcalcError(f"{src}: no layer depends on the input; there is nothing to import.")
    notes = list(converted.notes)
    folded = _folded_note(g, converted.layers)
    if folded:
        notes.insert(0, folded)
    unknown = [layer for layer in converted.layers if layer.type == "unknown"]
    if unknown:
        notes.insert(0, f"{len(unknown)} unknown layer(s) kept with --allow-unknown: their costs are NOT in the totals.")
    model_name = name or _model_name(model, src)
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    description = f"imported from {src} (ONNX opset {g.opset}{', ' + producer if producer else ''}) by convcalc import"
    spec = build_spec(converted.layers, converted.input, g.shape(g.input), g.batch, model_name, description, g.layout)
    text = to_yaml(spec, [*notes])
    plain = strip_comments(spec)
    assert isinstance(plain, dict)
    result = _evaluate(text, src, converted.layers, g)
    nodes = {layer.name: layer.node for layer in converted.layers}
    return Imported(plain, text, result, nodes, notes, [layer.name for layer in unknown], converted.layers)


def _model_name(model: object, source: str) -> str:
    graph_name = getattr(getattr(model, "graph", None), "name", "")
    if source.startswith("<"):
        return str(graph_name or "model")
    return source.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or str(graph_name or "model")


def _evaluate(text: str, source: str, layers: list[Layer], g: object) -> NetResult:
    """Evaluate the written spec and compare every row's output shape with ONNX shape inference."""
    from convcalc.interop.onnx.graph import Graph
    from convcalc.network.evaluate import evaluate_network
    from convcalc.network.result import NetworkError
    from convcalc.network.spec import parse_network
    from convcalc.parse.yaml import load_text

    assert isinstance(g, Graph)
    try:
        result = evaluate_network(parse_network(load_text(text, f"{source} (imported)"), f"{source} (imported)"))
    except NetworkError as err:  # a layer convcalc refuses as exported (e.g. pool padding > kernel // 2)
        node = next((layer.node for layer in layers if layer.name == err.layer), None)
        raise SpecError(
            f"{source}: convcalc cannot evaluate the imported layer: {err.message}"
            + (f" (ONNX node '{node}')" if node else ""),
            layer=err.layer,
            hint="The model uses a configuration convcalc does not model; if the model is valid, please report it.",
        ) from None
    rows = {row.name: row for row in result.rows}
    for layer in layers:
        row = rows.get(layer.name)
        expected = g.shapes.get(layer.output)
        if row is None or expected is None or any(d is None for d in expected):
            continue
        if tuple(expected[1:]) != row.output_shape:
            raise ConverterBug(
                f"layer '{layer.name}' (ONNX node '{layer.node}', {layer.op_type}) gives {_text(row.output_shape)} in convcalc"
                f" but {_text(expected[1:])} in ONNX shape inference. This is a bug in convcalc's ONNX import; please report it.",
            )
    return result


def _text(shape: Sequence[object]) -> str:
    return "x".join(str(s) for s in shape)


def _folded_note(g: object, layers: list[Layer]) -> str:
    """A note when BatchNorm looks folded into the convolutions (no BN node; biased convs whose
    bias is not the conv's own parameter, or the exporter's rewrite rule says so)."""
    from convcalc.interop.onnx.graph import Graph

    assert isinstance(g, Graph)
    if any(n.op_type == "BatchNormalization" for n in g.nodes):
        return ""
    by_node = {n.name: n for n in g.data_nodes}
    count = 0
    for layer in layers:
        node = by_node.get(layer.node)
        if node is None or node.op_type not in ("Conv", "ConvTranspose") or len(node.inputs) < 3 or not g.is_learned(node.inputs[2]):
            continue
        rule = node.meta.get("pkg.onnxscript.rewriter.rule_name", "")
        own = node.inputs[1].endswith(".weight") and node.inputs[2] == node.inputs[1][: -len("weight")] + "bias"
        if "BatchNorm" in rule or not own:
            count += 1
    if not count:
        return ""
    return (
        f"BatchNorm looks folded into {count} convolution(s) (biased convs without a BatchNormalization node):"
        " imported as exported, so their biases are counted and BatchNorm's parameters are not."
        " To keep BatchNorm, export with torch.onnx.export(..., dynamo=False, training=torch.onnx.TrainingMode.PRESERVE,"
        " do_constant_folding=False) or dynamo=True, optimize=False."
    )


__all__ = ["ConverterBug", "Imported", "import_model"]
