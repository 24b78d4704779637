"""fcn_resnet50, deeplabv3_resnet50 and their shared dilated ResNet-50 backbone
(specs/include/dilated_resnet50.yaml).

The reference is a ``torch.nn`` build of torchvision's ``fcn_resnet50(aux_loss=True)`` and
``deeplabv3_resnet50(aux_loss=True)`` with their module paths (torchvision does not import here):
``resnet50(replace_stride_with_dilation=[False, True, True])`` as in torchvision's ``_make_layer``
(the stride of layer3/layer4 becomes dilation, the first block keeping the previous dilation),
``FCNHead`` or ``DeepLabHead`` (ASPP with rates 12, 24, 36) on layer4 and ``FCNHead`` on layer3,
both outputs upsampled to the input size. It runs on the ``meta`` device (shapes and
FlopCounterMode's counts without computing), so the published 3x520x520 size costs nothing.
Checked: the torch builds have torchvision's published ``num_params`` and GFLOPS (FCN 35,322,218
and 152.717; DeepLabV3 42,004,074 and 178.722); convcalc's rows agree with them layer by layer
by name (output shape, params, MACs).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

torch = pytest.importorskip("torch")
from test_library_imagenet import (  # noqa: E402
    Cat,
    Graph,
    _projection,
    _residual,
    bag,
    compare_layers,
    conv,
    leaves,
    named,
    net_doc,
    rounded,
    rows_of,
    total,
)
from torch import nn  # noqa: E402

INPUT = (3, 520, 520)
PUBLISHED = {  # torchvision *_Weights.COCO_WITH_VOC_LABELS_V1: num_params, GFLOPS
    "fcn_resnet50": (35_322_218, "152.717"),
    "deeplabv3_resnet50": (42_004_074, "178.722"),
}


def dilated_bottleneck(cin: int, planes: int, stride: int, dilation: int) -> tuple[nn.Module, int]:
    out = planes * 4
    mods = bag(
        conv1=conv(cin, planes, 1), bn1=nn.BatchNorm2d(planes), relu1=nn.ReLU(),
        conv2=nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False),
        bn2=nn.BatchNorm2d(planes), relu2=nn.ReLU(), conv3=conv(planes, out, 1), bn3=nn.BatchNorm2d(out),
    )  # fmt: skip
    return _residual(mods, _projection(cin, out, stride), {"relu": nn.ReLU()}), out


def dilated_resnet50() -> nn.Module:
    """torchvision ResNet._make_layer with replace_stride_with_dilation=[False, True, True]."""
    stages: dict[str, nn.Module] = {}
    cin, dilation = 64, 1
    for index, (planes, count, dilate) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), (False, False, True, True), strict=True)):
        stride = 1 if index == 0 else 2
        previous = dilation
        if dilate:
            dilation *= stride
            stride = 1
        units = []
        for i in range(count):
            unit, cin = dilated_bottleneck(cin, planes, stride if i == 0 else 1, previous if i == 0 else dilation)
            units.append(unit)
        stages[f"layer{index + 1}"] = nn.Sequential(*units)
    return named(conv1=conv(3, 64, 7, 2, 3), bn1=nn.BatchNorm2d(64), relu=nn.ReLU(), maxpool=nn.MaxPool2d(3, 2, 1), **stages)


def fcn_head(cin: int, classes: int) -> nn.Module:
    """torchvision.models.segmentation.fcn.FCNHead."""
    inter = cin // 4
    return nn.Sequential(conv(cin, inter, 3, 1, 1), nn.BatchNorm2d(inter), nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(inter, classes, 1))


def deeplab_head(cin: int, classes: int, rates: tuple[int, ...] = (12, 24, 36)) -> nn.Module:
    """torchvision.models.segmentation.deeplabv3.DeepLabHead: ASPP (a 1x1 branch, one atrous 3x3
    per rate, ASPPPooling, concatenated, then project), 3x3 conv, BN, ReLU, 1x1 classifier.
    ASPPPooling's functional F.interpolate back to the map is the module ``upsample`` here, and
    the ``torch.cat`` the module ``concat``, so the hooks see them."""
    side = -(-INPUT[1] // 8)  # output stride 8, each halving rounding up: 520 -> 65
    pooling = named(
        **{"0": nn.AdaptiveAvgPool2d(1), "1": conv(cin, 256, 1), "2": nn.BatchNorm2d(256), "3": nn.ReLU()},
        upsample=nn.Upsample(size=(side, side), mode="bilinear", align_corners=False),
    )
    branches = [nn.Sequential(conv(cin, 256, 1), nn.BatchNorm2d(256), nn.ReLU())]
    branches += [
        nn.Sequential(nn.Conv2d(cin, 256, 3, padding=rate, dilation=rate, bias=False), nn.BatchNorm2d(256), nn.ReLU())
        for rate in rates
    ]
    mods = {str(i): m for i, m in enumerate([*branches, pooling])}
    convs = Graph({**mods, "concat": Cat()}, [[name] for name in mods], "concat")
    project = nn.Sequential(conv(5 * 256, 256, 1), nn.BatchNorm2d(256), nn.ReLU(), nn.Dropout(0.5))
    aspp = named(convs=convs, project=project)
    return nn.Sequential(aspp, conv(256, 256, 3, 1, 1), nn.BatchNorm2d(256), nn.ReLU(), nn.Conv2d(256, classes, 1))


HEADS: dict[str, Callable[[int, int], nn.Module]] = {"fcn_resnet50": fcn_head, "deeplabv3_resnet50": deeplab_head}


class Segmentation(nn.Module):
    """torchvision _SimpleSegmentationModel: the aux head (an FCNHead on layer3) runs in every
    forward (eval mode too); ``head`` builds the main classifier on layer4."""

    def __init__(self, head: Callable[[int, int], nn.Module], classes: int = 21) -> None:
        super().__init__()
        self.backbone = dilated_resnet50()
        self.classifier = head(2048, classes)
        self.aux_classifier = fcn_head(1024, classes)
        self.upsample = nn.Upsample(size=INPUT[1:], mode="bilinear", align_corners=False)
        self.aux_upsample = nn.Upsample(size=INPUT[1:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"):
            x = self.backbone._modules[name](x)  # type: ignore[misc]
        aux = self.aux_upsample(self.aux_classifier(x))
        out = self.upsample(self.classifier(self.backbone.layer4(x)))
        return out + 0 * aux.sum()  # both heads run, as in torchvision's forward


Facts = tuple[int, int, dict[str, tuple[int, ...]], dict[str, int], dict[str, int]]
"""Total params, total MACs, and per leaf module (by path): output shape, params, MACs."""


def torch_facts(name: str) -> Facts:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = Segmentation(HEADS[name]).eval()
        x = torch.zeros(1, *INPUT)
    named_leaves = dict(leaves(model))
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, m in named_leaves.items()
    ]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    for handle in handles:
        handle.remove()
    per_module = {k.removeprefix("Segmentation."): sum(v.values()) // 2 for k, v in counter.get_flop_counts().items()}
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in named_leaves.items()}
    macs = {n: per_module.get(n, 0) for n in named_leaves}
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, shapes, params, macs


@pytest.fixture(scope="module", params=list(HEADS))
def facts(request: pytest.FixtureRequest) -> tuple[str, Facts]:
    return request.param, torch_facts(request.param)


def test_torch_build_has_torchvision_published_numbers(facts: tuple[str, Facts]) -> None:
    name, (params, macs, shapes, _, _) = facts
    assert params == PUBLISHED[name][0]
    assert rounded(macs, 10**9, PUBLISHED[name][1]) == Decimal(PUBLISHED[name][1])
    assert shapes["backbone.layer4.2.relu"] == (2048, 65, 65)  # output stride 8: 520 -> 65
    assert shapes["backbone.layer3.0.downsample.0"] == (1024, 65, 65)  # a stride-1 projection remains


def test_spec_agrees_with_the_torch_build_layer_by_layer(facts: tuple[str, Facts], run_cli: Callable[..., object]) -> None:
    name, (params, macs, shapes, leaf_params, leaf_macs) = facts
    doc = net_doc(name, run_cli)
    assert (total(doc, "params"), total(doc, "macs")) == (params, macs)
    rows = rows_of(doc)
    problems = compare_layers(rows, shapes)
    assert not problems, "\n".join(problems[:20])
    by_name = {str(r["name"]): r for r in rows}
    wrong = [n for n in shapes if (int(by_name[n]["params"]), int(by_name[n]["macs"])) != (leaf_params[n], leaf_macs[n])]  # type: ignore[call-overload]
    assert not wrong, wrong[:20]


@pytest.mark.parametrize("name", list(HEADS))
def test_the_segmentation_specs_share_the_backbone_file(name: str) -> None:
    from test_library_imagenet import spec

    from convcalc.network.spec import load_network

    network = load_network(spec(name))
    assert network.templates["dilated_resnet50"].where.file.endswith("specs/include/dilated_resnet50.yaml")
    assert network.templates["bottleneck"].where.file.endswith("specs/include/dilated_resnet50.yaml")
