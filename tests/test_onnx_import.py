"""ONNX import against PyTorch itself: models built from torch.nn (tests/torch_models.py), exported
with both of torch's exporters, imported, and compared with torch's own numbers:

* parameters: ``sum(p.numel() for p in model.parameters())``;
* MACs: ``torch.utils.flop_counter.FlopCounterMode`` (conv + linear FLOPs, / 2);
* the output shape, and the output shape of every leaf module, by name, from forward hooks.

The TorchScript exporter keeps BatchNorm (``training=PRESERVE, do_constant_folding=False``); the
dynamo exporter is run with ``optimize=False`` (its default optimisation folds BatchNorm into the
convolutions: a separate test compares that graph with torch's own ``fuse_conv_bn_eval``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torch_models import MODELS, build  # noqa: E402

from convcalc.api import torch_to_onnx  # noqa: E402
from convcalc.interop.onnx import import_model  # noqa: E402

EXPORTERS = ("torchscript", "dynamo")


def export(model: nn.Module, x: Any, exporter: str, opset: int | None = None) -> Any:
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return torch_to_onnx(model, x, dynamo=exporter == "dynamo", opset_version=opset)


class Reference:
    """What torch says about one model."""

    def __init__(self, model: nn.Module, x: Any) -> None:
        self.params = sum(p.numel() for p in model.parameters())
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            y = model(x)
        self.macs = counter.get_total_flops() // 2
        self.output = tuple(y.shape[1:])
        calls: dict[str, list[tuple[int, ...]]] = {}
        hooks = [
            module.register_forward_hook(lambda m, i, o, name=name: calls.setdefault(name, []).append(tuple(o.shape[1:])))
            for name, module in model.named_modules()
            if name and not list(module.children())
        ]
        with torch.no_grad():
            model(x)
        for hook in hooks:
            hook.remove()
        dropped = {name for name, m in model.named_modules() if isinstance(m, (nn.Dropout, nn.Identity))}
        # exporters remove inference-time no-ops; modules called twice are compared on their first call
        self.layers = {name: shapes[0] for name, shapes in calls.items() if name not in dropped}


Exported = Callable[..., tuple[Any, Reference]]


@pytest.fixture(scope="module")
def exported() -> Exported:
    """``exported(name, exporter, opset=None)``: the ONNX model of ``torch_models.build(name)`` and torch's numbers."""
    cache: dict[tuple[str, str, int | None], tuple[Any, Reference]] = {}

    def get(name: str, exporter: str, opset: int | None = None) -> tuple[Any, Reference]:
        if (name, exporter, opset) not in cache:
            model, x = build(name)
            cache[name, exporter, opset] = (export(model, x, exporter, opset), Reference(model, x))
        return cache[name, exporter, opset]

    return get


def assert_matches_torch(imported: Any, ref: Reference) -> None:
    """Totals, output shape and every leaf module's output shape (by name) are torch's; nothing unknown."""
    totals = imported.result.totals()
    assert totals.params == ref.params
    assert totals.macs == ref.macs
    assert imported.result.output_shape == ref.output
    rows = {row.name: row.output_shape for row in imported.result.rows}
    assert {name: rows.get(name) for name in ref.layers} == ref.layers
    assert not imported.unknown


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", list(MODELS))
def test_import_matches_torch(name: str, exporter: str, exported: Exported) -> None:
    proto, ref = exported(name, exporter)
    assert_matches_torch(import_model(proto), ref)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_subgraph_patterns_below_opset_20(exporter: str, exported: Exported) -> None:
    """At opset 18 (no Gelu op) both exporters write GELU as a subgraph (TorchScript: Div, Erf, Add,
    Mul x, Mul 0.5; dynamo: ... Mul 0.5, Mul x; the tanh form with Mul(x, x)·x or Pow(x, 3)): each is
    one ``gelu`` row. The linear SE gate's ``view(n, c, 1, 1)`` is an ``unflatten`` row and
    view/transpose/reshape one ``channel_shuffle`` row; everything else matches torch as at opset 20."""
    proto, ref = exported("gelu_shuffle_se", exporter, 18)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [18]
    assert {"Erf", "Tanh", "Transpose"} <= {n.op_type for n in proto.graph.node}
    assert "Gelu" not in {n.op_type for n in proto.graph.node}
    imported = import_model(proto)
    assert_matches_torch(imported, ref)
    rows = [(layer.name, layer.type, layer.fields) for layer in imported.layers]
    assert ("act", "gelu", {}) in rows and ("act2", "gelu", {"approximate": "tanh"}) in rows
    assert [(t, f) for _, t, f in rows if t in ("unflatten", "channel_shuffle")] == [
        ("unflatten", {"dim": 1, "unflattened_size": [12, 1, 1]}),
        ("channel_shuffle", {"groups": 3}),
    ]
    assert {t for _, t, _ in rows} == {"conv2d", "gelu", "global_avgpool", "flatten", "linear", "relu", "sigmoid", "unflatten", "multiply", "channel_shuffle"}


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_linear_over_the_last_axis_of_a_rank3_input_is_refused(exporter: str, run_cli: Any, tmp_path: Path) -> None:
    """nn.Linear on N x T x D is exported as MatMul (+ Add) over the last axis; convcalc's linear acts
    on axis 1 and specs have no transpose, so ``convcalc import`` refuses it, naming the node (exit 2)."""
    proto = export(nn.Sequential(nn.Conv1d(4, 6, 1), nn.Linear(9, 3)).eval(), torch.zeros(1, 4, 9), exporter)
    (matmul,) = [n.name for n in proto.graph.node if n.op_type == "MatMul"]
    path = tmp_path / "linear3d.onnx"
    path.write_bytes(proto.SerializeToString())
    result = run_cli(["import", str(path)])
    assert result.code == 2, result.output
    text = " ".join(result.output.split())
    assert f"MatMul node '{matmul}' multiplies over the last axis of the 1x6x9 tensor" in text
    assert "convcalc's linear acts on the channel axis" in text and "Traceback" not in text


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_written_spec_evaluates_to_the_same_totals(exporter: str, exported: Any, run_cli: Any, tmp_path: Path) -> None:
    """`convcalc import` writes YAML that `convcalc net` evaluates to torch's numbers."""
    proto, ref = exported("residual", exporter)
    model = tmp_path / "model.onnx"
    model.write_bytes(proto.SerializeToString())
    spec = tmp_path / "model.yaml"
    result = run_cli(["import", str(model), "-o", str(spec)])
    assert result.code == 0, result.output
    doc = json.loads(run_cli(["net", str(spec), "--format", "json"]).stdout)
    assert (doc["totals"]["params"], doc["totals"]["macs"]) == (ref.params, ref.macs)
    names = {row["name"] for row in doc["layers"]}
    assert {"layer1.0.conv1", "layer2.0.downsample.0", "layer2.1.bn2", "fc"} <= names
    # readable: one line per layer, named tensors only where the graph branches
    text = spec.read_text()
    assert text.count("type:") == doc["totals"]["layers"]
    assert "input: " in text and text.count("input:") + text.count("inputs:") < doc["totals"]["layers"] // 3



class FlatCalls(nn.Module):
    """Two residual blocks whose leaves the top module's forward calls directly (as the code
    'convcalc export' writes does), with fresh batch norms: identical parameters, which the
    TorchScript exporter shares between the modules through Identity nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.ModuleDict()
        for name in ("0", "1"):
            self.block[name] = nn.ModuleDict({"conv": nn.Conv2d(8, 8, 3, padding=1, bias=False), "bn": nn.BatchNorm2d(8), "relu": nn.ReLU()})
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in ("0", "1"):
            leaves = self.block[name]
            x = leaves["relu"](leaves["bn"](leaves["conv"](x)) + x)
        return self.head(x)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_leaves_called_from_the_top_module_keep_their_paths(exporter: str) -> None:
    """Every module with parameters is named by its path in ``named_modules`` (batch norms by their
    scale's initializer, also when the TorchScript exporter shares it); the additions the top forward
    makes join the block around them. With dynamo every row has its module path; the TorchScript
    exporter names the ReLU scopes ``relu``, ``relu_1`` (no path), so only the block they sit in is known."""
    model = FlatCalls().eval()
    imported = import_model(export(model, torch.zeros(1, 3, 8, 8), exporter))
    rows = [(row.name, row.params) for row in imported.result.rows]
    weighted = [(name, sum(p.numel() for p in m.parameters())) for name, m in model.named_modules() if not list(m.children())]
    assert [(name, params) for name, params in rows if params] == [(name, params) for name, params in weighted if params]
    names = [name for name, _ in rows]
    if exporter == "dynamo":
        assert names == ["stem", *(f"block.{i}.{leaf}" for i in "01" for leaf in ("conv", "bn", "add", "relu")), "head"]
    else:  # the first block's addition and ReLU lie between block.0.bn and block.1.conv: they join 'block'
        assert names[:6] == ["stem", "block.0.conv", "block.0.bn", "block.add", "block.relu", "block.1.conv"]


def test_folded_batchnorm_graph_matches_torch_fusion() -> None:
    """The dynamo exporter's default optimisation folds BatchNorm into the convs: imported as it is,
    with a note; the numbers are those of torch's own fusion (fuse_conv_bn_eval)."""
    pytest.importorskip("onnxscript")
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model, x = build("separable_se")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        proto = torch.onnx.export(model, (x,), dynamo=True, verbose=False).model_proto
    imported = import_model(proto)
    fused = [
        fuse_conv_bn_eval(model.stem[0], model.stem[1]),
        fuse_conv_bn_eval(model.dw, model.bn_dw),
        fuse_conv_bn_eval(model.pw, model.bn_pw),
    ]
    bns = [model.stem[1], model.bn_dw, model.bn_pw]
    convs = [model.stem[0], model.dw, model.pw]
    expected = (
        sum(p.numel() for p in model.parameters())
        - sum(p.numel() for m in [*bns, *convs] for p in m.parameters())
        + sum(p.numel() for m in fused for p in m.parameters())
    )
    assert imported.result.totals().params == expected
    assert any("BatchNorm looks folded" in note for note in imported.notes)
    assert "BatchNorm looks folded" in imported.text


def test_check_against_the_library_resnet18(run_cli: Any, tmp_path: Path) -> None:
    """specs/resnet18.yaml against the torch ResNet-18 its library test builds, exported by torch."""
    from test_library_imagenet import basic_block, build_resnet

    torch.manual_seed(0)
    model = build_resnet(basic_block, (2, 2, 2, 2)).eval()
    path = tmp_path / "resnet18.onnx"
    path.write_bytes(export(model, torch.randn(1, 3, 224, 224), "torchscript").SerializeToString())
    ok = run_cli(["check", "specs/resnet18.yaml", "--against", str(path)])
    assert ok.code == 0, ok.output
    assert "PASS" in ok.stdout
    # the shipped model changes (a 1x1 conv2 in the last block): the check fails there
    model.layer4[1].conv2 = nn.Conv2d(512, 512, 1, bias=False)
    changed = tmp_path / "changed.onnx"
    changed.write_bytes(export(model, torch.randn(1, 3, 224, 224), "torchscript").SerializeToString())
    fail = run_cli(["check", "specs/resnet18.yaml", "--against", str(changed)])
    assert fail.code == 1
    assert "layer4.1.conv2" in fail.stdout and "Traceback" not in fail.output
    assert "/layer4/layer4.1/conv2/Conv" in fail.stdout  # the ONNX node name
    assert re.search(r"specs/resnet18.yaml:\d+: layer 'layer4.1.conv2': params: spec 2,359,296, model 262,144", fail.stdout)
    github = run_cli(["check", "specs/resnet18.yaml", "--against", str(changed), "--format", "github"])
    assert github.code == 1 and github.stdout.startswith("::error file=specs/resnet18.yaml,line=")
    junit = run_cli(["check", "specs/resnet18.yaml", "--against", str(changed), "--format", "junit"])
    assert junit.code == 1 and "<failure" in junit.stdout and "layer4.1.conv2" in junit.stdout


@pytest.mark.parametrize("name", ["mobilenet_v2", "googlenet"])
def test_library_specs_pass_against_their_torch_builds(name: str, run_cli: Any, tmp_path: Path) -> None:
    """The reference library's specs against the torch builds of tests/test_library_imagenet.py, exported
    by torch (MobileNetV2's dropout row has no node in an inference graph and is not a divergence)."""
    import test_library_imagenet as library

    torch.manual_seed(0)
    model = getattr(library, f"build_{name}")().eval()
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(export(model, torch.randn(1, 3, 224, 224), "torchscript").SerializeToString())
    result = run_cli(["check", f"specs/{name}.yaml", "--against", str(path)])
    assert result.code == 0, result.output
