"""Small PyTorch reference models for the ONNX import tests (built from torch.nn only)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: the same ReLU module is called twice."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeExcitation(nn.Module):
    """torchvision's SqueezeExcitation: 1x1 convs, ReLU, Hardsigmoid gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class SeparableSE(nn.Module):
    """Depthwise-separable blocks with SE gates, SiLU and Hardswish (MobileNetV3/EfficientNet style)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False)
        self.bn_dw = nn.BatchNorm2d(16)
        self.act = nn.SiLU()
        self.se = SqueezeExcitation(16, 8)
        self.pw = nn.Conv2d(16, 24, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(24)
        self.dw2 = nn.Conv2d(24, 48, 5, 2, 2, groups=24)
        self.relu6 = nn.ReLU6()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(48, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.se(self.act(self.bn_dw(self.dw(x))))
        x = self.relu6(self.dw2(self.bn_pw(self.pw(x))))
        return self.head(x)


class GroupedDilated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 32, 3, padding=2, dilation=2)
        self.grouped = nn.Conv2d(32, 64, 3, stride=2, padding=1, groups=4, bias=False)
        self.gn = nn.GroupNorm(8, 64)
        self.act = nn.LeakyReLU(0.1)
        self.atrous = nn.Conv2d(64, 64, (3, 5), padding=(4, 8), dilation=(4, 4), groups=8)
        self.prelu = nn.PReLU(64)
        self.pool = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.prelu(self.atrous(self.act(self.gn(self.grouped(self.conv1(x)))))))


class Generator(nn.Module):
    """Transposed convolutions with output_padding (DCGAN-like), tanh."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(16, 32, 4, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU()
        self.up2 = nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1)
        self.up3 = nn.ConvTranspose2d(16, 8, (3, 5), (2, 3), (1, 2), output_padding=(1, 2), groups=2)
        self.out = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.up3(self.relu(self.up2(self.relu(self.bn1(self.up1(x)))))))


class Inception(nn.Module):
    """Parallel branches concatenated (GoogLeNet-like), a ceil-mode max pool."""

    def __init__(self) -> None:
        super().__init__()
        self.branch1 = nn.Conv2d(8, 8, 1)
        self.branch2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1))
        self.branch3 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), nn.Conv2d(8, 4, 1))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], 1))


class ShuffleUnit(nn.Module):
    """ShuffleNetV2-style channel split with torch.chunk and torch.split, then concat."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1, groups=8))
        self.conv = nn.Conv2d(16, 12, 1)
        self.tail = nn.Conv2d(5, 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        x = self.conv(torch.cat([a, self.branch(b)], 1))
        small, big = torch.split(x, [7, 5], dim=1)
        return torch.cat([F.relu(small)[:, :, 1:-1, 1:-1], self.tail(big)], 1)


class UNetTiny(nn.Module):
    """Upsampling (nearest and bilinear), skip concatenation, reflection padding."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.MaxPool2d(2)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.pad = nn.ReflectionPad2d(1)
        self.dec = nn.Conv2d(16, 4, 3)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        m = self.up(self.mid(self.down(e)))
        d = self.dec(self.pad(torch.cat([m, e], 1)))
        return self.shuffle(self.up2(d))


class Net1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(4, 16, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm1d(16)
        self.act = nn.GELU()
        self.pool = nn.MaxPool1d(3, 2)
        self.conv2 = nn.Conv1d(16, 16, 3, dilation=2, groups=4)
        self.norm = nn.InstanceNorm1d(16, affine=True)
        self.avg = nn.AdaptiveAvgPool1d(1)
        self.ln = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 3)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv2(self.pool(self.act(self.bn(self.conv1(x))))))
        return self.softmax(self.fc(self.ln(self.avg(x).flatten(1))))


class Net3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.conv2 = nn.Conv3d(8, 16, 3, padding=1, groups=2)
        self.avg = nn.AvgPool3d(2)
        self.up = nn.ConvTranspose3d(16, 4, 2, 2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        return self.head(self.up(self.avg(self.conv2(x))))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's (and torchvision's) channel shuffle: view, transpose, reshape."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class LinearSE(nn.Module):
    """Squeeze-and-excitation built from nn.Linear: the gate is viewed back to N x C x 1 x 1."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, squeeze)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(squeeze, channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        scale = self.gate(self.fc2(self.relu(self.fc1(torch.flatten(self.pool(x), 1)))))
        return x * scale.view(n, c, 1, 1)


class GeluShuffleSE(nn.Module):
    """GELU (exact and tanh: subgraphs below opset 20), a linear SE gate, a grouped 1x1 conv and
    the channel shuffle after it (ShuffleNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.act = nn.GELU()
        self.se = LinearSE(12, 4)
        self.pw = nn.Conv2d(12, 12, 1, groups=3, bias=False)
        self.act2 = nn.GELU(approximate="tanh")
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.act(self.conv(x)))
        return self.head(self.act2(channel_shuffle(self.pw(x), 3)))


MODELS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "residual": (ResNetTiny, (1, 3, 32, 32)),
    "separable_se": (SeparableSE, (1, 3, 32, 32)),
    "grouped_dilated": (GroupedDilated, (1, 4, 20, 20)),
    "transposed": (Generator, (1, 16, 1, 1)),
    "concat": (Inception, (1, 8, 15, 15)),
    "channel_split": (ShuffleUnit, (1, 16, 10, 10)),
    "upsample": (UNetTiny, (1, 3, 16, 16)),
    "net1d": (Net1d, (1, 4, 64)),
    "net3d": (Net3d, (1, 3, 8, 32, 32)),
    "gelu_shuffle_se": (GeluShuffleSE, (1, 3, 10, 10)),
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The model in eval mode with randomised BatchNorm statistics (as a trained model has), and an input."""
    cls, shape = MODELS[name]
    torch.manual_seed(0)
    model = cls().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model, torch.randn(shape)
