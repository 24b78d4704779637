"""Network specs: the examples against hand-written torch models, the format's features, the
report (totals, folding, breakdown), ``check`` and its output formats, the CLI, and performance.

The torch models are written here from the papers' architectures, not generated from the YAML:
each records every layer's output under the path convcalc gives that layer, so shapes are
compared layer by layer by name, and the parameter totals are ``sum(p.numel())``.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:
    import torch
    from torch import nn
except ImportError:  # the pure tests still run; the torch oracles below are skipped (needs_torch)
    nn = torch = None  # type: ignore[assignment]
else:  # a torch module, defined only with torch

    class Recorder(nn.Module):
        """A module dict whose forward is written out by hand; ``rec`` notes each output shape."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleDict()
            self.shapes: dict[str, tuple[int, ...]] = {}

        def add(self, name: str, module: nn.Module) -> None:
            self.layers[name.replace(".", "__")] = module

        def __call__(self, name: str, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            out = self.layers[name.replace(".", "__")](*inputs)
            return self.rec(name, out)

        def rec(self, name: str, out: torch.Tensor) -> torch.Tensor:
            assert name not in self.shapes, f"{name} ran twice"
            self.shapes[name] = tuple(out.shape[1:])
            return out


from convcalc.network.check import check, check_exit_code
from convcalc.network.evaluate import evaluate_file, evaluate_network
from convcalc.network.expressions import evaluate_expression, substitute
from convcalc.network.result import NetResult, NetworkError
from convcalc.network.spec import MAX_LAYERS, parse_network
from convcalc.parse.yaml import load_text
from convcalc.render.check import annotation, render_check
from convcalc.render.network import bar, net_to_dict, render_network
from convcalc.render.units import compact

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch (the reference oracle)")

EXAMPLES = Path(__file__).resolve().parent.parent / "specs" / "examples"


def net(text: str, source: str = "test.yaml") -> NetResult:
    return evaluate_network(parse_network(load_text(text, source), source))


# ==============================================================================================
# Torch reference models (recording each layer's output shape under convcalc's path)
# ==============================================================================================




def tiny_resnet_torch() -> tuple[Recorder, Callable[[torch.Tensor], torch.Tensor]]:
    """He et al. 2016 CIFAR ResNet, 3 stages x 2 basic blocks (16, 32, 64), as in tiny_resnet.yaml."""
    m = Recorder()
    m.add("conv1", nn.Conv2d(3, 16, 3, padding=1, bias=False))
    m.add("bn1", nn.BatchNorm2d(16))
    m.add("relu", nn.ReLU())
    blocks = []
    c_in = 16
    for stage, channels in (("layer1", 16), ("layer2", 32), ("layer3", 64)):
        for i in range(2):
            stride = 2 if i == 0 and stage != "layer1" else 1
            p = f"{stage}.{i}"
            m.add(f"{p}.conv1", nn.Conv2d(c_in, channels, 3, stride, 1, bias=False))
            m.add(f"{p}.bn1", nn.BatchNorm2d(channels))
            m.add(f"{p}.relu1", nn.ReLU())
            m.add(f"{p}.conv2", nn.Conv2d(channels, channels, 3, 1, 1, bias=False))
            m.add(f"{p}.bn2", nn.BatchNorm2d(channels))
            project = stride != 1 or c_in != channels
            if project:
                m.add(f"{p}.downsample.0", nn.Conv2d(c_in, channels, 1, stride, bias=False))
                m.add(f"{p}.downsample.1", nn.BatchNorm2d(channels))
            m.add(f"{p}.relu", nn.ReLU())
            blocks.append((p, project))
            c_in = channels
    m.add("avgpool", nn.AdaptiveAvgPool2d(1))
    m.add("flatten", nn.Flatten())
    m.add("fc", nn.Linear(64, 10))

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = m("relu", m("bn1", m("conv1", x)))
        for p, project in blocks:
            y = m(f"{p}.bn2", m(f"{p}.conv2", m(f"{p}.relu1", m(f"{p}.bn1", m(f"{p}.conv1", x)))))
            if project:
                x = m(f"{p}.downsample.1", m(f"{p}.downsample.0", x))
            x = m(f"{p}.relu", m.rec(f"{p}.add", y + x))
        return m("fc", m("flatten", m("avgpool", x)))

    return m, forward


def unet_small_torch() -> tuple[Recorder, Callable[[torch.Tensor], torch.Tensor]]:
    """Ronneberger et al. 2015 with 'same' convolutions, two levels (16, 32; bottleneck 64)."""
    m = Recorder()

    def double_conv(p: str, c_in: int, c: int) -> None:
        for i, module in enumerate(
            [
                *(nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()),
                *(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()),
            ]
        ):
            m.add(f"{p}.{i}", module)

    double_conv("enc1", 1, 16)
    m.add("pool1", nn.MaxPool2d(2))
    double_conv("enc2", 16, 32)
    m.add("pool2", nn.MaxPool2d(2))
    double_conv("bottleneck", 32, 64)
    m.add("up2.up", nn.ConvTranspose2d(64, 32, 2, 2))
    double_conv("up2.conv", 64, 32)
    m.add("up1.up", nn.ConvTranspose2d(32, 16, 2, 2))
    double_conv("up1.conv", 32, 16)
    m.add("head", nn.Conv2d(16, 2, 1))

    def run_double(p: str, x: torch.Tensor) -> torch.Tensor:
        for i in range(6):
            x = m(f"{p}.{i}", x)
        return x

    def forward(x: torch.Tensor) -> torch.Tensor:
        e1 = run_double("enc1", x)
        e2 = run_double("enc2", m("pool1", e1))
        b = run_double("bottleneck", m("pool2", e2))
        u2 = run_double("up2.conv", m.rec("up2.cat", torch.cat([m("up2.up", b), e2], 1)))
        u1 = run_double("up1.conv", m.rec("up1.cat", torch.cat([m("up1.up", u2), e1], 1)))
        return m("head", u1)

    return m, forward


def inverted_residual_torch() -> tuple[Recorder, Callable[[torch.Tensor], torch.Tensor]]:
    """Sandler et al. 2018 inverted residuals (expand 4) with Hu et al. 2018 SE gates (reduce 4)."""
    m = Recorder()
    blocks = []
    c_in = 16
    for p, out, stride in (("block1", 24, 2), ("block2.0", 24, 1), ("block2.1", 24, 1)):
        mid = 4 * c_in
        m.add(f"{p}.expand", nn.Conv2d(c_in, mid, 1, bias=False))
        m.add(f"{p}.1", nn.BatchNorm2d(mid))
        m.add(f"{p}.2", nn.ReLU6())
        m.add(f"{p}.dw", nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False))
        m.add(f"{p}.4", nn.BatchNorm2d(mid))
        m.add(f"{p}.5", nn.ReLU6())
        se = f"{p}.se.branch2"
        m.add(f"{se}.pool", nn.AdaptiveAvgPool2d(1))
        m.add(f"{se}.fc1", nn.Conv2d(mid, mid // 4, 1))
        m.add(f"{se}.2", nn.ReLU())
        m.add(f"{se}.fc2", nn.Conv2d(mid // 4, mid, 1))
        m.add(f"{se}.4", nn.Hardsigmoid())
        m.add(f"{p}.project", nn.Conv2d(mid, out, 1, bias=False))
        m.add(f"{p}.8", nn.BatchNorm2d(out))
        blocks.append((p, stride == 1 and c_in == out))
        c_in = out
    m.add("3", nn.Linear(24, 10))

    def forward(x: torch.Tensor) -> torch.Tensor:
        for p, residual in blocks:
            y = m(f"{p}.5", m(f"{p}.4", m(f"{p}.dw", m(f"{p}.2", m(f"{p}.1", m(f"{p}.expand", x))))))
            se = f"{p}.se.branch2"
            gate = m(f"{se}.4", m(f"{se}.fc2", m(f"{se}.2", m(f"{se}.fc1", m(f"{se}.pool", y)))))
            y = m(f"{p}.8", m(f"{p}.project", m.rec(f"{p}.se.multiply", y * gate)))
            x = m.rec(f"{p}.add", y + x) if residual else y
        return m("3", m.rec("2", x.mean((2, 3))))

    return m, forward


TORCH_EXAMPLES = [
    pytest.param("tiny_resnet.yaml", tiny_resnet_torch, (3, 32, 32), id="tiny_resnet"),
    pytest.param("unet_small.yaml", unet_small_torch, (1, 64, 64), id="unet_small"),
    pytest.param("inverted_residual_se.yaml", inverted_residual_torch, (16, 56, 56), id="inverted_residual_se"),
]


@needs_torch
@pytest.mark.parametrize(("file", "build", "shape"), TORCH_EXAMPLES)
def test_examples_match_torch_layer_by_layer(
    file: str, build: Callable[[], tuple[Recorder, Callable]], shape: tuple[int, ...]
) -> None:
    result = evaluate_file(str(EXAMPLES / file))
    model, forward = build()
    model.eval()
    with torch.no_grad():
        out = forward(torch.zeros(1, *shape))
    rows = {row.name: row.output_shape for row in result.rows}
    assert rows == model.shapes, "every convcalc row has a torch layer of the same name and shape, and vice versa"
    assert result.output_shape == tuple(out.shape[1:])
    assert result.totals().params == sum(p.numel() for p in model.parameters())


def test_every_example_passes_its_own_check() -> None:
    results = check([str(EXAMPLES / "*.yaml")])
    assert len(results) >= 4
    assert [r.status for r in results] == ["pass"] * len(results), [(r.file, r.error, r.expectations) for r in results]


def test_dilated_stack_gives_the_seed_receptive_fields() -> None:
    # seed 001: "The receptive field is 3 x 3 for l = 1. It is 7 x 7 for l = 2 ... 15 x 15 for l = 4."
    result = evaluate_file(str(EXAMPLES / "dilated_stack.yaml"))
    sizes = [[int(axis.size) for axis in row.field or ()] for row in result.rows]
    assert sizes == [[3, 3], [7, 7], [15, 15]]


# ==============================================================================================
# The format: templates, expressions, repeat, references, defaults, layouts
# ==============================================================================================


def test_template_expressions_repeat_first_and_each() -> None:
    result = net(
        """
input: 8x16x16
variables: {growth: 2}
define:
  block:
    params: {width: required, stride: 1}
    layers:
      - {type: conv2d, name: conv, out_channels: $width * $growth, kernel_size: 3, stride: $stride, padding: 1}
layers:
  - {type: block, name: stage, repeat: 3, width: 4, first: {stride: 2}, each: {width: [4, 8, 16]}}
"""
    )
    assert [(r.name, r.output_shape) for r in result.rows] == [
        ("stage.0.conv", (4 * 2, 8, 8)),  # first: stride 2
        ("stage.1.conv", (8 * 2, 8, 8)),
        ("stage.2.conv", (16 * 2, 8, 8)),
    ]
    assert result.blocks["stage"].type == "block x3"


def test_when_in_channels_and_identity_or_projection_shortcut() -> None:
    text = """
input: 16x8x8
define:
  block:
    params: {out: required, stride: 1}
    layers:
      - residual:
          - {type: conv2d, name: conv, out_channels: $out, kernel_size: 3, stride: $stride, padding: 1}
        shortcut:
          name: proj
          when: $stride != 1 or $in_channels != $out
          layers: [{type: conv2d, out_channels: $out, kernel_size: 1, stride: $stride}]
layers:
  - {type: block, name: a, out: 16}
  - {type: block, name: b, out: 32, stride: 2}
"""
    result = net(text)
    names = [r.name for r in result.rows]
    assert names == ["a.conv", "a.add", "b.conv", "b.proj.0", "b.add"]
    assert result.output_shape == (32, 4, 4)


def test_template_defaults_are_expressions_evaluated_at_the_call() -> None:
    result = net(
        """
input: 8x4x4
define: {blk: {params: {planes: required, inplanes: $in_channels}, layers: [{type: conv2d, out_channels: $inplanes + $planes, kernel_size: 1}]}}
layers: [{type: blk, planes: 4}]
"""
    )
    assert [(r.name, r.output_shape) for r in result.rows] == [("0.0", (12, 4, 4))]
    assert result.totals().params == 8 * 12 + 12


def test_template_defaults_see_in_channels_arguments_and_earlier_parameters() -> None:
    result = net(
        """
input: 8x4x4
variables: {growth: 2}
define:
  blk:
    params: {planes: required, inplanes: $in_channels, width: $planes * $growth, out: $inplanes + $width}
    layers:
      - {type: conv2d, name: conv, out_channels: $out, kernel_size: 1}
layers:
  - {type: conv2d, name: stem, out_channels: 6, kernel_size: 1}
  - {type: blk, name: a, planes: 1}                   # in 6: 6 + 2
  - {type: blk, name: b, planes: 1, inplanes: 100}    # an argument wins over the default
  - {type: blk, name: c, planes: 2, input: stem}      # in_channels of the tensor the call reads: 6 + 4
  - {type: blk, name: d, repeat: 2, planes: 1}        # per repetition: 10 + 2, then 12 + 2
"""
    )
    shapes = {r.name: r.output_shape[0] for r in result.rows}
    assert shapes == {"stem": 6, "a.conv": 8, "b.conv": 102, "c.conv": 10, "d.0.conv": 12, "d.1.conv": 14}


def test_template_defaults_do_not_see_the_callers_variables() -> None:
    text = """
input: 8x4x4
define:
  inner:
    params: {k: $size}
    layers: [{type: conv2d, out_channels: 4, kernel_size: $k}]
  outer:
    params: {size: 1}
    layers: [inner]
layers: [outer]
"""
    with pytest.raises(NetworkError) as info:
        net(text)
    message = str(info.value)
    assert "the default of parameter 'k' of template 'inner'" in message
    assert "unknown name 'size'" in message
    assert info.value.where is not None and info.value.where.line == 5  # where the default is written


def test_references_skip_connections_and_previous() -> None:
    result = net(
        """
input: 3x8x8
layers:
  - {type: conv2d, name: stem, out_channels: 4, kernel_size: 3, padding: 1}
  - {type: maxpool2d, kernel_size: 2}
  - {type: upsample, scale_factor: 2}
  - {type: concat, name: cat, inputs: [previous, stem]}
  - {type: conv2d, name: side, input: stem, out_channels: 2, kernel_size: 1}
"""
    )
    shapes = {r.name: r.output_shape for r in result.rows}
    assert shapes["cat"] == (8, 8, 8)
    assert shapes["side"] == (2, 8, 8)
    assert result.rows[-1].input_shapes == ((4, 8, 8),)


def test_branches_inception_style_concat_and_names() -> None:
    result = net(
        """
input: 8x10x10
layers:
  - name: mixed
    branches:
      - [{type: conv2d, out_channels: 4, kernel_size: 1}]
      - [{type: conv2d, out_channels: 4, kernel_size: 1}, {type: conv2d, out_channels: 6, kernel_size: 3, padding: 1}]
      - {type: maxpool2d, name: pool, kernel_size: 3, stride: 1, padding: 1}
    merge: concat
"""
    )
    assert [r.name for r in result.rows] == [
        "mixed.branch1.0",
        "mixed.branch2.0",
        "mixed.branch2.1",
        "mixed.pool",
        "mixed.concat",
    ]
    assert result.output_shape == (4 + 6 + 8, 10, 10)
    assert result.rows[-1].input_shapes == ((4, 10, 10), (6, 10, 10), (8, 10, 10))


def test_defaults_apply_per_field_and_per_type() -> None:
    result = net(
        """
input: 3x4x4
defaults: {bias: false, linear: {bias: true}}
layers:
  - {type: conv2d, out_channels: 2, kernel_size: 1}
  - flatten
  - {type: linear, out_features: 5}
"""
    )
    assert [r.params for r in result.rows] == [2 * 3, 0, 32 * 5 + 5]


def test_channels_last_layout_and_batch() -> None:
    result = net(
        """
input: {shape: 32x32x3, layout: channels_last, batch: 8}
layers:
  - {type: conv2d, name: c, out_channels: 16, kernel_size: 3, expect: {shape: 30x30x16}}
"""
    )
    assert result.input_shape == (3, 32, 32)
    assert result.rows[0].output_shape == (16, 30, 30)
    assert all(e.ok for e in result.expectations)
    data = net_to_dict(result)
    assert data["output_shape"] == [30, 30, 16]
    assert data["batch"] == 8
    totals = data["totals"]
    assert isinstance(totals, dict)
    assert totals["macs"] == 8 * 30 * 30 * 16 * 3 * 3 * 3  # batch x positions x C_out x C_in x k x k
    assert totals["params"] == 16 * 3 * 3 * 3 + 16  # never scaled by the batch


def test_vector_input_mlp() -> None:
    result = net("input: 784\nlayers:\n  - {type: linear, out_features: 128}\n  - relu\n  - {type: linear, out_features: 10}\n")
    assert result.output_shape == (10,)
    assert result.totals().params == (784 * 128 + 128) + (128 * 10 + 10)
    assert result.totals().macs == 784 * 128 + 128 * 10
    assert all(r.rf_status == "no spatial axes" for r in result.rows)


@pytest.mark.parametrize(
    ("text", "variables", "value"),
    [
        pytest.param("$width * 4", {"width": 16}, 64, id="arithmetic"),
        pytest.param("${(a + b) // 2 % 5}", {"a": 7, "b": 9}, 3, id="braces-and-precedence"),
        pytest.param("$stride == 1 and $c_in == c_out", {"stride": 1, "c_in": 8, "c_out": 8}, True, id="comparisons"),
        pytest.param("$layers", {"layers": [{"type": "relu"}]}, [{"type": "relu"}], id="any-value"),
        pytest.param("not $flag", {"flag": False}, True, id="not"),
        pytest.param("-$x + 1", {"x": 3}, -2, id="unary-minus"),
        pytest.param("same", {}, "same", id="plain-strings-untouched"),
    ],
)
def test_substitute(text: str, variables: dict[str, object], value: object) -> None:
    assert substitute(text, variables) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("__import__('os').system('true')", "calls '__import__", id="call"),
        pytest.param("x.__class__", "Attribute", id="attribute"),
        pytest.param("2 ** 10", "Pow", id="power"),
        pytest.param("[1, 2]", "List", id="list"),
        pytest.param("lambda: 1", "Lambda", id="lambda"),
        pytest.param("1 / 2", "Div", id="true-division"),
        pytest.param("b'bytes'", "only numbers and 'strings'", id="bytes-literal"),
        pytest.param("None", "the literal None", id="none"),
        pytest.param("abs(x)", "may call only min, max, make_divisible", id="other-function"),
        pytest.param("max(x)", "max takes 2 to 16 plain arguments, got 1", id="max-one-argument"),
        pytest.param("make_divisible(x, divisor=8)", "keywords", id="keyword-argument"),
        pytest.param("'a' * x", "'a' is not a number", id="string-arithmetic"),
        pytest.param("width +", "not a valid expression", id="syntax"),
        pytest.param("widht * 2", "unknown name 'widht'. Did you mean 'width'", id="typo-suggestion"),
        pytest.param("width // 0", "divides by zero", id="zero-division"),
    ],
)
def test_expressions_are_a_safe_whitelist(text: str, message: str) -> None:
    from convcalc.errors import ConvcalcError

    with pytest.raises(ConvcalcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate_expression(text, {"width": 4, "x": 1})


def test_expressions_are_bounded() -> None:
    from convcalc.errors import LimitError

    with pytest.raises(LimitError, match="2\\^62"):
        evaluate_expression("x * x * x * x * x * x * x", {"x": 10**10})
    with pytest.raises(LimitError, match="longer than"):
        evaluate_expression("1 + " * 100 + "1", {})


# ==============================================================================================
# The report: totals, folding, breakdown, heaviest, receptive-field status, merges
# ==============================================================================================


def test_totals_breakdown_and_heaviest_are_consistent() -> None:
    result = evaluate_file(str(EXAMPLES / "tiny_resnet.yaml"))
    totals = result.totals()
    assert totals.params == sum(r.params for r in result.rows)
    assert totals.flops == 2 * totals.macs
    shares = result.breakdown()
    assert sum(s.count for s in shares) == len(result.rows)
    assert sum(s.macs for s in shares) == totals.macs
    assert [s.type for s in shares[:2]] == ["conv2d", "linear"]  # ordered by MACs
    heaviest = result.heaviest(3)
    assert [r.macs for r in heaviest] == sorted((r.macs for r in result.rows), reverse=True)[:3]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_folding_keeps_totals_and_order(depth: int) -> None:
    result = evaluate_file(str(EXAMPLES / "tiny_resnet.yaml"))
    folded = result.fold(depth)
    assert sum(r.params for r in folded) == result.totals().params
    assert sum(r.macs for r in folded) == result.totals().macs
    assert all(r.depth <= depth for r in folded)
    assert folded[-1].output_shape == result.output_shape


def test_fold_one_names_the_blocks() -> None:
    folded = evaluate_file(str(EXAMPLES / "tiny_resnet.yaml")).fold(1)
    assert [(r.name, r.type) for r in folded][3:6] == [
        ("layer1", "basic_block x2"),
        ("layer2", "basic_block x2"),
        ("layer3", "basic_block x2"),
    ]
    assert folded[4].input_shapes == ((16, 32, 32),)
    assert folded[4].output_shape == (32, 16, 16)


def test_unaligned_merge_warns_and_broadcast_gate_keeps_the_grid() -> None:
    result = net(
        """
input: 1x16x16
layers:
  - {type: conv2d, name: a, out_channels: 1, kernel_size: 3, padding: 1}
  - {type: zeropad2d, name: shifted, input: a, padding: [[1, 0], [1, 0]]}
  - {type: crop2d, name: back, cropping: [[0, 1], [0, 1]]}
  - {type: add, name: merged, inputs: [a, back]}
  - {type: global_avgpool, name: gate}
  - {type: multiply, name: gated, inputs: [merged, gate]}
"""
    )
    rows = {r.name: r for r in result.rows}
    assert any("not aligned" in note for note in rows["merged"].notes)
    gated = rows["gated"]
    assert not gated.notes, "a broadcast gate is not an unaligned path"
    field = gated.field
    assert field is not None
    assert [a.jump for a in field] == [1, 1], "the 16x16 grid, not the gate's"
    assert rows["gate"].field is None and rows["gate"].rf_status == "global context"
    merged = rows["merged"].field
    assert merged is not None
    assert [a.size for a in field] == [a.size for a in merged], "the gate marks global context, it does not widen"
    assert gated.global_context and not rows["merged"].global_context


_SHIFTED_MERGES = """
input: 1x32
layers:
  - {type: conv1d, name: stem, out_channels: 2, kernel_size: 1}
  - name: stack
    repeat: 5
    residual:
      - {type: conv1d, name: causal, out_channels: 2, kernel_size: 2, padding: causal}
"""


def test_repeated_warnings_are_collapsed_in_reports_but_listed_in_json(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    result = net(_SHIFTED_MERGES)
    unaligned = [w for w in result.warnings() if "not aligned" in w]
    assert [w.split(":")[0] for w in unaligned] == [f"stack.{i}.add" for i in range(5)]
    causal = [w for w in result.warnings() if "'causal' padding" in w]
    assert len(causal) == 5
    summary = result.warning_summary()
    assert summary == [
        f"5 layers (stack.0.causal, stack.1.causal, stack.2.causal and 2 more): {causal[0].split(': ', 1)[1]}",
        "5 layers (stack.0.add, stack.1.add, stack.2.add and 2 more): merged paths are not aligned (the inputs"
        " differ in effective stride or centre); the receptive field shown is the largest.",
    ]
    assert result.warning_summary(names=5)[1].startswith(
        "5 layers (stack.0.add, stack.1.add, stack.2.add, stack.3.add, stack.4.add):"
    )

    spec = tmp_path / "shifted.yaml"
    spec.write_text(_SHIFTED_MERGES)
    table = run_cli(["net", str(spec)]).stdout
    notes = table[table.index("notes") :].splitlines()
    assert notes[0] == "notes (repeats collapsed; --format json lists each):"
    assert len(notes) == 3 and not any("'stack.1.causal' (effective stride" in n for n in notes)
    markdown = run_cli(["net", str(spec), "--format", "markdown"]).stdout
    assert "- 5 layers (stack.0.add, stack.1.add, stack.2.add and 2 more): merged paths are not aligned" in markdown
    document = json.loads(run_cli(["net", str(spec), "--format", "json"]).stdout)
    assert document["warnings"] == result.warnings()
    assert len(document["warnings"]) == 10


def test_a_single_warning_keeps_its_full_text() -> None:
    text = """
input: 1x32
layers:
  - {type: zeropad1d, name: odd, padding: [[1, 0]]}
  - {type: crop1d, name: back, cropping: [[0, 1]]}
  - {type: add, name: last, inputs: [input, back]}
"""
    (line,) = net(text).warning_summary()
    assert line.startswith("last: merged paths are not aligned: 'input' (effective stride 1, centre 0) vs 'back'")


def test_deformable_makes_the_field_data_dependent_downstream() -> None:
    result = net(
        """
input: 8x12x12
layers:
  - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {type: deformable2d, name: dcn, out_channels: 8, kernel_size: 3, padding: 1}
  - {type: conv2d, name: after, out_channels: 8, kernel_size: 3, padding: 1}
  - flatten
"""
    )
    statuses = {r.name: r.rf_status for r in result.rows}
    assert statuses == {"0": "exact", "dcn": "data-dependent", "after": "data-dependent", "3": "no spatial axes"}
    assert any("data-dependent" in note for note in result.rows[1].notes)
    assert net_to_dict(result)["layers"][2]["receptive_field"] == "data-dependent"  # type: ignore[index]


# ==============================================================================================
# check and its formats
# ==============================================================================================

FAILING = """name: failing
input: 3x8x8
layers:
  - {type: conv2d, name: c, out_channels: 4, kernel_size: 3,
     expect: {shape: 4x8x8}}
expect:
  max_params: 10
  output_shape: 4x6x6
"""


def test_check_reports_each_failure_with_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "failing.yaml"
    spec.write_text(FAILING)
    (result,) = check([str(spec)])
    assert result.status == "fail"
    failed = [(e.where.line if e.where else None, e.message) for e in result.expectations if not e.ok]
    assert failed == [
        (5, "layer 'c' shape: expected 4x8x8, got 4x6x6"),
        (7, f"max_params: {4 * 3 * 3 * 3 + 4:,} > the limit 10"),
    ]
    assert check_exit_code([result]) == 1


def test_check_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("input: 3x8x8\nlayers: [relu]\nexpect: {output_shape: 3x8x8}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: 3x8x8\nlayers: [rleu]\n")
    assert check_exit_code(check([str(good)])) == 0
    assert check_exit_code(check([str(good), str(tmp_path / "failing.yaml")])) == 2  # missing file = bad input
    assert check_exit_code(check([str(tmp_path / "*.yaml")])) == 2
    assert [r.status for r in check([str(tmp_path / "*.yaml")])] == ["error", "pass"]


def test_github_annotations_escape_and_point_at_lines(tmp_path: Path) -> None:
    spec = tmp_path / "failing.yaml"
    spec.write_text(FAILING)
    lines = render_check(check([str(spec)]), "github").splitlines()
    assert lines[0] == f"::error file={spec},line=5,title=convcalc check::layer 'c' shape: expected 4x8x8, got 4x6x6"
    assert annotation("a,b:c.yaml", 3, "t: x", "50%\nnext") == "::error file=a%2Cb%3Ac.yaml,line=3,title=t%3A x::50%25%0Anext"


def test_junit_is_valid_xml_with_failures_and_errors(tmp_path: Path) -> None:
    (tmp_path / "failing.yaml").write_text(FAILING)
    (tmp_path / "broken.yaml").write_text("input: 3x8x8\nlayers: [rleu]\n")
    root = ET.fromstring(render_check(check([str(tmp_path / "*.yaml")]), "junit"))
    assert root.tag == "testsuites"
    assert (root.get("failures"), root.get("errors")) == ("2", "1")
    failures = [f.get("message") for f in root.iter("failure")]
    assert any(m and "failing.yaml:5" in m for m in failures)


# ==============================================================================================
# Rendering and the CLI
# ==============================================================================================


def test_json_contract(cli_json) -> None:
    data = cli_json(["net", str(EXAMPLES / "tiny_resnet.yaml")])
    for key in ("name", "input_shape", "output_shape", "totals", "layers"):
        assert key in data
    assert set(data["totals"]) >= {"params", "macs", "flops"}
    layer = data["layers"][0]
    assert set(layer) >= {"name", "type", "input_shape", "output_shape", "params", "macs", "receptive_field"}
    assert layer["receptive_field"][0] == {"axis": "H", "size": 3, "stride": 1, "start": 0, "padding": 1}
    assert data["totals"]["params"] == 175_258
    assert data["layers"][-1]["receptive_field"] == []  # the classifier's vector has no spatial axes


def test_table_has_rows_totals_breakdown_and_bars(run_cli) -> None:
    result = run_cli(["net", str(EXAMPLES / "tiny_resnet.yaml"), "--depth", "1"])
    assert result.code == 0, result.stderr
    out = result.stdout
    for text in (
        "layer1",
        "basic_block x2",
        "params: 175,258",
        "by layer type",
        "heaviest layers",
        "█",
        "expectations: 5 of 5 hold",
    ):
        assert text in out
    assert not [line for line in out.splitlines() if line.startswith("layer1.")], "table rows folded at depth 1"


@pytest.mark.parametrize("fmt", ["csv", "markdown"])
def test_csv_and_markdown(run_cli, fmt: str) -> None:
    result = run_cli(["net", str(EXAMPLES / "dilated_stack.yaml"), "--format", fmt])
    assert result.code == 0
    assert "15x15" in result.stdout
    if fmt == "csv":
        assert result.stdout.splitlines()[1].startswith("dilated.0,conv2d,1x32x32,1x32x32,10,9216,18432,")


def test_error_prints_the_table_up_to_the_failing_layer(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "mismatch.yaml"
    spec.write_text(
        "input: 3x16x16\nlayers:\n  - {type: conv2d, name: a, out_channels: 8, kernel_size: 3, padding: 1}\n"
        "  - {type: conv2d, name: b, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}\n"
        "  - {type: add, name: sum, inputs: [a, b]}\n"
    )
    result = run_cli(["net", str(spec)])
    assert result.code == 2
    lines = result.stdout.splitlines()
    assert "stopped at the failing layer" in lines[0]
    assert [line.split()[0] for line in lines[2:4]] == ["a", "b"], "the rows evaluated before the error"
    assert result.stderr.startswith(f"error: {spec}:5: layer 'sum': add needs equal shapes but got 'a' 8x16x16 and 'b' 8x8x8")
    assert "Traceback" not in result.output


def test_check_cli(run_cli, tmp_path: Path) -> None:
    (tmp_path / "failing.yaml").write_text(FAILING)
    result = run_cli(["check", str(tmp_path / "*.yaml"), "--format", "github"])
    assert result.code == 1
    assert result.stdout.startswith("::error file=")
    ok = run_cli(["check", str(EXAMPLES / "*.yaml")])
    assert ok.code == 0, ok.stdout + ok.stderr


def test_cells() -> None:
    assert [compact(v) for v in (999, 26_657_408, 4_100_000_000)] == ["999", "26.7M", "4.1G"]
    assert bar(0.5, 8) == "████    "
    assert bar(1 / 16, 8) == "▌       "


# ==============================================================================================
# Performance: linear, well under a second for 10,000 layers
# ==============================================================================================


def _deep(blocks: int) -> str:
    return f"""
input: 16x32x32
defaults: {{bias: false}}
define:
  block:
    layers:
      - residual:
          - {{type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}}
          - batchnorm2d
          - relu
          - {{type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}}
          - batchnorm2d
      - relu
layers:
  - {{type: block, name: body, repeat: {blocks}}}
"""


def _calls(blocks: int) -> int:
    """Python function calls made evaluating ``blocks`` residual blocks: a deterministic work count
    (timings belong in bench/network.py, never in unit tests)."""
    spec = parse_network(load_text(_deep(blocks), "deep.yaml"), "deep.yaml")
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        result = evaluate_network(spec)
    finally:
        sys.setprofile(None)
    assert len(result.rows) == 7 * blocks
    return calls


def test_ten_thousand_layers_evaluate_in_linear_work() -> None:
    small, large = _calls(715), _calls(1430)  # 5,005 and 10,010 layers
    assert large / small < 2.1, f"doubling the layers multiplied the work by {large / small:.2f}"
    assert MAX_LAYERS == 100_000


def test_json_is_serialisable_for_every_example() -> None:
    for spec in sorted(EXAMPLES.glob("*.yaml")):
        json.loads(render_network(evaluate_file(str(spec)), "json"))


# ==============================================================================================
# The documentation: the JSON Schema and the README's first spec
# ==============================================================================================

SPECS = EXAMPLES.parent


def test_every_spec_validates_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    validator = jsonschema.Draft202012Validator(json.loads((SPECS / "schema.json").read_text()))
    validator.check_schema(validator.schema)
    files = sorted(SPECS.glob("*.yaml")) + sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for spec in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(spec.read_text()))]
        assert not errors, f"{spec.name}: {errors[:3]}"
    for bad in ({"input": "3x8x8", "layer": ["relu"]}, {"input": "3x8x8", "layers": [{"branches": [[]], "merge": "sum"}]}):
        assert list(validator.iter_errors(bad))


def test_readme_first_spec_evaluates_as_documented() -> None:
    text = (SPECS / "README.md").read_text()
    block = text.split("## A first spec", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    result = net(block, "README.md")
    assert result.totals().params == 175_258
    assert all(e.ok for e in result.expectations)
    assert evaluate_file(str(EXAMPLES / "tiny_resnet.yaml")).totals() == result.totals()


def test_network_path_imports_neither_numpy_nor_rich() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from convcalc.network.evaluate import evaluate_file; from convcalc.render.network import render_network;"
        f"r = evaluate_file({str(EXAMPLES / 'tiny_resnet.yaml')!r});"
        "[render_network(r, f) for f in ('table', 'json', 'csv', 'markdown')];"
        "print(sorted(m for m in ('numpy', 'rich', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
