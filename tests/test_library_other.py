"""The reference library, part 2 (video, generative, segmentation, audio, text, factorised convs).

Specs: ``specs/{c3d, r2plus1d_18, p3d_block, dcgan_generator, unet, deeplab_aspp, wavenet,
textcnn, flattened_net, deformable_block}.yaml`` and the single-layer ``specs/layers/*.yaml``.

(a) every spec passes ``convcalc check`` (exit 0; through the Python API while the ``check``
    command is not registered);
(b) torch reference builds, written here from ``torch.nn`` (torchvision is not installable):
    R(2+1)D-18, U-Net, C3D, DCGAN generator, DeepLab ASPP head, WaveNet, TextCNN, the P3D chain,
    the flattened network and the deformable block (with ``nn.Conv2d`` standing in for
    ``torchvision.ops.DeformConv2d``: same weight shapes, same output shape);
(c) published numbers: parameters exactly, MACs rounded to the published GFLOPS digits.

How convcalc rows are matched to torch modules: the specs name their layers the way torchvision
names its modules (``layer2.0.conv1.0.3``, ``aspp.convs.4.1``): an unnamed layer in a block gets
its position (``0``, ``1``... as in ``nn.Sequential``), a template call or a named block adds a
path level, unnamed ``residual``/``branches`` blocks add none. The torch builds below use the
same names (``nn.Sequential(OrderedDict(...))`` where a spec names its layers). A forward hook on
every module records each module's output shape (batch axis dropped) in call order. Then:

* every convcalc row (the JSON ``layers`` rows: ``name``, ``output_shape``, ``params``) is a
  torch module of the same name with the same output shape and the same ``sum(p.numel())``,
  except the rows of operations torch does functionally in ``forward`` (``add``, ``concat``,
  ``multiply``, ``crop2d``, ``upsample``), which have no parameters;
* every torch parameter lives in a matched module (nothing uncounted), so the totals agree;
* the matched rows come in the same order as torch calls the modules.

A composite convcalc type (``p3d``, ``flattened2d``, ``deformable2d``) is one row and one torch
module with children. Big inputs are evaluated at a reduced size, in both convcalc (the spec
loaded with its ``input`` replaced) and torch, to keep this file within seconds; the full-size
parameter totals are compared too (they do not depend on the input, except C3D's fc6, which is
built for each size).
"""

from __future__ import annotations

import importlib.util
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcalc.network.check import check_file
from convcalc.network.evaluate import evaluate_network
from convcalc.network.result import NetResult
from convcalc.network.spec import parse_network
from convcalc.parse.yaml import load_file

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
NAMES = (
    "c3d",
    "r2plus1d_18",
    "p3d_block",
    "dcgan_generator",
    "unet",
    "deeplab_aspp",
    "wavenet",
    "textcnn",
    "flattened_net",
    "deformable_block",
)
FUNCTIONAL = {"add", "concat", "multiply", "crop2d", "upsample"}
HAS_NET_COMMANDS = importlib.util.find_spec("convcalc.cli.net") is not None


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These forwards are small: one thread avoids OpenMP spinning on the shared cores (5x faster here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec_path(name: str) -> str:
    return str(SPECS / f"{name}.yaml")


def evaluate(name: str, input_shape: str | None = None, variables: Mapping[str, object] | None = None) -> NetResult:
    """Evaluate a shipped spec, optionally with another input shape and variables (its
    expectations, written for the real size, are then ignored)."""
    data, source = load_file(spec_path(name))
    assert isinstance(data, dict)
    if input_shape is not None:
        data["input"] = input_shape
    if variables:
        data["variables"] = {**(data.get("variables") or {}), **variables}
    return evaluate_network(parse_network(data, source))


# ==============================================================================================
# (a) convcalc check
# ==============================================================================================


@pytest.mark.parametrize("name", NAMES)
def test_spec_passes_check(name, run_cli):
    if HAS_NET_COMMANDS:
        result = run_cli(["check", spec_path(name)])
        assert result.code == 0, result.output
    outcome = check_file(spec_path(name))
    assert outcome.status == "pass", (outcome.error, [e.message for e in outcome.expectations if not e.ok])
    assert len(outcome.expectations) >= 3  # output shape, params, MACs at least


@pytest.mark.skipif(not HAS_NET_COMMANDS, reason="'convcalc check' is not registered yet")
def test_check_all_at_once(run_cli):
    result = run_cli(["check", *map(spec_path, NAMES)])
    assert result.code == 0, result.output


@pytest.mark.skipif(not HAS_NET_COMMANDS, reason="'convcalc net' is not registered yet")
@pytest.mark.parametrize("name", NAMES)
def test_net_json_agrees_with_the_api(name, cli_json):
    data = cli_json(["net", spec_path(name)])
    result = evaluate(name)
    totals = result.totals()
    assert data["totals"]["params"] == totals.params
    assert data["totals"]["macs"] == totals.macs
    assert [row["name"] for row in data["layers"]] == [row.name for row in result.rows]
    assert [row["params"] for row in data["layers"]] == [row.params for row in result.rows]


# ==============================================================================================
# (b) torch reference builds
# ==============================================================================================


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torch_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape (batch dropped) of every module returning a tensor, by name, in call order."""
    seen: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
            assert name not in seen, f"{name} is called twice"
            if isinstance(out, torch.Tensor):  # a block returning (residual, skip) is not a row
                seen[name] = tuple(out.shape[1:])

        hooks.append(module.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def compare(result: NetResult, model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Every convcalc row against the torch module of the same name (see the module docstring)."""
    shapes = torch_outputs(model, torch.zeros((1, *input_shape)))
    modules = dict(model.named_modules())
    matched: list[str] = []
    for row in result.rows:
        if row.name not in modules:
            assert row.type in FUNCTIONAL, f"convcalc row {row.name} ({row.type}) has no torch module"
            assert row.params == 0, row.name
            continue
        assert row.name in shapes, f"torch never called {row.name}"
        assert tuple(row.output_shape) == shapes[row.name], (row.name, row.output_shape, shapes[row.name])
        assert row.params == n_params(modules[row.name]), (row.name, row.params, n_params(modules[row.name]))
        matched.append(row.name)
    order = [name for name in shapes if name in set(matched)]
    assert matched == order, "convcalc evaluates the layers in another order than torch calls them"
    for name, module in modules.items():
        if next(module.children(), None) is None and n_params(module) > 0:
            assert any(name == m or name.startswith(m + ".") for m in matched), f"torch parameters of {name} are not counted"
    assert result.totals().params == n_params(model)


def seq(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


# -- R(2+1)D-18 (torchvision.models.video.resnet, rewritten) --------------------------------------


class Conv2Plus1D(nn.Sequential):
    def __init__(self, cin: int, cout: int, mid: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )


class VideoBasicBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        mid = (cin * planes * 3 * 3 * 3) // (cin * 3 * 3 + 3 * planes)  # once, for both convs
        self.conv1 = nn.Sequential(Conv2Plus1D(cin, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, mid), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv3d(cin, planes, 1, stride, bias=False), nn.BatchNorm3d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def r2plus1d_18(num_classes: int = 400) -> nn.Module:
    layers: list[tuple[str, nn.Module]] = [
        (
            "stem",
            nn.Sequential(
                nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                nn.BatchNorm3d(45),
                nn.ReLU(inplace=True),
                nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False),
                nn.BatchNorm3d(64),
                nn.ReLU(inplace=True),
            ),
        )
    ]
    cin = 64
    for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        layers.append((f"layer{i}", nn.Sequential(VideoBasicBlock(cin, planes, stride), VideoBasicBlock(planes, planes))))
        cin = planes
    layers += [("avgpool", nn.AdaptiveAvgPool3d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(512, num_classes))]
    return seq(*layers)


def test_r2plus1d_18_against_torch():
    model = r2plus1d_18()
    assert n_params(model) == 31_505_325 == evaluate("r2plus1d_18").totals().params
    compare(evaluate("r2plus1d_18", "3x8x32x32"), model, (3, 8, 32, 32))


# -- U-Net (Ronneberger et al. 2015, valid convs, crop and concat) --------------------------------


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU(), nn.Conv2d(cout, cout, 3), nn.ReLU())


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    start = (x.shape[-1] - size) // 2
    return x[..., start : start + size, start : start + size]


class UpStep(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, 2)
        self.conv = double_conv(2 * cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(torch.cat([centre_crop(skip, x.shape[-1]), x], 1))


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, classes: int = 2) -> None:
        super().__init__()
        self.enc1, self.pool1 = double_conv(in_channels, 64), nn.MaxPool2d(2)
        self.enc2, self.pool2 = double_conv(64, 128), nn.MaxPool2d(2)
        self.enc3, self.pool3 = double_conv(128, 256), nn.MaxPool2d(2)
        self.enc4, self.drop4, self.pool4 = double_conv(256, 512), nn.Dropout(0.5), nn.MaxPool2d(2)
        self.bottleneck, self.drop5 = double_conv(512, 1024), nn.Dropout(0.5)
        self.up4, self.up3, self.up2, self.up1 = UpStep(1024, 512), UpStep(512, 256), UpStep(256, 128), UpStep(128, 64)
        self.head = nn.Conv2d(64, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        e3 = self.enc3(self.pool2(e2))
        e4 = self.drop4(self.enc4(self.pool3(e3)))
        x = self.drop5(self.bottleneck(self.pool4(e4)))
        x = self.up1(self.up2(self.up3(self.up4(x, e4), e3), e2), e1)
        return self.head(x)


def test_unet_against_torch():
    model = UNet()
    assert n_params(model) == 31_030_658 == evaluate("unet").totals().params
    # 188 is the smallest tile the valid U-Net accepts; input - output = 184 for every valid
    # size, so the spec's crops (4, 16, 40, 88) hold for it too: output 2x4x4.
    result = evaluate("unet", "1x188x188")
    assert result.output_shape == (2, 4, 4)
    compare(result, model, (1, 188, 188))


# -- C3D ----------------------------------------------------------------------------------------------


def c3d(fc6_in: int = 8192, classes: int = 487) -> nn.Module:
    def conv(cin: int, cout: int) -> nn.Sequential:
        return seq(("conv", nn.Conv3d(cin, cout, 3, padding=1)), ("relu", nn.ReLU()))

    return seq(
        ("conv1a", conv(3, 64)),
        ("pool1", nn.MaxPool3d((1, 2, 2), (1, 2, 2))),
        ("conv2a", conv(64, 128)),
        ("pool2", nn.MaxPool3d(2, 2)),
        ("conv3a", conv(128, 256)),
        ("conv3b", conv(256, 256)),
        ("pool3", nn.MaxPool3d(2, 2)),
        ("conv4a", conv(256, 512)),
        ("conv4b", conv(512, 512)),
        ("pool4", nn.MaxPool3d(2, 2)),
        ("conv5a", conv(512, 512)),
        ("conv5b", conv(512, 512)),
        ("pool5", nn.MaxPool3d(2, 2, padding=(0, 1, 1))),
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(fc6_in, 4096)),
        ("relu6", nn.ReLU()),
        ("dropout6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)),
        ("relu7", nn.ReLU()),
        ("dropout7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, classes)),
    )


def test_c3d_against_torch():
    with torch.device("meta"):  # parameter counts only: no memory, no initialisation
        full, ucf101 = c3d(), c3d(classes=101)
    assert n_params(full) == 79_991_015 == evaluate("c3d").totals().params
    # The "~78M" quoted for C3D (see the spec's header): up to fc7, and with a 101-class fc8.
    assert n_params(full) - n_params(full.fc8) == 77_995_776
    assert n_params(ucf101) == 78_409_573
    # 16 frames are needed (four temporal halvings); 24x24 keeps torch fast: pool5 -> 512x1x1x1.
    result = evaluate("c3d", "3x16x24x24")
    compare(result, c3d(fc6_in=512), (3, 16, 24, 24))


# -- DCGAN generator (PyTorch tutorial) -------------------------------------------------------------


def dcgan_generator(nz: int = 100, ngf: int = 64, nc: int = 3) -> nn.Module:
    def up(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))

    return seq(
        ("project", nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False)),
        ("bn", nn.BatchNorm2d(ngf * 8)),
        ("relu", nn.ReLU(True)),
        ("up1", up(ngf * 8, ngf * 4)),
        ("up2", up(ngf * 4, ngf * 2)),
        ("up3", up(ngf * 2, ngf)),
        ("to_rgb", nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False)),
        ("tanh", nn.Tanh()),
    )


def test_dcgan_generator_against_torch():
    model = dcgan_generator()
    assert n_params(model) == 3_576_704
    compare(evaluate("dcgan_generator"), model, (100, 1, 1))


# -- DeepLab v3 head (torchvision.models.segmentation.deeplabv3, rewritten) ---------------------------


class ASPPPooling(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, rates: tuple[int, int, int], cout: int = 256) -> None:
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())]
        for rate in rates:
            branches.append(
                nn.Sequential(nn.Conv2d(cin, cout, 3, padding=rate, dilation=rate, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
            )
        branches.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(5 * cout, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], 1))


def deeplab_head(cin: int = 2048, classes: int = 21, rates: tuple[int, int, int] = (6, 12, 18)) -> nn.Module:
    return seq(
        ("aspp", ASPP(cin, rates)),
        ("conv", nn.Conv2d(256, 256, 3, padding=1, bias=False)),
        ("bn", nn.BatchNorm2d(256)),
        ("relu", nn.ReLU()),
        ("classifier", nn.Conv2d(256, classes, 1)),
    )


def test_deeplab_aspp_against_torch():
    model = deeplab_head()
    result = evaluate("deeplab_aspp")
    assert n_params(model.aspp) == 15_535_104
    assert n_params(model) == 16_130_837 == result.totals().params
    with torch.device("meta"):
        assert n_params(deeplab_head(rates=(12, 24, 36))) == n_params(model)  # torchvision's rates
    compare(evaluate("deeplab_aspp", "2048x9x9", {"size": 9}), model, (2048, 9, 9))


# -- WaveNet ------------------------------------------------------------------------------------------


class CausalConv1d(nn.Conv1d):
    """A conv1d padded on the left only by d·(k-1) (a leaf module, like convcalc's one row)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.dilation[0] * (self.kernel_size[0] - 1), 0)))


class WaveNetLayer(nn.Module):
    def __init__(self, dilation: int, channels: int = 64, skip_channels: int = 256) -> None:
        super().__init__()
        self.gated = nn.Module()
        self.gated.branch1 = seq(("filter", CausalConv1d(channels, channels, 2, dilation=dilation)), ("tanh", nn.Tanh()))
        self.gated.branch2 = seq(("gate", CausalConv1d(channels, channels, 2, dilation=dilation)), ("sigmoid", nn.Sigmoid()))
        self.skip = nn.Conv1d(channels, skip_channels, 1)
        self.res = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.gated.branch1(x) * self.gated.branch2(x)
        skip = self.skip(z)
        return x + self.res(z), skip


class WaveNet(nn.Module):
    def __init__(self, classes: int = 256, channels: int = 64, skip_channels: int = 256) -> None:
        super().__init__()
        self.causal = CausalConv1d(classes, channels, 2)
        self.layers = nn.ModuleList(WaveNetLayer(2**i, channels, skip_channels) for _ in range(3) for i in range(10))
        self.relu1, self.post1 = nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1)
        self.relu2, self.post2 = nn.ReLU(), nn.Conv1d(skip_channels, classes, 1)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.causal(x)
        skips = 0
        for layer in self.layers:
            x, skip = layer(x)
            skips = skips + skip
        return self.softmax(self.post2(self.relu2(self.post1(self.relu1(skips)))))


def test_wavenet_against_torch():
    model = WaveNet()
    assert n_params(model) == 1_283_776 == evaluate("wavenet").totals().params
    compare(evaluate("wavenet", "256x400"), model, (256, 400))


def test_wavenet_receptive_field_is_causal():
    """3,071 samples: 2 (causal input conv) + 3 x (1 + 2 + ... + 512); all in the past."""
    result = evaluate("wavenet")
    (axis,) = result.output.field
    assert axis.size == 2 + 3 * 1023 == 3071
    assert axis.jump == 1
    assert axis.start + (axis.size - 1) / 2 == 0  # the field ends at the current sample


# -- TextCNN --------------------------------------------------------------------------------------------


class GlobalMaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=-1)


class TextCNN(nn.Module):
    def __init__(self, embed: int = 300, filters: int = 100, classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Module()
        for width in (3, 4, 5):
            branch = seq(("conv", nn.Conv1d(embed, filters, width)), ("relu", nn.ReLU()), ("pool", GlobalMaxPool()))
            setattr(self.features, f"conv{width}", branch)
        self.dropout, self.fc, self.softmax = nn.Dropout(0.5), nn.Linear(3 * filters, classes), nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features
        x = torch.cat([f.conv3(x), f.conv4(x), f.conv5(x)], 1)
        return self.softmax(self.fc(self.dropout(x)))


def test_textcnn_against_torch():
    compare(evaluate("textcnn"), TextCNN(), (300, 64))


# -- P3D chain --------------------------------------------------------------------------------------------


class P3DCore(nn.Module):
    def __init__(self, channels: int, variant: str) -> None:
        super().__init__()
        self.variant = variant
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.temporal = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spatial(x)
        if self.variant == "A":
            return self.temporal(s)
        if self.variant == "B":
            return s + self.temporal(x)
        return s + self.temporal(s)


class P3DBottleneck(nn.Module):
    def __init__(self, channels: int, width: int, variant: str) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv3d(channels, width, 1, bias=False), nn.BatchNorm3d(width), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = P3DCore(width, variant), nn.BatchNorm3d(width), nn.ReLU()
        self.conv3, self.bn3 = nn.Conv3d(width, channels, 1, bias=False), nn.BatchNorm3d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + x)


def test_p3d_chain_against_torch():
    model = seq(("blocks", nn.Sequential(*(P3DBottleneck(256, 64, v) for v in "ABC"))))
    assert n_params(model) == 248_064 == evaluate("p3d_block").totals().params
    compare(evaluate("p3d_block", "256x4x10x10"), model, (256, 4, 10, 10))


# -- Flattened network ------------------------------------------------------------------------------------


class Flattened2d(nn.Module):
    """Jin et al.: lateral 1x1 (no bias), vertical k x 1 and horizontal 1 x k depthwise (bias on the last)."""

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__()
        self.lateral = nn.Conv2d(cin, cout, 1, bias=False)
        self.vertical = nn.Conv2d(cout, cout, (k, 1), padding=(k // 2, 0), groups=cout, bias=False)
        self.horizontal = nn.Conv2d(cout, cout, (1, k), padding=(0, k // 2), groups=cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.horizontal(self.vertical(self.lateral(x)))


def flattened_net(flattened: bool = True) -> nn.Module:
    def block(cin: int, cout: int) -> nn.Sequential:
        conv = Flattened2d(cin, cout) if flattened else nn.Conv2d(cin, cout, 3, padding=1)
        return seq(("conv", conv), ("bn", nn.BatchNorm2d(cout)), ("relu", nn.ReLU()))

    return seq(
        ("conv1", nn.Conv2d(3, 64, 3, padding=1)),
        ("bn1", nn.BatchNorm2d(64)),
        ("relu1", nn.ReLU()),
        ("conv2", block(64, 64)),
        ("pool1", nn.MaxPool2d(2)),
        ("conv3", block(64, 128)),
        ("conv4", block(128, 128)),
        ("pool2", nn.MaxPool2d(2)),
        ("conv5", block(128, 256)),
        ("conv6", block(256, 256)),
        ("pool3", nn.MaxPool2d(2)),
        ("avgpool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
        ("fc", nn.Linear(256, 10)),
    )


def test_flattened_net_against_torch():
    compare(evaluate("flattened_net"), flattened_net(), (3, 32, 32))
    compare(evaluate("flattened_net", variables={"conv": "conv2d"}), flattened_net(flattened=False), (3, 32, 32))


def test_flattened_net_description_numbers():
    """The comparison in the spec's header and description."""
    flat, full = evaluate("flattened_net").totals(), evaluate("flattened_net", variables={"conv": "conv2d"}).totals()
    assert (flat.params, flat.macs) == (138_954, 19_532_288)
    assert (full.params, full.macs) == (1_149_770, 152_766_976)
    assert round(full.params / flat.params, 1) == 8.3
    assert round(full.macs / flat.macs, 1) == 7.8
    text = Path(spec_path("flattened_net")).read_text()
    for number in ("138,954", "1,149,770", "19,532,288", "152,766,976", "8.3x", "7.8x"):
        assert number in text


# -- Deformable block -----------------------------------------------------------------------------------------


class DeformableStandIn(nn.Module):
    """DCNv2 parameters and shapes: the offset conv (3·K channels, bias) and a conv with the
    weight shape of ``torchvision.ops.DeformConv2d``; the sampling itself (no parameters) is skipped."""

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__()
        self.offset = nn.Conv2d(cin, 3 * k * k, k, padding=k // 2)
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offsets = self.offset(x)
        assert offsets.shape[-2:] == x.shape[-2:]
        return self.conv(x)


class Bottleneck(nn.Module):
    def __init__(self, channels: int = 512, width: int = 128) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = DeformableStandIn(width, width), nn.BatchNorm2d(width), nn.ReLU()
        self.conv3, self.bn3 = nn.Conv2d(width, channels, 1, bias=False), nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + x)


def test_deformable_block_against_torch():
    compare(evaluate("deformable_block"), seq(("block", Bottleneck())), (512, 28, 28))


def test_deformable_receptive_field_is_data_dependent_from_the_deformable_layer_on():
    result = evaluate("deformable_block")
    statuses = [(row.name, row.rf_status) for row in result.rows]
    first = next(i for i, (name, _) in enumerate(statuses) if name == "block.conv2")
    assert all(status == "exact" for _, status in statuses[:first])
    assert all(status == "data-dependent" for _, status in statuses[first:]), statuses
    assert all(row.field is None for row in result.rows[first:])
    assert result.output_status == "data-dependent"
    assert any("data-dependent" in note for note in result.rows[first].notes)


# ==============================================================================================
# (c) published numbers
# ==============================================================================================

PUBLISHED: dict[str, tuple[int, float | None, int]] = {
    # spec: (params, published GFLOPS (= GMACs) or None, digits published)
    "r2plus1d_18": (31_505_325, 40.52, 2),  # torchvision R2Plus1D_18_Weights.KINETICS400_V1
    "dcgan_generator": (3_576_704, None, 0),  # PyTorch DCGAN tutorial Generator (ngf=64)
    "deeplab_aspp": (16_130_837, None, 0),  # torchvision DeepLabHead(2048, 21), built above
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_numbers(name):
    params, gflops, digits = PUBLISHED[name]
    totals = evaluate(name).totals()
    assert totals.params == params
    if gflops is not None:
        assert round(totals.macs / 1e9, digits) == gflops


def test_r2plus1d_layer_spec_matches_the_network_rows(cli_json):
    """specs/layers/r2plus1d_conv.yaml (the `conv2plus1d` type) = the two conv3d rows of layer2.0.conv1."""
    data = cli_json(["layer", "--spec", str(SPECS / "layers" / "r2plus1d_conv.yaml")])
    rows = {row.name: row for row in evaluate("r2plus1d_18").rows}
    spatial, temporal = rows["layer2.0.conv1.0.0"], rows["layer2.0.conv1.0.3"]
    assert data["output_shape"] == list(temporal.output_shape) == [128, 8, 28, 28]
    assert data["macs"] == spatial.macs + temporal.macs == 2_215_772_160
    assert data["params"] == spatial.params + temporal.params == 220_800
    assert spatial.output_shape[0] == 230  # M from Tran et al.'s formula


def test_separable_seed_layer_spec(cli_json):
    data = cli_json(["layer", "--spec", str(SPECS / "layers" / "separable_seed.yaml")])
    assert data["output_shape"] == [128, 5, 5]
    assert data["macs"] == 3 * 3 * 3 * 5 * 5 + 128 * 3 * 5 * 5 == 10_275
    assert data["params"] == 27 + 384


def _library_rows() -> list[str]:
    """The rows of the one table of the "Reference library" section of specs/README.md."""
    text = (SPECS / "README.md").read_text()
    section = text[text.index("\n## Reference library\n") :]
    section = section[: section.index("\n## ", 1)]
    return [line for line in section.splitlines() if line.startswith("| [")]


def _leading_number(cell: str) -> int:
    """``27,161,264 (23,834,568 without AuxLogits)`` -> 27161264."""
    found = re.match(r"[\d,]+", cell)
    assert found, cell
    return int(found.group().replace(",", ""))


def test_library_table_matches_the_specs() -> None:
    """specs/README.md, "Reference library": one row per top-level spec (these networks and the
    ImageNet ones), and its convcalc columns are the specs' totals."""
    rows = _library_rows()
    names = []
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 8, line  # network | input | params | published | MACs | published | source | note
        name = re.search(r"\(([\w.]+)\.yaml\)", cells[0])
        assert name, line
        names.append(name.group(1))
        totals = evaluate(name.group(1)).totals()
        assert _leading_number(cells[2]) == totals.params, line
        assert _leading_number(cells[4]) == totals.macs, line
    assert sorted(names) == sorted(p.stem for p in SPECS.glob("*.yaml"))
    assert set(NAMES) <= set(names)
