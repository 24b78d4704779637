"""The Python API: convcalc in notebooks and test suites.

>>> import convcalc
>>> conv = convcalc.layer("separable2d", in_shape=(3, 7, 7), out_channels=128, kernel_size=3, bias=False)
>>> conv.output_shape, conv.params, conv.macs
((128, 5, 5), 411, 10275)
>>> net = convcalc.network({"input": "3x32x32", "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3}]})
>>> net.params, net.output_shape
(224, (8, 30, 30))

``convcalc.from_onnx(path_or_model_proto)`` and ``convcalc.from_torch(module, example_input)``
return a network spec as a dict, ready for :func:`network`. Results expose the numbers of the
CLI's JSON output as attributes, and ``.to_dict()`` *is* that JSON output (``convcalc layer ...
--format json`` / ``convcalc net ... --format json``). Errors raise :class:`convcalc.errors.ConvcalcError`
subclasses (``SpecError``, ``ShapeError``, ``LimitError``) with the CLI's messages.

Conventions (the CLI's): MACs count the multiply-accumulates of convolutions and linear layers,
FLOPs = 2 x MACs; transposed convolutions per input position; parameters as PyTorch counts them;
``batch`` scales MACs, FLOPs and activations, never parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convcalc.parse.values import format_shape
from convcalc.report import CostFields, Costs, costs, layer_to_dict, sum_costs

if TYPE_CHECKING:
    from convcalc.engine import LayerResult
    from convcalc.network.result import LayerRow, NetResult


def _shape_text(shape: str | Sequence[int]) -> str:
    return shape if isinstance(shape, str) else "x".join(str(int(s)) for s in shape)


class _Report(CostFields):
    """What a layer's and a network's report share: the result's shapes, costs as :class:`CostFields`."""

    result: LayerResult | NetResult

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.result.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.result.output_shape


class LayerReport(_Report):
    """One evaluated layer: shapes, parameters, MACs, FLOPs, receptive field and stages.

    ``params``, ``macs``, ``flops``, ... are those of :attr:`costs`: parameters (weights + biases,
    as ``sum(p.numel() for p in module.parameters())``) once, MACs and FLOPs (``2 x macs``) for the
    whole batch.
    """

    result: LayerResult

    def __init__(self, result: LayerResult, batch: int = 1) -> None:
        self.result = result
        self.batch = batch

    @property
    def type(self) -> str:
        return self.result.spec.kind

    @property
    def costs(self) -> Costs:
        """Parameters once, MACs and the other counts for the whole batch (:class:`convcalc.report.Costs`)."""
        return costs(self.result.stages, self.batch)

    def to_dict(self) -> dict[str, object]:
        """Exactly the JSON of ``convcalc layer TYPE ... --format json``."""
        return layer_to_dict(self.result, self.batch)

    def __repr__(self) -> str:
        return (
            f"<LayerReport {self.type} {format_shape(self.input_shape)} -> {format_shape(self.output_shape)}:"
            f" params={self.params:,} macs={self.macs:,}{f' (batch {self.batch})' if self.batch != 1 else ''}>"
        )


class NetworkReport(_Report):
    """An evaluated network: per-layer rows, totals, output shape, receptive fields.

    ``params``, ``macs``, ``flops``, ... are those of :attr:`costs` (for the whole batch).
    """

    result: NetResult

    def __init__(self, result: NetResult) -> None:
        self.result = result

    @property
    def name(self) -> str:
        return self.result.name

    @property
    def batch(self) -> int:
        return self.result.batch

    @property
    def costs(self) -> Costs:
        """The network totals, parameters once, MACs (of convolutions and linear layers) and the
        other counts for the whole batch (:class:`convcalc.report.Costs`)."""
        return sum_costs([self.result.totals().costs], self.batch)

    @property
    def layers(self) -> list[LayerRow]:
        """Every layer in order (``name``, ``type``, ``output_shape``, ``params``, ``macs`` per sample, ...)."""
        return list(self.result.rows)

    def layer(self, name: str) -> LayerRow:
        """The row called ``name`` (``layer1.0.conv1``); KeyError if there is none."""
        for row in self.result.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self, depth: int | None = None) -> dict[str, object]:
        """Exactly the JSON of ``convcalc net SPEC --format json`` (``depth`` folds blocks)."""
        from convcalc.render.network import net_to_dict

        return net_to_dict(self.result, depth)

    def table(self, depth: int | None = None) -> str:
        """The table ``convcalc net`` prints."""
        from convcalc.render.network import render_network

        return render_network(self.result, "table", depth)

    def __repr__(self) -> str:
        return (
            f"<NetworkReport {self.name!r} {format_shape(self.input_shape)} -> {format_shape(self.output_shape)}:"
            f" {len(self.result.rows)} layers, params={self.params:,} macs={self.macs:,}"
            f"{f' (batch {self.batch})' if self.batch != 1 else ''}>"
        )


def layer(type: str, in_shape: str | Sequence[int], *, batch: int = 1, **fields: object) -> LayerReport:
    """Evaluate one layer, e.g. ``layer("conv2d", (3, 224, 224), out_channels=64, kernel_size=7, stride=2, padding=3)``.

    ``in_shape`` is channels first without the batch (``(C, L)``, ``(C, H, W)``, ``(C, D, H, W)`` or
    ``"3x224x224"``); ``fields`` are the type's fields (``convcalc types TYPE`` lists them).
    """
    from convcalc.engine import evaluate_layer
    from convcalc.parse.layer import build_request

    request = build_request(type, fields, shape_text=_shape_text(in_shape), batch=batch)
    return LayerReport(evaluate_layer(request.spec, request.shape), request.batch)


def network(
    spec: str | Path | Mapping[str, object], *, in_shape: str | Sequence[int] | None = None, batch: int | None = None
) -> NetworkReport:
    """Evaluate a network spec: a YAML file path or a dict in the same format (``specs/README.md``).

    ``in_shape`` replaces the spec's input shape (channels first, no batch), ``batch`` its batch.
    """
    from convcalc.network.evaluate import evaluate_network
    from convcalc.network.result import NetworkError
    from convcalc.network.spec import parse_network
    from convcalc.parse.yaml import load_file

    if isinstance(spec, Mapping):
        data: object = dict(spec)
        source = str(spec.get("name") or "<dict>")
    else:
        data, source = load_file(str(spec))
    if in_shape is not None and isinstance(data, Mapping):
        data = dict(data)
        given = data.get("input")
        shape = _shape_text(in_shape)
        data["input"] = {**given, "shape": shape} if isinstance(given, Mapping) else shape
    try:
        return NetworkReport(evaluate_network(parse_network(data, source), batch=batch))
    except NetworkError as err:  # the cause (ShapeError, SpecError, LimitError), located at the layer
        raise err.cause from None


def from_onnx(
    model: str | Path | Any, *, in_shape: str | Sequence[int] | None = None, allow_unknown: bool = False
) -> dict[str, object]:
    """Import an ONNX model (a path, or an ``onnx.ModelProto``) as a network spec dict.

    The same import as ``convcalc import MODEL.onnx``: one row per layer named after the module
    that produced it, checked against ONNX shape inference. ``in_shape`` fixes dynamic dimensions;
    ``allow_unknown`` keeps ops convcalc cannot map as ``unknown`` rows (shape only, costs unknown).
    Needs the ``onnx`` package (``pip install 'convcalc[onnx]'``).
    """
    from convcalc.interop.onnx import import_model
    from convcalc.parse.values import parse_axes

    shape = None if in_shape is None else parse_axes(_shape_text(in_shape), "in_shape")
    source = str(model) if isinstance(model, Path) else model
    return import_model(source, in_shape=shape, allow_unknown=allow_unknown).spec


def torch_to_onnx(module: Any, example_input: Any, *, dynamo: bool = False, opset_version: int | None = None) -> Any:
    """Export ``module`` to an ``onnx.ModelProto`` in memory, keeping BatchNorm as its own layers
    (TorchScript exporter: ``training=PRESERVE, do_constant_folding=False``; dynamo: ``optimize=False``);
    ``opset_version`` as torch.onnx.export's (None: the exporter's default)."""
    import io
    import warnings

    import torch

    from convcalc.interop.onnx.graph import require_onnx

    onnx = require_onnx()
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    if dynamo:
        program: Any = torch.onnx.export(module, args, dynamo=True, optimize=False, verbose=False, opset_version=opset_version)
        return program.model_proto
    buffer: Any = io.BytesIO()  # torch.onnx.export writes to file-like objects too
    with warnings.catch_warnings():  # the TorchScript exporter is chosen on purpose: it keeps BatchNorm and module names
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module, args, buffer, dynamo=False, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, opset_version=opset_version
        )
    return onnx.load_from_string(buffer.getvalue())


def from_torch(module: Any, example_input: Any, *, dynamo: bool = False, allow_unknown: bool = False) -> dict[str, object]:
    """Export a ``torch.nn.Module`` with ``torch.onnx.export`` (in memory) and import it: a spec dict.

    ``example_input`` is a tensor (its shape, batch included, becomes the spec's input). torch is
    needed only by this function; the TorchScript exporter is used unless ``dynamo=True``.
    """
    return from_onnx(torch_to_onnx(module, example_input, dynamo=dynamo), allow_unknown=allow_unknown)


__all__ = ["LayerReport", "NetworkReport", "from_onnx", "from_torch", "layer", "network", "torch_to_onnx"]
