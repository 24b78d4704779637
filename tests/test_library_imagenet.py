"""The ImageNet reference library (``specs/*.yaml``): checks, torch builds and published numbers.

(a) Every spec evaluates and its ``expect`` entries hold (``convcalc check``).

(b) Each network is rebuilt here from ``torch.nn`` (compact builders written for this test, not
    generated from the YAML; torchvision is not importable beside this torch) and run on zeros of
    the real input size under ``torch.no_grad()``. Compared with convcalc's ``net --format json``
    document (or, while that command is not wired, the same fields from the Python API):

    * the total parameters, ``sum(p.numel())`` (BN counts 2·C: running statistics are buffers);
    * the output shape of EVERY layer. The mapping is by name: the builders give each torch module
      the dotted path convcalc gives the corresponding row (``layer3.0.conv2``, ``Mixed_6b.branch7x7_2.conv``,
      merges are tiny ``Add``/``Cat`` modules named ``add``/``concat``). Forward hooks on the
      "leaf" modules (no children, or one of the composite classes in ``ATOMIC``, e.g. a separable
      conv that convcalc counts as one row) record each output shape; every leaf must run exactly
      once. Then every torch leaf must name a convcalc row with the same shape, and every convcalc
      row must be covered. A row or module without a partner fails the test, so nothing is compared
      "roughly in order". (ShuffleNetV2's channel split ``x1, x2 = x.chunk(2, dim=1)`` is two small
      ``Chunk`` modules here, matching the spec's two ``chunk`` rows ``x1`` and ``x2``.)

(c) The published-number table: convcalc's params equal the published count exactly and its MACs
    round to the published GFLOPS at the digits published (torchvision's ``_ops`` metadata has
    three decimals, its docs table two; both are checked). Paper-only networks are checked at
    the precision the paper gives.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import torch
from torch import nn

from convcalc.network.check import check_file
from convcalc.network.evaluate import evaluate_file

SPECS = Path(__file__).resolve().parent.parent / "specs"
NAMES = (
    "alexnet",
    "alexnet_original",
    "vgg16",
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "mobilenet_v1",
    "mobilenet_v2",
    "shufflenet_v1_g3",
    "shufflenet_v2_x1_0",
    "xception",
    "googlenet",
    "inception_v3",
)
MERGE_TYPES = ("add", "concat", "multiply")


def spec(name: str) -> str:
    return str(SPECS / f"{name}.yaml")


# ----------------------------------------------------------------------------------------------
# convcalc's side: the JSON document of `convcalc net`
# ----------------------------------------------------------------------------------------------

_DOCS: dict[str, dict[str, object]] = {}


def _net_command_available() -> bool:
    return importlib.util.find_spec("convcalc.cli.net") is not None


def _shape(value: object) -> tuple[int, ...]:
    if isinstance(value, str):
        return tuple(int(v) for v in value.replace("×", "x").split("x") if v.strip())
    assert isinstance(value, (list, tuple)), value
    return tuple(int(v) for v in value)


def net_doc(name: str, run_cli: Callable[..., object]) -> dict[str, object]:
    """``convcalc net SPEC --format json`` (the Python API's same fields until ``net`` exists)."""
    if name in _DOCS:
        return _DOCS[name]
    if _net_command_available():
        result = run_cli(["net", spec(name), "--format", "json"])
        assert result.code == 0, result.output  # type: ignore[attr-defined]
        doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    else:
        net = evaluate_file(spec(name))
        totals = net.totals()
        doc = {
            "name": net.name,
            "input_shape": list(net.input_shape),
            "output_shape": list(net.output_shape),
            "totals": {"params": totals.params, "macs": totals.macs, "flops": totals.flops},
            "layers": [
                {
                    "name": row.name,
                    "type": row.type,
                    "input_shape": [list(s) for s in row.input_shapes],
                    "output_shape": list(row.output_shape),
                    "params": row.params,
                    "macs": row.macs,
                }
                for row in net.rows
            ],
        }
    _DOCS[name] = doc
    return doc


def rows_of(doc: dict[str, object]) -> list[dict[str, object]]:
    rows = doc["layers"]
    assert isinstance(rows, list)
    return rows


def total(doc: dict[str, object], key: str) -> int:
    totals = doc["totals"]
    assert isinstance(totals, dict)
    return int(totals[key])


# ----------------------------------------------------------------------------------------------
# (a) convcalc check
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_spec_passes_its_expectations(name: str) -> None:
    result = check_file(spec(name))
    assert result.error is None, f"{name}: {result.error}"
    failed = [e.message for e in result.expectations if not e.ok]
    assert not failed, failed
    wanted = {"params", "output_shape"}
    assert wanted <= {e.what for e in result.expectations}, f"{name} should pin params and output_shape"


def test_check_command_exits_0_on_the_library() -> None:
    if importlib.util.find_spec("convcalc.cli.net") is None:
        pytest.skip("`convcalc check` is not wired yet (convcalc.cli.net missing); the API check above covers it")
    done = subprocess.run(
        [sys.executable, "-m", "convcalc", "check", *(spec(n) for n in NAMES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------------------------
# (b) torch builders
# ----------------------------------------------------------------------------------------------


class Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Cat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Chunk(nn.Module):
    """``x.chunk(chunks, dim=1)[index]`` as a module, so the hook sees it (convcalc: a ``chunk`` row)."""

    def __init__(self, chunks: int, index: int) -> None:
        super().__init__()
        self.chunks, self.index = chunks, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.chunks, dim=1)[self.index]


class GlobalAvg(nn.Module):
    """``x.mean([2, 3])`` (torchvision ShuffleNetV2, Keras GlobalAveragePooling2D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class SepConv(nn.Module):
    """Keras SeparableConv2D: 3x3 depthwise then 1x1 pointwise, no bias, nothing in between."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ShuffleGConv(nn.Sequential):
    """ShuffleNet's 1x1 group conv followed by the channel shuffle (convcalc: shuffle_grouped2d)."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 1, groups=groups, bias=False), nn.ChannelShuffle(groups))


ATOMIC = (SepConv, ShuffleGConv)
"""Composite modules that convcalc counts as one row: hooked as a whole, children ignored."""


class Graph(nn.Module):
    """Children run along ``paths`` (lists of child names, each from the block input; ``[]`` is
    the identity), merged by the child named ``merge``, then the ``tail`` children in order.
    Without ``paths`` the children simply run in sequence."""

    def __init__(
        self,
        mods: dict[str, nn.Module],
        paths: list[list[str]] | None = None,
        merge: str | None = None,
        tail: Iterable[str] = (),
    ) -> None:
        super().__init__()
        for name, module in mods.items():
            self.add_module(name, module)
        self.paths = paths if paths is not None else [list(mods)]
        self.merge = merge
        self.tail = list(tail)

    def run(self, names: Iterable[str], x: torch.Tensor) -> torch.Tensor:
        for name in names:
            x = self._modules[name](x)  # type: ignore[misc]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.run(path, x) for path in self.paths]
        y = self._modules[self.merge](*outputs) if self.merge else outputs[0]  # type: ignore[misc]
        return self.run(self.tail, y)


class SideBranch(nn.Sequential):
    """Runs its children on the input (a training-only head) and passes the input on unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        super().forward(x)
        return x


def named(**mods: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(mods))


def bag(**mods: nn.Module) -> dict[str, nn.Module]:
    """Named modules in order (keyword arguments keep their order)."""
    return mods


def conv(
    cin: int, cout: int, k: int | tuple[int, int], s: int = 1, p: int | tuple[int, int] = 0, g: int = 1, bias: bool = False
) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, s, p, groups=g, bias=bias)


# -- AlexNet, VGG ---------------------------------------------------------------------------------


def build_alexnet() -> nn.Module:
    features = nn.Sequential(
        conv(3, 64, 11, 4, 2, bias=True), nn.ReLU(), nn.MaxPool2d(3, 2),
        conv(64, 192, 5, 1, 2, bias=True), nn.ReLU(), nn.MaxPool2d(3, 2),
        conv(192, 384, 3, 1, 1, bias=True), nn.ReLU(),
        conv(384, 256, 3, 1, 1, bias=True), nn.ReLU(),
        conv(256, 256, 3, 1, 1, bias=True), nn.ReLU(), nn.MaxPool2d(3, 2),
    )  # fmt: skip
    classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000)
    )
    return named(features=features, avgpool=nn.AdaptiveAvgPool2d(6), flatten=nn.Flatten(), classifier=classifier)


def build_alexnet_original() -> nn.Module:
    """Caffe bvlc_alexnet: groups=2 on conv2/4/5, LRN after conv1/conv2, 227x227 input."""
    return named(
        conv1=conv(3, 96, 11, 4, bias=True), relu1=nn.ReLU(), norm1=nn.LocalResponseNorm(5, 1e-4, 0.75),
        pool1=nn.MaxPool2d(3, 2, ceil_mode=True),
        conv2=conv(96, 256, 5, 1, 2, g=2, bias=True), relu2=nn.ReLU(), norm2=nn.LocalResponseNorm(5, 1e-4, 0.75),
        pool2=nn.MaxPool2d(3, 2, ceil_mode=True),
        conv3=conv(256, 384, 3, 1, 1, bias=True), relu3=nn.ReLU(),
        conv4=conv(384, 384, 3, 1, 1, g=2, bias=True), relu4=nn.ReLU(),
        conv5=conv(384, 256, 3, 1, 1, g=2, bias=True), relu5=nn.ReLU(),
        pool5=nn.MaxPool2d(3, 2, ceil_mode=True), flatten=nn.Flatten(),
        fc6=nn.Linear(9216, 4096), relu6=nn.ReLU(), drop6=nn.Dropout(),
        fc7=nn.Linear(4096, 4096), relu7=nn.ReLU(), drop7=nn.Dropout(),
        fc8=nn.Linear(4096, 1000),
    )  # fmt: skip


def build_vgg16() -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            assert isinstance(v, int)
            layers += [conv(cin, v, 3, 1, 1, bias=True), nn.ReLU()]
            cin = v
    classifier = nn.Sequential(
        nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000)
    )
    return named(features=nn.Sequential(*layers), avgpool=nn.AdaptiveAvgPool2d(7), flatten=nn.Flatten(), classifier=classifier)


# -- ResNet family ------------------------------------------------------------------------------


def _residual(mods: dict[str, nn.Module], shortcut: nn.Module | None, tail: dict[str, nn.Module]) -> Graph:
    body = list(mods)
    if shortcut is not None:
        mods["downsample"] = shortcut
    return Graph({**mods, "add": Add(), **tail}, [body, ["downsample"] if shortcut is not None else []], "add", list(tail))


def _projection(cin: int, cout: int, stride: int) -> nn.Module | None:
    return nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None


def basic_block(cin: int, planes: int, stride: int) -> tuple[nn.Module, int]:
    mods = bag(
        conv1=conv(cin, planes, 3, stride, 1), bn1=nn.BatchNorm2d(planes), relu1=nn.ReLU(),
        conv2=conv(planes, planes, 3, 1, 1), bn2=nn.BatchNorm2d(planes),
    )  # fmt: skip
    return _residual(mods, _projection(cin, planes, stride), {"relu": nn.ReLU()}), planes


def bottleneck(cin: int, planes: int, stride: int, groups: int = 1, base_width: int = 64) -> tuple[nn.Module, int]:
    width, out = planes * base_width // 64 * groups, planes * 4
    mods = bag(
        conv1=conv(cin, width, 1), bn1=nn.BatchNorm2d(width), relu1=nn.ReLU(),
        conv2=conv(width, width, 3, stride, 1, g=groups), bn2=nn.BatchNorm2d(width), relu2=nn.ReLU(),
        conv3=conv(width, out, 1), bn3=nn.BatchNorm2d(out),
    )  # fmt: skip
    return _residual(mods, _projection(cin, out, stride), {"relu": nn.ReLU()}), out


def build_resnet(block: Callable[..., tuple[nn.Module, int]], counts: tuple[int, ...], **kw: int) -> nn.Module:
    stages: dict[str, nn.Module] = {}
    cin = 64
    for index, (planes, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
        units = []
        for i in range(count):
            unit, cin = block(cin, planes, 2 if i == 0 and index > 0 else 1, **kw)
            units.append(unit)
        stages[f"layer{index + 1}"] = nn.Sequential(*units)
    return named(
        conv1=conv(3, 64, 7, 2, 3), bn1=nn.BatchNorm2d(64), relu=nn.ReLU(), maxpool=nn.MaxPool2d(3, 2, 1),
        **stages, avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(cin, 1000),
    )  # fmt: skip


# -- MobileNets -----------------------------------------------------------------------------------


def build_mobilenet_v1() -> nn.Module:
    outs = (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
    strides = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    units, cin = [], 32
    for out, stride in zip(outs, strides, strict=True):
        unit = named(
            dw=conv(cin, cin, 3, stride, 1, g=cin), dw_bn=nn.BatchNorm2d(cin), dw_relu=nn.ReLU6(),
            pw=conv(cin, out, 1), pw_bn=nn.BatchNorm2d(out), pw_relu=nn.ReLU6(),
        )  # fmt: skip
        units.append(unit)
        cin = out
    return named(
        conv1=conv(3, 32, 3, 2, 1), conv1_bn=nn.BatchNorm2d(32), conv1_relu=nn.ReLU6(), block=nn.Sequential(*units),
        avgpool=nn.AdaptiveAvgPool2d(1), dropout=nn.Dropout(1e-3), conv_preds=conv(1024, 1000, 1, bias=True),
        reshape=nn.Flatten(),
    )  # fmt: skip


def _cbr(cin: int, cout: int, k: int, s: int = 1, g: int = 1, act: type[nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    mods: dict[str, nn.Module] = {"conv": conv(cin, cout, k, s, k // 2, g=g), "bn": nn.BatchNorm2d(cout)}
    if act is not None:
        mods["relu"] = act()
    return named(**mods)


def build_mobilenet_v2() -> nn.Module:
    table = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    stages: dict[str, nn.Module] = {}
    cin = 32
    for index, (t, c, n, s) in enumerate(table):
        units = []
        for i in range(n):
            stride, hidden = (s if i == 0 else 1), cin * t
            mods: dict[str, nn.Module] = {"expand": _cbr(cin, hidden, 1)} if t != 1 else {}
            mods |= {"dw": _cbr(hidden, hidden, 3, stride, g=hidden), "project": _cbr(hidden, c, 1, act=None)}
            if stride == 1 and cin == c:
                units.append(Graph({**mods, "add": Add()}, [list(mods), []], "add"))
            else:
                units.append(Graph(mods))
            cin = c
        stages[f"block{index + 1}"] = nn.Sequential(*units)
    return named(
        stem=_cbr(3, 32, 3, 2), **stages, head=_cbr(320, 1280, 1), avgpool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(), dropout=nn.Dropout(0.2), classifier=nn.Linear(1280, 1000),
    )  # fmt: skip


# -- ShuffleNets ----------------------------------------------------------------------------------


def build_shufflenet_v1_g3() -> nn.Module:
    g, stages, cin = 3, {}, 24
    for index, (out, count) in enumerate(((240, 4), (480, 8), (960, 4))):
        mid, units = out // 4, []
        for i in range(count):
            if i == 0:  # stride 2: avg-pooled input concatenated with a main branch of out - cin channels
                first: nn.Module = conv(cin, mid, 1) if index == 0 else ShuffleGConv(cin, mid, g)
                main = named(
                    **{"conv1" if index == 0 else "gconv1": first}, bn1=nn.BatchNorm2d(mid), relu1=nn.ReLU(),
                    dwconv=conv(mid, mid, 3, 2, 1, g=mid), bn2=nn.BatchNorm2d(mid),
                    gconv2=conv(mid, out - cin, 1, g=g), bn3=nn.BatchNorm2d(out - cin),
                )  # fmt: skip
                mods = {"shortcut": nn.AvgPool2d(3, 2, 1), "main": main, "concat": Cat(), "relu": nn.ReLU()}
                units.append(Graph(mods, [["shortcut"], ["main"]], "concat", ["relu"]))
            else:
                body = bag(
                    gconv1=ShuffleGConv(out, mid, g), bn1=nn.BatchNorm2d(mid), relu1=nn.ReLU(),
                    dwconv=conv(mid, mid, 3, 1, 1, g=mid), bn2=nn.BatchNorm2d(mid),
                    gconv2=conv(mid, out, 1, g=g), bn3=nn.BatchNorm2d(out),
                )  # fmt: skip
                units.append(_residual(body, None, {"relu": nn.ReLU()}))
            cin = out
        stages[f"stage{index + 2}"] = nn.Sequential(*units)
    return named(
        conv1=conv(3, 24, 3, 2, 1), bn1=nn.BatchNorm2d(24), relu=nn.ReLU(), maxpool=nn.MaxPool2d(3, 2, 1),
        **stages, globalpool=GlobalAvg(), fc=nn.Linear(960, 1000, bias=False),
    )  # fmt: skip


def _v2_branch(cin: int, c: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        conv(cin, c, 1), nn.BatchNorm2d(c), nn.ReLU(),
        conv(c, c, 3, stride, 1, g=c), nn.BatchNorm2d(c),
        conv(c, c, 1), nn.BatchNorm2d(c), nn.ReLU(),
    )  # fmt: skip


class SplitUnit(nn.Module):
    """ShuffleNetV2 basic unit: keep one half of the channels, transform the other, concat, shuffle
    (torchvision: ``x1, x2 = x.chunk(2, dim=1)``; the halves are named after its variables)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.x1, self.x2 = Chunk(2, 0), Chunk(2, 1)
        self.branch2, self.concat, self.shuffle = _v2_branch(c // 2, c // 2, 1), Cat(), nn.ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.concat(self.x1(x), self.branch2(self.x2(x))))


def build_shufflenet_v2_x1_0() -> nn.Module:
    stages: dict[str, nn.Module] = {}
    cin = 24
    for index, (out, count) in enumerate(((116, 4), (232, 8), (464, 4))):
        c = out // 2
        branch1 = nn.Sequential(
            conv(cin, cin, 3, 2, 1, g=cin), nn.BatchNorm2d(cin), conv(cin, c, 1), nn.BatchNorm2d(c), nn.ReLU()
        )
        down = Graph(
            {"branch1": branch1, "branch2": _v2_branch(cin, c, 2), "concat": Cat(), "shuffle": nn.ChannelShuffle(2)},
            [["branch1"], ["branch2"]], "concat", ["shuffle"],
        )  # fmt: skip
        stages[f"stage{index + 2}"] = nn.Sequential(down, *(SplitUnit(out) for _ in range(count - 1)))
        cin = out
    return named(
        conv1=nn.Sequential(conv(3, 24, 3, 2, 1), nn.BatchNorm2d(24), nn.ReLU()), maxpool=nn.MaxPool2d(3, 2, 1),
        **stages, conv5=nn.Sequential(conv(464, 1024, 1), nn.BatchNorm2d(1024), nn.ReLU()),
        pool=GlobalAvg(), fc=nn.Linear(1024, 1000),
    )  # fmt: skip


# -- Xception -------------------------------------------------------------------------------------


def _sep(name: str, cin: int, cout: int, act: bool = True) -> dict[str, nn.Module]:
    mods: dict[str, nn.Module] = {f"{name}_act": nn.ReLU()} if act else {}
    return mods | {name: SepConv(cin, cout), f"{name}_bn": nn.BatchNorm2d(cout)}


def _x_entry(cin: int, out1: int, out2: int, act_first: bool = True) -> Graph:
    body = _sep("sepconv1", cin, out1, act_first) | _sep("sepconv2", out1, out2) | {"pool": nn.MaxPool2d(3, 2, 1)}
    residual = named(conv=conv(cin, out2, 1, 2), bn=nn.BatchNorm2d(out2))
    return Graph({**body, "residual": residual, "add": Add()}, [list(body), ["residual"]], "add")


def build_xception() -> nn.Module:
    def middle() -> Graph:
        body = _sep("sepconv1", 728, 728) | _sep("sepconv2", 728, 728) | _sep("sepconv3", 728, 728)
        return Graph({**body, "add": Add()}, [list(body), []], "add")

    return named(
        block1_conv1=conv(3, 32, 3, 2), block1_conv1_bn=nn.BatchNorm2d(32), block1_conv1_act=nn.ReLU(),
        block1_conv2=conv(32, 64, 3), block1_conv2_bn=nn.BatchNorm2d(64), block1_conv2_act=nn.ReLU(),
        block2=_x_entry(64, 128, 128, act_first=False), block3=_x_entry(128, 256, 256), block4=_x_entry(256, 728, 728),
        middle=nn.Sequential(*(middle() for _ in range(8))),
        block13=_x_entry(728, 728, 1024),
        block14_sepconv1=SepConv(1024, 1536), block14_sepconv1_bn=nn.BatchNorm2d(1536), block14_sepconv1_act=nn.ReLU(),
        block14_sepconv2=SepConv(1536, 2048), block14_sepconv2_bn=nn.BatchNorm2d(2048), block14_sepconv2_act=nn.ReLU(),
        avg_pool=GlobalAvg(), predictions=nn.Linear(2048, 1000),
    )  # fmt: skip


# -- GoogLeNet, Inception-v3 ----------------------------------------------------------------------


def bconv(cin: int, cout: int, k: int | tuple[int, int] = 1, s: int = 1, p: int | tuple[int, int] = 0) -> nn.Sequential:
    """torchvision's BasicConv2d: conv without bias, BN (eps 0.001), ReLU."""
    return named(conv=conv(cin, cout, k, s, p), bn=nn.BatchNorm2d(cout, eps=0.001), relu=nn.ReLU())


def googlenet_aux(cin: int) -> nn.Module:
    """torchvision's InceptionAux, with its functional pool, flatten and ReLU as modules."""
    head = bag(
        pool=nn.AdaptiveAvgPool2d(4), conv=bconv(cin, 128), flatten=nn.Flatten(), fc1=nn.Linear(2048, 1024),
        relu=nn.ReLU(), dropout=nn.Dropout(0.7), fc2=nn.Linear(1024, 1000),
    )  # fmt: skip
    return SideBranch(OrderedDict(head))


def build_googlenet() -> nn.Module:
    """torchvision GoogLeNet(aux_logits=True): the two training-only heads are side branches."""

    def inception(cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int) -> Graph:
        mods = {
            "branch1": bconv(cin, c1),
            "branch2": nn.Sequential(bconv(cin, c3r), bconv(c3r, c3, 3, p=1)),
            "branch3": nn.Sequential(bconv(cin, c5r), bconv(c5r, c5, 3, p=1)),  # torchvision's "5x5" is 3x3
            "branch4": nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), bconv(cin, pp)),
            "concat": Cat(),
        }
        return Graph(mods, [["branch1"], ["branch2"], ["branch3"], ["branch4"]], "concat")

    return named(
        conv1=bconv(3, 64, 7, 2, 3), maxpool1=nn.MaxPool2d(3, 2, ceil_mode=True),
        conv2=bconv(64, 64), conv3=bconv(64, 192, 3, p=1), maxpool2=nn.MaxPool2d(3, 2, ceil_mode=True),
        inception3a=inception(192, 64, 96, 128, 16, 32, 32), inception3b=inception(256, 128, 128, 192, 32, 96, 64),
        maxpool3=nn.MaxPool2d(3, 2, ceil_mode=True),
        inception4a=inception(480, 192, 96, 208, 16, 48, 64), aux1=googlenet_aux(512),
        inception4b=inception(512, 160, 112, 224, 24, 64, 64),
        inception4c=inception(512, 128, 128, 256, 24, 64, 64), inception4d=inception(512, 112, 144, 288, 32, 64, 64),
        aux2=googlenet_aux(528), inception4e=inception(528, 256, 160, 320, 32, 128, 128),
        maxpool4=nn.MaxPool2d(2, 2, ceil_mode=True),
        inception5a=inception(832, 256, 160, 320, 32, 128, 128), inception5b=inception(832, 384, 192, 384, 48, 128, 128),
        avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), dropout=nn.Dropout(0.2), fc=nn.Linear(1024, 1000),
    )  # fmt: skip


def _inception(mods: dict[str, nn.Module], paths: list[list[str]]) -> Graph:
    return Graph({**mods, "concat": Cat()}, paths, "concat")


def _pair(cin: int, c: int) -> Graph:
    """Inception-v3 E: parallel 1x3 and 3x1 convs, concatenated."""
    return _inception({"a": bconv(cin, c, (1, 3), p=(0, 1)), "b": bconv(cin, c, (3, 1), p=(1, 0))}, [["a"], ["b"]])


def build_inception_v3() -> nn.Module:
    def a(cin: int, pf: int) -> Graph:
        mods = bag(
            branch1x1=bconv(cin, 64), branch5x5_1=bconv(cin, 48), branch5x5_2=bconv(48, 64, 5, p=2),
            branch3x3dbl_1=bconv(cin, 64), branch3x3dbl_2=bconv(64, 96, 3, p=1), branch3x3dbl_3=bconv(96, 96, 3, p=1),
            avg_pool=nn.AvgPool2d(3, 1, 1), branch_pool=bconv(cin, pf),
        )  # fmt: skip
        paths = [
            ["branch1x1"],
            ["branch5x5_1", "branch5x5_2"],
            ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
            ["avg_pool", "branch_pool"],
        ]
        return _inception(mods, paths)

    def b(cin: int) -> Graph:
        mods = bag(
            branch3x3=bconv(cin, 384, 3, 2),
            branch3x3dbl_1=bconv(cin, 64), branch3x3dbl_2=bconv(64, 96, 3, p=1), branch3x3dbl_3=bconv(96, 96, 3, 2),
            max_pool=nn.MaxPool2d(3, 2),
        )  # fmt: skip
        return _inception(mods, [["branch3x3"], ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], ["max_pool"]])

    def c(cin: int, c7: int) -> Graph:
        h, v = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of the 1x7 and 7x1 convs
        mods = bag(
            branch1x1=bconv(cin, 192),
            branch7x7_1=bconv(cin, c7), branch7x7_2=bconv(c7, c7, h[0], p=h[1]), branch7x7_3=bconv(c7, 192, v[0], p=v[1]),
            branch7x7dbl_1=bconv(cin, c7), branch7x7dbl_2=bconv(c7, c7, v[0], p=v[1]), branch7x7dbl_3=bconv(c7, c7, h[0], p=h[1]),
            branch7x7dbl_4=bconv(c7, c7, v[0], p=v[1]), branch7x7dbl_5=bconv(c7, 192, h[0], p=h[1]),
            avg_pool=nn.AvgPool2d(3, 1, 1), branch_pool=bconv(cin, 192),
        )  # fmt: skip
        paths = [
            ["branch1x1"],
            ["branch7x7_1", "branch7x7_2", "branch7x7_3"],
            [f"branch7x7dbl_{i}" for i in range(1, 6)],
            ["avg_pool", "branch_pool"],
        ]
        return _inception(mods, paths)

    def d(cin: int) -> Graph:
        mods = bag(
            branch3x3_1=bconv(cin, 192), branch3x3_2=bconv(192, 320, 3, 2),
            branch7x7x3_1=bconv(cin, 192), branch7x7x3_2=bconv(192, 192, (1, 7), p=(0, 3)),
            branch7x7x3_3=bconv(192, 192, (7, 1), p=(3, 0)), branch7x7x3_4=bconv(192, 192, 3, 2),
            max_pool=nn.MaxPool2d(3, 2),
        )  # fmt: skip
        paths = [["branch3x3_1", "branch3x3_2"], [f"branch7x7x3_{i}" for i in range(1, 5)], ["max_pool"]]
        return _inception(mods, paths)

    def e(cin: int) -> Graph:
        mods = bag(
            branch1x1=bconv(cin, 320),
            branch3x3_1=bconv(cin, 384), branch3x3_2=_pair(384, 384),
            branch3x3dbl_1=bconv(cin, 448), branch3x3dbl_2=bconv(448, 384, 3, p=1), branch3x3dbl_3=_pair(384, 384),
            avg_pool=nn.AvgPool2d(3, 1, 1), branch_pool=bconv(cin, 192),
        )  # fmt: skip
        paths = [
            ["branch1x1"],
            ["branch3x3_1", "branch3x3_2"],
            ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
            ["avg_pool", "branch_pool"],
        ]
        return _inception(mods, paths)

    head = bag(
        avg_pool=nn.AvgPool2d(5, 3), conv0=bconv(768, 128), conv1=bconv(128, 768, 5),
        adaptive_pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(768, 1000),
    )  # fmt: skip
    aux = SideBranch(OrderedDict(head))
    return named(
        Conv2d_1a_3x3=bconv(3, 32, 3, 2), Conv2d_2a_3x3=bconv(32, 32, 3), Conv2d_2b_3x3=bconv(32, 64, 3, p=1),
        maxpool1=nn.MaxPool2d(3, 2), Conv2d_3b_1x1=bconv(64, 80), Conv2d_4a_3x3=bconv(80, 192, 3), maxpool2=nn.MaxPool2d(3, 2),
        Mixed_5b=a(192, 32), Mixed_5c=a(256, 64), Mixed_5d=a(288, 64), Mixed_6a=b(288),
        Mixed_6b=c(768, 128), Mixed_6c=c(768, 160), Mixed_6d=c(768, 160), Mixed_6e=c(768, 192),
        AuxLogits=aux, Mixed_7a=d(768), Mixed_7b=e(1280), Mixed_7c=e(2048),
        avgpool=nn.AdaptiveAvgPool2d(1), dropout=nn.Dropout(0.5), flatten=nn.Flatten(), fc=nn.Linear(2048, 1000),
    )  # fmt: skip


BUILDERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "alexnet": (build_alexnet, (3, 224, 224)),
    "alexnet_original": (build_alexnet_original, (3, 227, 227)),
    "vgg16": (build_vgg16, (3, 224, 224)),
    "resnet18": (lambda: build_resnet(basic_block, (2, 2, 2, 2)), (3, 224, 224)),
    "resnet50": (lambda: build_resnet(bottleneck, (3, 4, 6, 3)), (3, 224, 224)),
    "resnext50_32x4d": (lambda: build_resnet(bottleneck, (3, 4, 6, 3), groups=32, base_width=4), (3, 224, 224)),
    "mobilenet_v1": (build_mobilenet_v1, (3, 224, 224)),
    "mobilenet_v2": (build_mobilenet_v2, (3, 224, 224)),
    "shufflenet_v1_g3": (build_shufflenet_v1_g3, (3, 224, 224)),
    "shufflenet_v2_x1_0": (build_shufflenet_v2_x1_0, (3, 224, 224)),
    "xception": (build_xception, (3, 299, 299)),
    "googlenet": (build_googlenet, (3, 224, 224)),
    "inception_v3": (build_inception_v3, (3, 299, 299)),
}


def leaves(model: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    """Modules convcalc has one row for: ATOMIC composites whole, otherwise modules without children."""
    skip: tuple[str, ...] = ()
    for name, module in model.named_modules():
        if not name or (skip and name.startswith(skip)):
            continue
        if isinstance(module, ATOMIC):
            skip = (*skip, name + ".")
            yield name, module
        elif not list(module.children()):
            yield name, module


def torch_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Output shape (batch dropped) of every leaf module, run once on zeros."""
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(_module: nn.Module, _inputs: object, output: object) -> None:
            first = output[0] if isinstance(output, tuple) else output
            assert isinstance(first, torch.Tensor)
            shapes[name] = tuple(first.shape[1:])
            calls[name] = calls.get(name, 0) + 1

        return record

    named_leaves = list(leaves(model))
    handles = [module.register_forward_hook(hook(name)) for name, module in named_leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    ran_once = {name: calls.get(name, 0) for name, _ in named_leaves}
    assert all(count == 1 for count in ran_once.values()), {n: c for n, c in ran_once.items() if c != 1}
    return shapes


def compare_layers(rows: list[dict[str, object]], shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Problems of the name-based mapping described in the module docstring (empty: all agree)."""
    by_name = {str(r["name"]): _shape(r["output_shape"]) for r in rows}
    covered: set[str] = set()
    problems: list[str] = []
    for name, shape in shapes.items():
        if name not in by_name:
            problems.append(f"torch module {name} {shape}: no convcalc row of that name")
            continue
        covered.add(name)
        got = by_name[name]
        if got != shape:
            problems.append(f"{name}: torch {shape}, convcalc {got}")
    problems += [f"convcalc row {n} {by_name[n]}: no torch module" for n in by_name if n not in covered]
    return problems


@pytest.fixture(scope="module", autouse=True)
def _threads() -> Iterable[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_torch_build_agrees_layer_by_layer(name: str, run_cli: Callable[..., object]) -> None:
    build, input_shape = BUILDERS[name]
    model = build().eval()
    doc = net_doc(name, run_cli)
    assert _shape(doc["input_shape"]) == input_shape
    torch_params = sum(p.numel() for p in model.parameters())
    assert total(doc, "params") == torch_params
    assert sum(int(r["params"]) for r in rows_of(doc)) == torch_params  # type: ignore[call-overload]
    shapes = torch_shapes(model, input_shape)
    problems = compare_layers(rows_of(doc), shapes)
    assert not problems, "\n".join(problems[:20])
    assert _shape(doc["output_shape"]) == (1000,)


def bn_running_stats(model: nn.Module) -> int:
    """Moving means and variances: buffers in torch, but 'non-trainable params' in Keras."""
    return sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d))  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "keras"), [("mobilenet_v1", 4_253_864), ("xception", 22_910_480)])
def test_keras_count_is_torch_count_plus_bn_statistics(name: str, keras: int) -> None:
    model = BUILDERS[name][0]()
    learnable = sum(p.numel() for p in model.parameters())
    assert learnable + bn_running_stats(model) == keras
    assert evaluate_file(spec(name)).totals().params == learnable


AUX_HEADS = {"inception_v3": ("AuxLogits",), "googlenet": ("aux1", "aux2")}
"""Training-only heads (torch module names): ``training_only`` blocks of the specs."""


@pytest.mark.parametrize(("name", "params"), [("inception_v3", 27_161_264), ("googlenet", 13_004_888)])
def test_training_only_heads_are_the_torch_auxiliary_heads(name: str, params: int) -> None:
    """The heads' params count in both modes; their MACs (PyTorch's FlopCounterMode on the torch
    heads alone) only with --mode train."""
    model = BUILDERS[name][0]()
    heads = AUX_HEADS[name]
    assert sum(p.numel() for p in model.parameters()) == params
    eval_result = evaluate_file(spec(name))
    train_result = evaluate_file(spec(name), mode="train")
    marked = [r for r in eval_result.rows if r.training_only]
    assert {r.name.split(".")[0] for r in marked} == set(heads)
    head_params = sum(p.numel() for h in heads for p in getattr(model, h).parameters())
    assert sum(r.params for r in marked) == head_params
    assert sum(r.macs + r.other_ops for r in marked) == 0
    assert eval_result.totals().params == train_result.totals().params == params
    from torch_zoo import flop_counter_macs  # torch_zoo imports this module: not at module level

    first = {r.name.split(".")[0]: r.input_shapes[0] for r in reversed(marked)}  # the shape each head reads
    head_macs = sum(flop_counter_macs(getattr(model, h), first[h])[0] for h in heads)
    assert train_result.totals().macs - eval_result.totals().macs == head_macs


def test_shufflenet_v2_receptive_field_is_exact_by_autograd() -> None:
    """The channel split is a real ``chunk`` (a view), so conv5's field is exact: 527 pixels,
    effective stride 32, centred on pixel 0: r = 3 (conv1) + 4 (maxpool) + 8 + 16 + 32 (the
    stride-2 depthwise convs of the three down units) + 3·16 + 7·32 + 3·64 (the basic units' 3x3
    depthwise convs at effective strides 8, 16, 32) = 527.

    Checked on the torch build: all-ones conv weights, the max pool swapped for an average pool
    of the same window (every tap then carries gradient), a positive input 576x576 so that the
    field of conv5's unit (9, 9), 9·32 ± 263 = 25..551, lies inside it; the input pixels with a
    non-zero gradient span exactly that interval on both axes.
    """
    rows = {r.name: r for r in evaluate_file(spec("shufflenet_v2_x1_0")).rows}
    field = rows["conv5.2"].field
    assert field is not None
    assert [(int(a.size), int(a.jump), int(a.start)) for a in field] == [(527, 32, 0)] * 2
    assert all(a.size.denominator == a.jump.denominator == a.start.denominator == 1 for a in field)
    assert not [n for n in evaluate_file(spec("shufflenet_v2_x1_0")).warnings() if "not aligned" in n]

    model = build_shufflenet_v2_x1_0().double().eval()
    assert isinstance(model, nn.Sequential)
    model.maxpool = nn.AvgPool2d(3, 2, 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(1.0)
    x = (torch.rand(1, 3, 576, 576, dtype=torch.float64) + 0.5).requires_grad_(True)
    features = model[:6](x)  # conv1 .. conv5
    assert tuple(features.shape[2:]) == (18, 18)
    features[0, :, 9, 9].sum().backward()
    assert x.grad is not None
    mask = x.grad[0].abs().sum(0) > 0
    for axis in (0, 1):
        hits = torch.nonzero(mask.any(dim=1 - axis)).flatten().tolist()
        assert (hits[0], hits[-1]) == (9 * 32 - 263, 9 * 32 + 263)


def test_alexnet_original_normalises_with_local_response_norm() -> None:
    rows = {r.name: r for r in evaluate_file(spec("alexnet_original")).rows}
    for name, (c, h) in (("norm1", (96, 55)), ("norm2", (256, 27))):
        assert rows[name].type == "local_response_norm"
        assert (rows[name].params, rows[name].macs) == (0, 0)
        assert rows[name].other_ops == c * h * h * (5 + 5)  # (size + 5) per element, see `convcalc types lrn`


# ----------------------------------------------------------------------------------------------
# (c) the published numbers
# ----------------------------------------------------------------------------------------------

TORCHVISION = {
    # spec: (num_params, _ops in torchvision's weight metadata, GFLOPS in its docs table)
    "alexnet": (61_100_840, "0.714", "0.71"),
    "vgg16": (138_357_544, "15.47", "15.47"),
    "resnet18": (11_689_512, "1.814", "1.81"),
    "resnet50": (25_557_032, "4.089", "4.09"),
    "resnext50_32x4d": (25_028_904, "4.23", "4.23"),
    "mobilenet_v2": (3_504_872, "0.301", "0.30"),
    "shufflenet_v2_x1_0": (2_278_604, "0.145", "0.14"),
    "googlenet": (6_624_904, "1.498", "1.50"),  # GoogLeNet_Weights: loaded with the aux heads dropped
    "inception_v3": (27_161_264, "5.713", "5.71"),
}
PUBLISHED_WITHOUT_AUX = {"googlenet"}
"""Published weights whose num_params leave the training-only heads out (torchvision drops
GoogLeNet's after loading; Inception_V3_Weights keep AuxLogits)."""


def rounded(value: int, scale: int, published: str) -> Decimal:
    """``value / scale`` rounded half-up to as many decimals as ``published`` shows."""
    places = Decimal(1).scaleb(-len(published.partition(".")[2]))
    return (Decimal(value) / scale).quantize(places, rounding=ROUND_HALF_UP)


def published_params(name: str, doc: dict[str, object]) -> int:
    aux = sum(int(r["params"]) for r in rows_of(doc) if r.get("training_only"))  # type: ignore[call-overload]
    return total(doc, "params") - (aux if name in PUBLISHED_WITHOUT_AUX else 0)


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_published_numbers(name: str, run_cli: Callable[..., object]) -> None:
    """Params and eval-mode MACs straight from the totals (training-only heads do no work in eval mode)."""
    params, ops, docs = TORCHVISION[name]
    doc = net_doc(name, run_cli)
    assert published_params(name, doc) == params
    macs = total(doc, "macs")
    assert rounded(macs, 10**9, ops) == Decimal(ops), f"{macs:,} MACs vs _ops {ops}"
    assert rounded(macs, 10**9, docs) == Decimal(docs), f"{macs:,} MACs vs docs {docs}"


PAPERS = {
    # spec: (exact params, params as the source rounds them, scale of that rounding,
    #        MACs as the source rounds them, scale) -- see the reference library table in specs/README.md
    "alexnet_original": (60_965_224, "61", 10**6, "724", 10**6),  # bvlc_alexnet; "60 million" in the paper
    "mobilenet_v1": (4_231_976, "4.2", 10**6, "569", 10**6),  # Howard et al. 2017, 1.0 MobileNet-224: 4.2 M, 569 M mult-adds
    "shufflenet_v1_g3": (1_864_728, "1.9", 10**6, "137", 10**6),  # Zhang et al. 2018: 137 MFLOPs (= mult-adds); megvii: 1.9 M
    "xception": (22_855_952, "22855952", 1, None, 1),  # Chollet 2017, Table 3 (no FLOPs published)
}


@pytest.mark.parametrize("name", list(PAPERS))
def test_paper_published_numbers(name: str, run_cli: Callable[..., object]) -> None:
    exact, params, params_scale, macs, macs_scale = PAPERS[name]
    doc = net_doc(name, run_cli)
    assert total(doc, "params") == exact
    assert rounded(exact, params_scale, params) == Decimal(params)
    if macs is not None:
        assert rounded(total(doc, "macs"), macs_scale, macs) == Decimal(macs)
