"""torch.nn builds of three torchvision classifiers: efficientnet_b0, mobilenet_v3_large, densenet121.

Test support (no tests here): ``tests/test_library_zoo.py`` compares them with the specs of the
same names. torchvision does not import beside this torch, so the networks are rebuilt from
``torch.nn`` after torchvision's sources (``torchvision/models/efficientnet.py``,
``mobilenetv3.py``, ``densenet.py``, ``ops/misc.py``: ``Conv2dNormActivation``,
``SqueezeExcitation``; ``models/_utils.py``: ``_make_divisible``). Module paths are torchvision's
(``features.1.0.block.1.fc1``, ``features.denseblock1.denselayer1.conv1``,
``features.transition1.pool``), so every parameter has the name it has in torchvision's
``state_dict``; ``tests/test_library_zoo.py`` checks the totals against torchvision's published
``num_params``.

Deviations, all without parameters (so ``num_params`` is unchanged), each so that a forward hook
sees every operation convcalc counts as a row:

* a functional call in torchvision's ``forward`` is a small named module here: the residual
  ``result += input`` is ``Add`` named ``add``; the squeeze-and-excitation ``scale * input`` is
  ``Mul`` named ``multiply``; ``torch.flatten(x, 1)`` before the classifier is ``nn.Flatten``
  named ``flatten``; DenseNet's ``F.relu``/``F.adaptive_avg_pool2d`` after ``features`` are
  ``nn.ReLU``/``nn.AdaptiveAvgPool2d`` named ``relu``/``avgpool``; its ``torch.cat`` is ``Cat``
  named ``concat`` (see :class:`DenseLayer` for where);
* EfficientNet's ``StochasticDepth`` (the identity in eval mode) is ``nn.Identity`` named
  ``stochastic_depth``, registered only in blocks with a residual connection: torchvision
  registers one in every ``MBConv`` but calls it only when ``use_res_connect``, and the hooks
  require every leaf to run exactly once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from fractions import Fraction

import torch
from test_library_imagenet import Add, Cat, named
from torch import nn

Activation = Callable[[], nn.Module]


class Mul(nn.Module):
    """``scale * input`` of ``SqueezeExcitation.forward`` (convcalc: a ``multiply`` row)."""

    def forward(self, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return scale * x


def make_divisible(v: int | Fraction, divisor: int, min_value: int | None = None) -> int:
    """torchvision ``_make_divisible`` (from TensorFlow's MobileNet code): round ``v`` to the
    nearest multiple of ``divisor`` (halves up), at least ``min_value`` (default ``divisor``),
    and never more than 10 % below ``v``. Exact on integers and fractions (torchvision: floats)."""
    floor = divisor if min_value is None else min_value
    new_v = max(floor, int(v + Fraction(divisor, 2)) // divisor * divisor)
    if new_v < Fraction(9, 10) * v:
        new_v += divisor
    return new_v


def conv_norm_act(
    cin: int,
    cout: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    activation: Activation | None = nn.ReLU,
    eps: float = 1e-5,
) -> nn.Sequential:
    """torchvision ``Conv2dNormActivation``: a Sequential of ``0`` conv (no bias: a norm follows,
    padding ``(k - 1) // 2``), ``1`` BatchNorm2d, ``2`` the activation when there is one."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=eps),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision ``ops.SqueezeExcitation``: ``avgpool`` (adaptive to 1x1), ``fc1`` and ``fc2``
    (1x1 convs with bias), ``activation`` between them, ``scale_activation`` on the gate, then the
    gate times the input (``multiply``, functional in torchvision)."""

    def __init__(self, channels: int, squeeze: int, activation: Activation, scale_activation: Activation) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()
        self.multiply = Mul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return self.multiply(scale, x)  # type: ignore[no-any-return]


class InvertedBlock(nn.Module):
    """The shell of torchvision's ``MBConv`` (EfficientNet) and ``InvertedResidual``
    (MobileNetV3): ``block`` (an ``nn.Sequential``) plus, when the block keeps its shape
    (``use_res_connect``), the input added back (``add``), after ``stochastic_depth`` if given."""

    def __init__(self, block: nn.Sequential, use_res_connect: bool, stochastic_depth: bool) -> None:
        super().__init__()
        self.block = block
        self.use_res_connect = use_res_connect
        if use_res_connect:
            if stochastic_depth:
                self.stochastic_depth = nn.Identity()  # StochasticDepth(p, "row") in eval mode
            self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if not self.use_res_connect:
            return result  # type: ignore[no-any-return]
        if hasattr(self, "stochastic_depth"):
            result = self.stochastic_depth(result)
        return self.add(result, x)  # type: ignore[no-any-return]


# -- EfficientNet-B0 ------------------------------------------------------------------------------

EFFICIENTNET_B0 = (
    # torchvision bneck_conf(expand_ratio, kernel, stride, input_channels, out_channels, num_layers)
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def mbconv(expand_ratio: int, kernel: int, stride: int, cin: int, cout: int) -> InvertedBlock:
    """torchvision ``MBConv``: expand 1x1 (when the width changes), depthwise k x k, SE (squeeze
    to ``max(1, cin // 4)``, of the block's INPUT channels), project 1x1 without activation."""
    expanded = make_divisible(cin * expand_ratio, 8)
    layers: list[nn.Module] = []
    if expanded != cin:
        layers.append(conv_norm_act(cin, expanded, 1, activation=nn.SiLU))
    layers += [
        conv_norm_act(expanded, expanded, kernel, stride, groups=expanded, activation=nn.SiLU),
        SqueezeExcitation(expanded, max(1, cin // 4), nn.SiLU, nn.Sigmoid),
        conv_norm_act(expanded, cout, 1, activation=None),
    ]
    return InvertedBlock(nn.Sequential(*layers), stride == 1 and cin == cout, stochastic_depth=True)


def build_efficientnet_b0() -> nn.Module:
    """torchvision ``efficientnet_b0()``: width and depth multipliers 1.0, dropout 0.2."""
    stages: list[nn.Module] = []
    for expand_ratio, kernel, stride, cin, cout, count in EFFICIENTNET_B0:
        blocks = [mbconv(expand_ratio, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout) for i in range(count)]
        stages.append(nn.Sequential(*blocks))
    last_in = EFFICIENTNET_B0[-1][4]
    features = nn.Sequential(
        conv_norm_act(3, EFFICIENTNET_B0[0][3], 3, 2, activation=nn.SiLU),
        *stages,
        conv_norm_act(last_in, 4 * last_in, 1, activation=nn.SiLU),
    )
    return named(
        features=features, avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
        classifier=nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * last_in, 1000)),
    )  # fmt: skip


# -- MobileNetV3-Large ----------------------------------------------------------------------------

MOBILENET_V3_LARGE = (
    # torchvision bneck_conf(input_channels, kernel, expanded_channels, out_channels, use_se, activation, stride, dilation)
    (16, 3, 16, 16, False, "RE", 1, 1),
    (16, 3, 64, 24, False, "RE", 2, 1),
    (24, 3, 72, 24, False, "RE", 1, 1),
    (24, 5, 72, 40, True, "RE", 2, 1),
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 3, 240, 80, False, "HS", 2, 1),
    (80, 3, 200, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 480, 112, True, "HS", 1, 1),
    (112, 3, 672, 112, True, "HS", 1, 1),
    (112, 5, 672, 160, True, "HS", 2, 1),
    (160, 5, 960, 160, True, "HS", 1, 1),
    (160, 5, 960, 160, True, "HS", 1, 1),
)
MOBILENET_V3_BN_EPS = 0.001
"""torchvision: ``partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)`` (changes no count)."""


def inverted_residual_v3(cin: int, kernel: int, expanded: int, cout: int, use_se: bool, activation: str, stride: int) -> InvertedBlock:
    """torchvision ``mobilenetv3.InvertedResidual``: expand 1x1 (when ``expanded != cin``),
    depthwise, SE (squeeze to ``_make_divisible(expanded // 4, 8)``, ReLU, hardsigmoid gate) when
    ``use_se``, project 1x1; hardswish where the table says "HS", else ReLU."""
    act: Activation = nn.Hardswish if activation == "HS" else nn.ReLU
    eps = MOBILENET_V3_BN_EPS
    layers: list[nn.Module] = []
    if expanded != cin:
        layers.append(conv_norm_act(cin, expanded, 1, activation=act, eps=eps))
    layers.append(conv_norm_act(expanded, expanded, kernel, stride, groups=expanded, activation=act, eps=eps))
    if use_se:
        layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8), nn.ReLU, nn.Hardsigmoid))
    layers.append(conv_norm_act(expanded, cout, 1, activation=None, eps=eps))
    return InvertedBlock(nn.Sequential(*layers), stride == 1 and cin == cout, stochastic_depth=False)


def build_mobilenet_v3_large() -> nn.Module:
    """torchvision ``mobilenet_v3_large()``: width 1.0, no dilation, full tail, dropout 0.2."""
    blocks = [inverted_residual_v3(cin, k, e, c, se, act, s) for cin, k, e, c, se, act, s, _dilation in MOBILENET_V3_LARGE]
    last_in, last_channel = MOBILENET_V3_LARGE[-1][3], make_divisible(1280, 8)
    eps = MOBILENET_V3_BN_EPS
    features = nn.Sequential(
        conv_norm_act(3, MOBILENET_V3_LARGE[0][0], 3, 2, activation=nn.Hardswish, eps=eps),
        *blocks,
        conv_norm_act(last_in, 6 * last_in, 1, activation=nn.Hardswish, eps=eps),
    )
    classifier = nn.Sequential(
        nn.Linear(6 * last_in, last_channel), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(last_channel, 1000)
    )
    return named(features=features, avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), classifier=classifier)


# -- DenseNet-121 ---------------------------------------------------------------------------------


class DenseLayer(nn.Module):
    """torchvision ``_DenseLayer`` (BN-ReLU-1x1 conv to ``bn_size * growth_rate``, BN-ReLU-3x3
    conv to ``growth_rate``), followed by ``concat``: the layer's input and its new features.

    Where the concatenation runs: torchvision (since 0.8) keeps a list of all earlier feature
    maps, concatenates the list at the start of every layer (``bn_function``) and once more at the
    end of the block; before 0.8 ``_DenseBlock.forward`` did ``torch.cat([features,
    new_features], 1)`` after each layer. Both give every layer the same input tensor and the
    block the same output; this build uses the second form, with the cat inside the layer (the
    form the spec writes as a residual merged by ``concat``), so each block has one ``concat``
    per layer and its output is the last layer's ``concat``.
    """

    def __init__(self, cin: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.concat = Cat()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))
        return self.concat(x, new)  # type: ignore[no-any-return]


def build_densenet121(growth_rate: int = 32, block_config: tuple[int, ...] = (6, 12, 24, 16), num_init_features: int = 64, bn_size: int = 4) -> nn.Module:
    """torchvision ``densenet121()`` (``DenseNet(32, (6, 12, 24, 16), 64)``, drop_rate 0)."""
    features: OrderedDict[str, nn.Module] = OrderedDict(
        conv0=nn.Conv2d(3, num_init_features, 7, 2, 3, bias=False),
        norm0=nn.BatchNorm2d(num_init_features),
        relu0=nn.ReLU(),
        pool0=nn.MaxPool2d(3, 2, 1),
    )
    channels = num_init_features
    for i, num_layers in enumerate(block_config):
        layers = OrderedDict((f"denselayer{j + 1}", DenseLayer(channels + j * growth_rate, growth_rate, bn_size)) for j in range(num_layers))
        features[f"denseblock{i + 1}"] = nn.Sequential(layers)
        channels += num_layers * growth_rate
        if i != len(block_config) - 1:
            features[f"transition{i + 1}"] = named(
                norm=nn.BatchNorm2d(channels), relu=nn.ReLU(),
                conv=nn.Conv2d(channels, channels // 2, 1, bias=False), pool=nn.AvgPool2d(2, 2),
            )  # fmt: skip
            channels //= 2
    features["norm5"] = nn.BatchNorm2d(channels)
    return named(
        features=nn.Sequential(features), relu=nn.ReLU(), avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
        classifier=nn.Linear(channels, 1000),
    )  # fmt: skip


ZOO: dict[str, Callable[[], nn.Module]] = {
    "efficientnet_b0": build_efficientnet_b0,
    "mobilenet_v3_large": build_mobilenet_v3_large,
    "densenet121": build_densenet121,
}
"""Spec name -> builder (input 3x224x224 for all three)."""


def flop_counter_macs(model: nn.Module, input_shape: tuple[int, ...] = (3, 224, 224)) -> tuple[int, dict[str, int]]:
    """Multiply-accumulates of convolutions and linear layers for one sample in eval mode, as
    PyTorch's ``FlopCounterMode`` counts them (2 FLOPs per multiply-accumulate): the total and
    the count of every module path that did any (``features.0.0``, ``features.0``, ...)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    flops = counter.get_total_flops()
    assert flops % 2 == 0, flops
    root = type(model).__name__ + "."  # FlopCounterMode prefixes paths with the root's class name
    per_module = {}
    for key, counts in counter.get_flop_counts().items():
        if key.startswith(root):
            module_flops = sum(counts.values())
            assert module_flops % 2 == 0, (key, module_flops)
            per_module[key.removeprefix(root)] = module_flops // 2
    return flops // 2, per_module
