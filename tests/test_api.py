"""The Python API: the same numbers as the CLI (``to_dict()`` is the CLI's JSON), lazily loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import convcalc
from convcalc.errors import ShapeError, SpecError


def test_layer_to_dict_is_the_cli_json(cli_json: Any) -> None:
    report = convcalc.layer("separable2d", in_shape=(3, 7, 7), out_channels=128, kernel_size=3, bias=False)
    assert report.to_dict() == cli_json(["layer", "separable2d", "--in", "3x7x7", "-o", "128", "-k", "3", "--no-bias"])
    # the seeds' depthwise separable example: 3·9 + 3·128 weights; 675 + 9,600 multiplications
    assert (report.output_shape, report.params, report.macs, report.flops) == ((128, 5, 5), 3 * 9 + 3 * 128, 10_275, 20_550)
    assert repr(report) == "<LayerReport separable2d 3x7x7 -> 128x5x5: params=411 macs=10,275>"


def test_layer_batch_and_string_shape() -> None:
    report = convcalc.layer("conv2d", in_shape="3x224x224", batch=8, out_channels=64, kernel_size=7, stride=2, padding=3)
    assert report.output_shape == (64, 112, 112)
    assert report.macs == 8 * 112 * 112 * 64 * 3 * 49 and report.params == 64 * 3 * 49 + 64


def test_network_from_file_and_dict_is_the_cli_json(cli_json: Any) -> None:
    report = convcalc.network("specs/examples/tiny_resnet.yaml")
    assert report.to_dict() == cli_json(["net", "specs/examples/tiny_resnet.yaml"])
    assert report.params == 175_258 and report.layer("layer3.1.conv2").output_shape == (64, 8, 8)
    spec = {"name": "mlp", "input": 784, "layers": [{"type": "linear", "out_features": 10}]}
    mlp = convcalc.network(spec, batch=4)
    assert (mlp.params, mlp.macs, mlp.output_shape) == (784 * 10 + 10, 4 * 784 * 10, (10,))
    assert repr(mlp) == "<NetworkReport 'mlp' 784 -> 10: 1 layers, params=7,850 macs=31,360 (batch 4)>"


def test_network_in_shape_replaces_the_input() -> None:
    small = convcalc.network("specs/examples/tiny_resnet.yaml", in_shape=(3, 64, 64))
    assert small.output_shape == (10,) and small.layer("layer3.1.conv2").output_shape == (64, 16, 16)
    with pytest.raises(ShapeError):
        convcalc.network({"input": "3x8x8", "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 9}]})
    with pytest.raises(SpecError, match="unknown layer type"):
        convcalc.layer("conv9d", in_shape=(3, 8, 8))


CALL = "print(convcalc.network({'input': 4, 'layers': [{'type': 'linear', 'out_features': 2}]}).params)"


@pytest.mark.parametrize(
    "code",
    [
        f"import convcalc.network.spec as spec, convcalc\nassert callable(spec.parse_network)\n{CALL}\n{CALL}",
        f"import convcalc\n{CALL}\nimport convcalc.network.evaluate\n{CALL}",
    ],
    ids=["package-imported-first", "function-used-first"],
)
def test_convcalc_network_is_the_package_and_the_function(code: str) -> None:
    """``convcalc.network`` is both the package and the API function, whichever is used first."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.split() == [str(4 * 2 + 2)] * 2


def test_import_convcalc_is_cheap() -> None:
    """``import convcalc`` loads neither the API nor any heavy or optional package."""
    code = (
        "import sys, convcalc\n"
        "heavy = [m for m in ('convcalc.api', 'numpy', 'yaml', 'rich', 'onnx', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == ""


def test_from_torch_and_from_onnx(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
    spec = convcalc.from_torch(model, torch.randn(1, 3, 8, 8))
    report = convcalc.network(spec)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert [r.name for r in report.layers] == ["0", "1", "2", "3", "4"]
    assert json.loads(json.dumps(spec)) == spec  # a plain, serialisable dict
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False)
    folded = convcalc.network(convcalc.from_onnx(path))
    assert folded.params == 8 * 27 + 8 + 8 * 36 * 5 + 5  # BatchNorm folded into a biased conv by the default export
