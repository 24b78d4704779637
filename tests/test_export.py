"""``convcalc export SPEC --to pytorch``: every shipped spec becomes a module PyTorch builds, and PyTorch
itself (not convcalc) gives the parameter count, the output shape, the conv+linear FLOPs
(``torch.utils.flop_counter.FlopCounterMode``) and, through a forward hook on every named module,
the output shape of every layer; all must equal convcalc's. ``FakeTensorMode`` makes the
ImageNet-size forwards free (shapes only, no arithmetic)."""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convcalc.errors import SpecError
from convcalc.interop.peer_tools import load_module
from convcalc.interop.torch_export import export_pytorch
from convcalc.interop.torch_export.emitters import EMITTERS, emitter, find
from convcalc.kinds import all_kinds
from convcalc.network.evaluate import evaluate_file
from convcalc.network.result import NetResult

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(glob.glob(str(ROOT / "specs" / "*.yaml")))
EXAMPLES = sorted(glob.glob(str(ROOT / "specs" / "examples" / "*.yaml")))
ZOO = sorted(glob.glob(str(ROOT / "tests" / "data" / "export_*.yaml")))
SMALL = EXAMPLES + ZOO


def _id(path: str) -> str:
    return Path(path).stem


ALL = SHIPPED + SMALL


def exported(path: str) -> tuple[NetResult, object]:
    result = evaluate_file(path)
    source = export_pytorch(result)
    if "torchvision" in source:
        pytest.importorskip("torchvision.ops", reason="deformable convs export to torchvision.ops.DeformConv2d")
    return result, load_module(source, result.name)


def _cropped(result: NetResult) -> set[str]:
    """Rows whose module output is cropped afterwards by an explicit F.pad (asymmetric transposed crops)."""
    out = set()
    for row in result.rows:
        emit = find(row.type) if row.spec is not None else None
        layer = emit(row) if emit else None
        if layer is not None and getattr(layer, "crop", ()):
            out.add(row.name)
    return out


def _deform_main_macs(result: NetResult) -> int:
    """MACs of deformable main convs: torchvision::deform_conv2d has no FlopCounterMode formula."""
    return sum(row.stages[-1].stats.macs for row in result.rows if row.type == "deformable2d")


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_exported_module_has_convcalcs_params_shapes_and_macs(path: str) -> None:
    from torch._subclasses import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    result, module = exported(path)
    shapes: dict[str, tuple[int, ...]] = {}
    with FakeTensorMode():
        model = module.build()
        for name, sub in model.named_modules():
            if name:
                sub.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
        with FlopCounterMode(display=False) as counter:
            output = model(torch.zeros(1, *module.INPUT_SHAPE))
        params = sum(p.numel() for p in model.parameters())
    totals = result.totals()
    assert params == totals.params
    assert tuple(output.shape[1:]) == result.output_shape
    assert result.input_shape == module.INPUT_SHAPE
    assert counter.get_total_flops() == 2 * (totals.macs - _deform_main_macs(result))
    cropped = _cropped(result)
    checked = 0
    for row in result.rows:
        if row.spec is None or row.name in cropped or row.training_only:
            continue  # merges are tensor ops, not modules; training-only rows run in train() (tested below)
        assert model.get_submodule(row.name) is not None
        assert shapes[row.name] == row.output_shape, row.name
        for stage in row.stages[:-1]:  # stages of composite convolutions are submodules too
            stage_path = f"{row.name}.{stage.name.rsplit('/', 1)[-1]}"
            if stage_path in shapes:
                assert shapes[stage_path] == stage.output, stage_path
                checked += 1
        checked += 1
    assert checked >= len([r for r in result.rows if r.spec is not None and not r.training_only]) - len(cropped)


TRAINING_ONLY = [p for p in ALL if any(row.training_only for row in evaluate_file(p).rows)]


def test_specs_with_training_only_items_are_covered() -> None:
    assert {_id(p) for p in TRAINING_ONLY} >= {"googlenet", "inception_v3", "export_aux"}


@pytest.mark.parametrize("path", TRAINING_ONLY, ids=_id)
def test_training_only_rows_run_only_in_train_mode(path: str) -> None:
    """Eval: FlopCounterMode equals convcalc's eval MACs (the aux heads are skipped); ``model.train()``:
    it equals ``--mode train``. The parameters are the same in both (the heads' modules exist)."""
    from torch._subclasses import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    result, module = exported(path)
    train = evaluate_file(path, mode="train").totals()
    assert train.macs > result.totals().macs
    flops = {}
    shapes: dict[str, dict[str, tuple[int, ...]]] = {"eval": {}, "train": {}}
    with FakeTensorMode():
        model = module.build()
        for name, sub in model.named_modules():
            sub.register_forward_hook(lambda m, i, o, name=name: shapes["train" if m.training else "eval"].__setitem__(name, tuple(o.shape[1:])))
        for mode in ("eval", "train"):
            model.train(mode == "train")
            with FlopCounterMode(display=False) as counter:
                model(torch.zeros(2, *module.INPUT_SHAPE))  # batch 2: BatchNorm trains on more than one value
            flops[mode] = counter.get_total_flops()
        params = sum(p.numel() for p in model.parameters())
    assert flops == {"eval": 2 * 2 * result.totals().macs, "train": 2 * 2 * train.macs}
    assert params == train.params == result.totals().params
    aux = [row for row in result.rows if row.training_only and row.spec is not None]
    assert aux and not any(row.name in shapes["eval"] for row in aux)
    assert all(shapes["train"][row.name] == row.output_shape for row in aux)
    assert export_pytorch(result).count("if self.training:") >= 1


def test_training_only_heads_read_by_the_main_path_are_refused(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "reads_aux.yaml"
    spec.write_text(
        "input: 3x8x8\nlayers:\n"
        "  - {type: conv2d, name: stem, out_channels: 4, kernel_size: 3}\n"
        "  - {type: conv2d, name: aux, out_channels: 4, kernel_size: 1, training_only: true}\n"
        "  - {type: add, name: sum, inputs: [stem, aux]}\n"
    )
    result = run_cli(["export", str(spec)])
    assert result.code == 2
    assert "layer 'sum'" in result.stderr and "reads_aux.yaml:5" in result.stderr and "train() mode" in result.stderr
    assert "Traceback" not in result.output
    spec.write_text("input: 3x8x8\nlayers:\n  - {type: conv2d, name: head, out_channels: 4, kernel_size: 3, training_only: true}\n")
    last = run_cli(["export", str(spec)])
    assert last.code == 2 and "network's output" in last.stderr


@pytest.mark.parametrize("path", SMALL, ids=_id)
def test_small_exports_run_on_real_tensors(path: str) -> None:
    result, module = exported(path)
    torch.manual_seed(0)
    model = module.build()
    with torch.no_grad():
        output = model(torch.randn(2, *module.INPUT_SHAPE))
    assert tuple(output.shape) == (2, *result.output_shape)
    assert torch.isfinite(output).all()


def test_module_paths_are_spec_paths() -> None:
    result, module = exported(str(ROOT / "specs" / "resnet50.yaml"))
    source = export_pytorch(result)
    assert "        # layer1.0: bottleneck\n        x = self.layer1[\"0\"].conv1(maxpool)\n" in source
    with torch.device("meta"):
        model = module.build()
    conv = model.get_submodule("layer1.0.conv1")
    assert isinstance(conv, torch.nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (64, 64, (1, 1))
    assert isinstance(model.get_submodule("layer4.0.downsample.1"), torch.nn.BatchNorm2d)


def test_padding_pytorch_lacks_is_explicit_and_exact() -> None:
    """TF 'same' with stride 2 and causal padding: F.pad before the module, and the values equal a
    convolution over the same explicitly padded input."""
    result, module = exported(str(ROOT / "tests" / "data" / "export_zoo.yaml"))
    source = export_pytorch(result)
    assert 'F.pad(x, (0, 1, 0, 1))' in source  # 20 -> 10 with k3 s2: total padding 1, the odd unit at the end
    assert 'value=float("-inf")' in source  # max pooling pads with -inf, as PyTorch's own padding
    torch.manual_seed(0)
    model = module.build()
    x = torch.randn(1, 8, 20, 20)
    conv = model.get_submodule("same_s2")
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    hooked: list[torch.Tensor] = []
    conv.register_forward_hook(lambda m, i, o: hooked.append(o))
    with torch.no_grad():
        model(x)
    torch.testing.assert_close(hooked[0], expected)
    seq, _ = exported(str(ROOT / "tests" / "data" / "export_seq.yaml"))
    assert "F.pad(x, (4, 0))" in export_pytorch(seq)  # causal: d·(k-1) = 2·2 before, 0 after


def test_generated_code_imports_only_torch() -> None:
    allowed = {"torch", "torch.nn.functional", "torchvision.ops"}
    for path in ALL:
        tree = ast.parse(export_pytorch(evaluate_file(path)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= allowed, path
            elif isinstance(node, ast.ImportFrom):
                assert node.module in allowed, path


def test_generated_code_is_ruff_clean(tmp_path: Path) -> None:
    if shutil.which("ruff") is None and subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True, check=False).returncode:
        pytest.skip("ruff is not installed")
    for path in ALL:
        (tmp_path / f"{_id(path)}.py").write_text(export_pytorch(evaluate_file(path)))
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run([*ruff, "check", "--isolated", "--quiet", str(tmp_path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([*ruff, "format", "--isolated", "--check", str(tmp_path)], capture_output=True, text=True, check=False)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


UNTRANSLATABLE = {"unknown", "elementwise"}
"""Kinds of ``convcalc import`` with no PyTorch translation: an op without a formula, and ``x <op> c``
whose constant ``c`` the spec does not hold. Exporting them is an error naming the type."""


def test_every_layer_type_has_a_translation() -> None:
    assert {k.name for k in all_kinds()} - set(EMITTERS) == UNTRANSLATABLE


@pytest.mark.parametrize("kind", sorted(UNTRANSLATABLE))
def test_the_untranslatable_types_are_errors_naming_them(kind: str, tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "imported.yaml"
    extra = "op_type: Foo, output_shape: 3x8x8" if kind == "unknown" else "op: mul"
    spec.write_text(f"input: 3x8x8\nlayers:\n  - {{type: {kind}, name: odd, {extra}}}\n")
    result = run_cli(["export", str(spec)])
    assert result.code == 2
    assert f"'{kind}' has no PyTorch translation" in result.stderr and "layer 'odd'" in result.stderr


def test_a_type_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        emitter("relu")(EMITTERS["relu"])


def test_a_type_without_translation_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    monkeypatch.delitem(EMITTERS, "relu")
    with pytest.raises(SpecError, match="'relu' has no PyTorch translation"):
        export_pytorch(evaluate_file(str(ROOT / "specs" / "examples" / "tiny_resnet.yaml")))
    result = run_cli(["export", str(ROOT / "specs" / "examples" / "tiny_resnet.yaml")])
    assert result.code == 2
    assert "layer 'relu'" in result.stderr and "no PyTorch translation" in result.stderr
    assert "Traceback" not in result.output


def test_a_layer_named_like_a_module_attribute_is_refused(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: 3x8x8\nlayers:\n  - {type: conv2d, name: train, out_channels: 4, kernel_size: 3}\n")
    result = run_cli(["export", str(spec)])
    assert result.code == 2
    assert "bad.yaml:3" in result.stderr and "'train'" in result.stderr


def test_cli_writes_the_file_or_stdout(tmp_path: Path, run_cli) -> None:
    spec = str(ROOT / "specs" / "examples" / "dilated_stack.yaml")
    printed = run_cli(["export", spec, "--to", "pytorch"])
    assert printed.code == 0 and printed.stdout.startswith('"""')
    target = tmp_path / "model.py"
    written = run_cli(["export", spec, "-o", str(target)])
    assert written.code == 0 and target.read_text() == printed.stdout
    missing = run_cli(["export", spec, "-o", str(tmp_path / "no" / "such" / "dir.py")])
    assert missing.code == 2 and "cannot write" in missing.stderr


def test_cli_module_runs_standalone(tmp_path: Path) -> None:
    target = tmp_path / "dilated.py"
    result = evaluate_file(str(ROOT / "specs" / "examples" / "dilated_stack.yaml"))
    target.write_text(export_pytorch(result))
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, str(target)], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"torch.Size([1, {', '.join(map(str, result.output_shape))}])"


def test_deformable_export_with_a_conv2d_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without torchvision: a stand-in ``torchvision.ops.DeformConv2d`` with torchvision's weight
    shapes and signature (a plain convolution, ignoring the offsets) checks the wiring, the
    offset conv, the parameter count and every module's shape."""
    import types

    class DeformConv2d(torch.nn.Conv2d):
        def forward(self, x, offset, mask=None):  # type: ignore[no-untyped-def,override]
            n, _, h, w = offset.shape
            taps = self.kernel_size[0] * self.kernel_size[1]
            assert offset.shape[1] == 2 * taps and (mask is None or mask.shape == (n, taps, h, w))
            return super().forward(x)

    ops = types.ModuleType("torchvision.ops")
    ops.DeformConv2d = DeformConv2d  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.ops", ops)
    result = evaluate_file(str(ROOT / "specs" / "deformable_block.yaml"))
    module = load_module(export_pytorch(result), result.name)
    model = module.build()
    shapes: dict[str, tuple[int, ...]] = {}
    for name, sub in model.named_modules():
        sub.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    with torch.no_grad():
        output = model(torch.randn(1, *module.INPUT_SHAPE))
    assert sum(p.numel() for p in model.parameters()) == result.totals().params
    assert tuple(output.shape[1:]) == result.output_shape
    for row in result.rows:
        if row.spec is not None:
            assert shapes[row.name] == row.output_shape, row.name
        if row.type == "deformable2d":
            assert shapes[f"{row.name}.offset"] == row.stages[0].output


@pytest.mark.parametrize(("name", "dynamo"), [("resnet18", False), ("resnet18", True), ("mobilenet_v2", False)])
def test_export_then_onnx_import_gives_the_same_totals_and_layer_names(name: str, dynamo: bool) -> None:
    """The round trip of issue 11: spec -> ``convcalc export`` -> torch -> ``torch.onnx.export``
    (either exporter, BatchNorm kept) -> ``convcalc import`` -> the same params, MACs and output
    shape, and every layer with parameters (convolution, linear, batch norm) under its spec name
    with its parameter count.

    The exported forward calls nested modules from the top module. The dynamo exporter scopes each
    module call by its full path and the forward's own additions by the top module, so on ResNet-18
    every name comes back. The TorchScript exporter names a module scope by its last atom only
    (torch's ``_unqualified_variable_name``: ``layer1.0.relu`` -> ``relu_1``), so a parameter-free
    module between two blocks cannot be placed: only the additions and ReLUs that end a residual
    block come back under other names."""
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    import convcalc

    result, module = exported(str(ROOT / "specs" / f"{name}.yaml"))
    model = module.build().eval()  # type: ignore[attr-defined]
    spec = convcalc.from_torch(model, torch.zeros(1, *module.INPUT_SHAPE), dynamo=dynamo)  # type: ignore[attr-defined]
    back = convcalc.network(spec)
    totals = result.totals()
    assert (back.params, back.macs, tuple(back.output_shape)) == (totals.params, totals.macs, result.output_shape)
    weighted = {row.name: row.params for row in result.rows if row.params}
    assert {row.name: row.params for row in back.layers if row.params} == weighted
    assert {row.type for row in result.rows if row.name in weighted} >= ({"conv2d", "batchnorm2d", "linear"} if name == "resnet18" else set())
    names = [row.name for row in result.rows]
    if name == "resnet18" and dynamo:
        assert [row.name for row in back.layers] == names
    elif name == "resnet18":
        renamed = {row.name for row in result.rows} - {row.name for row in back.layers}
        assert renamed and all(n.endswith((".add", ".relu")) and n.count(".") == 2 for n in renamed), renamed
        assert {n for n in names if n.endswith(".relu1")} <= {row.name for row in back.layers}  # inside a block: placed
