"""Issue 9's library networks: efficientnet_b0, mobilenet_v3_large, densenet121 (torchvision).

The torch side is ``tests/torch_zoo.py``: ``torch.nn`` builds with torchvision's module paths
(torchvision does not import here). The checks, for each network:

(a) the torch build against torchvision's published metadata: ``num_params`` exactly, and the
    conv + linear multiply-accumulates counted by PyTorch's ``FlopCounterMode`` (eval mode,
    batch 1, 3x224x224) rounded to the published GFLOPS at its digits (``_ops`` three decimals,
    the docs table two). This needs nothing from convcalc;
(b) the spec's own ``expect`` totals are the torch build's numbers (read from the YAML, so this
    holds before the spec can be evaluated);
(c) the spec passes ``convcalc check``;
(d) convcalc's ``net --format json`` against the torch build: total params, MACs and output
    shape; and layer by layer by name (the mapping of ``tests/test_library_imagenet.py``: every
    torch leaf names a convcalc row with the same output shape, every row is covered), each
    leaf's ``sum(p.numel())`` and ``FlopCounterMode`` MACs equal to the row's params and MACs.

The specs use expressions issue 9 added (string literals and comparisons, conditional
expressions, ``max``, ``make_divisible``, ``${...}`` in names, skipped items taking no position).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

import pytest

pytest.importorskip("torch")

import yaml
from test_library_imagenet import _shape, compare_layers, leaves, net_doc, rounded, rows_of, spec, torch_shapes, total
from torch_zoo import ZOO, flop_counter_macs

from convcalc.network.check import check_file

INPUT = (3, 224, 224)
PUBLISHED = {
    # torchvision weights metadata: (num_params, _ops, GFLOPS in the docs table)
    "efficientnet_b0": (5_288_548, "0.386", "0.39"),  # EfficientNet_B0_Weights.IMAGENET1K_V1
    "mobilenet_v3_large": (5_483_032, "0.217", "0.22"),  # MobileNet_V3_Large_Weights (V1 and V2)
    "densenet121": (7_978_856, "2.834", "2.83"),  # DenseNet121_Weights.IMAGENET1K_V1
}
class TorchFacts(NamedTuple):
    params: int
    macs: int
    leaf_params: dict[str, int]
    leaf_macs: dict[str, int]
    shapes: dict[str, tuple[int, ...]]


@functools.cache
def torch_facts(name: str) -> TorchFacts:
    """Everything the tests need from one build (each network is built and run once per session)."""
    import torch

    torch.manual_seed(0)
    model = ZOO[name]().eval()
    macs, per_module = flop_counter_macs(model, INPUT)
    named_leaves = dict(leaves(model))
    return TorchFacts(
        params=sum(p.numel() for p in model.parameters()),
        macs=macs,
        leaf_params={n: sum(p.numel() for p in m.parameters()) for n, m in named_leaves.items()},
        leaf_macs={n: per_module.get(n, 0) for n in named_leaves},
        shapes=torch_shapes(model, INPUT),
    )


# ----------------------------------------------------------------------------------------------
# (a) the torch builds against torchvision's published numbers (no convcalc involved)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ZOO))
def test_torch_build_has_torchvision_published_numbers(name: str) -> None:
    params, ops, docs = PUBLISHED[name]
    facts = torch_facts(name)
    assert facts.params == params
    assert rounded(facts.macs, 10**9, ops) == Decimal(ops), f"{facts.macs:,} MACs vs _ops {ops}"
    assert rounded(facts.macs, 10**9, docs) == Decimal(docs), f"{facts.macs:,} MACs vs docs {docs}"


def test_torch_builds_run_every_leaf_and_name_the_functional_ops() -> None:
    """The operations torchvision does functionally are hooked modules here, one per call site."""
    shapes = {name: torch_facts(name).shapes for name in ZOO}
    eff, mnv3, dense = shapes["efficientnet_b0"], shapes["mobilenet_v3_large"], shapes["densenet121"]
    assert eff["features.2.1.block.2.multiply"] == (144, 56, 56)  # SE gate x features
    assert eff["features.2.1.block.2.fc1"] == (6, 1, 1)  # squeeze: max(1, 24 // 4) of the block's input
    assert eff["features.2.1.add"] == eff["features.2.1.stochastic_depth"] == (24, 56, 56)
    assert "features.2.0.add" not in eff and "features.2.0.stochastic_depth" not in eff  # stride 2: no residual
    assert mnv3["features.4.block.2.fc1"] == (24, 1, 1)  # make_divisible(72 // 4, 8) = 24 (not 18)
    assert mnv3["features.1.block.0.0"] == (16, 112, 112)  # no expansion: the depthwise conv comes first
    assert dense["features.denseblock1.denselayer6.concat"] == (256, 56, 56)  # 64 + 6 x 32
    assert dense["features.transition1.pool"] == (128, 28, 28)


# ----------------------------------------------------------------------------------------------
# (b) the specs' expectations are the torch numbers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ZOO))
def test_spec_expectations_are_the_torch_numbers(name: str) -> None:
    with open(spec(name), encoding="utf-8") as handle:
        expect = yaml.safe_load(handle)["expect"]
    facts = torch_facts(name)
    assert expect["params"] == facts.params == PUBLISHED[name][0]
    assert expect["macs"] == facts.macs
    assert expect["output_shape"] == [1000]


# ----------------------------------------------------------------------------------------------
# (c), (d) the specs evaluated by convcalc
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ZOO))
def test_spec_passes_its_expectations(name: str) -> None:
    result = check_file(spec(name))
    assert result.error is None, f"{name}: {result.error}"
    failed = [e.message for e in result.expectations if not e.ok]
    assert not failed, failed
    assert {"params", "macs", "output_shape"} <= {e.what for e in result.expectations}


@pytest.mark.parametrize("name", list(ZOO))
def test_spec_totals_equal_the_torch_build(name: str, run_cli: Callable[..., object]) -> None:
    doc = net_doc(name, run_cli)
    facts = torch_facts(name)
    assert _shape(doc["input_shape"]) == INPUT
    assert total(doc, "params") == facts.params
    assert total(doc, "macs") == facts.macs
    assert _shape(doc["output_shape"]) == (1000,)


@pytest.mark.parametrize("name", list(ZOO))
def test_spec_agrees_with_the_torch_build_layer_by_layer(name: str, run_cli: Callable[..., object]) -> None:
    rows = rows_of(net_doc(name, run_cli))
    facts = torch_facts(name)
    problems = compare_layers(rows, facts.shapes)
    assert not problems, "\n".join(problems[:20])
    by_name = {str(r["name"]): r for r in rows}
    wrong = [
        f"{leaf}: torch {facts.leaf_params[leaf]} params / {facts.leaf_macs[leaf]} MACs, "
        f"convcalc {by_name[leaf]['params']} / {by_name[leaf]['macs']}"
        for leaf in facts.shapes
        if (int(by_name[leaf]["params"]), int(by_name[leaf]["macs"])) != (facts.leaf_params[leaf], facts.leaf_macs[leaf])  # type: ignore[call-overload]
    ]
    assert not wrong, "\n".join(wrong[:20])


def test_mobilenet_v3_width_multiplier_by_set_equals_the_torch_build(run_cli: Callable[..., object]) -> None:
    """``--set width_mult=0.75``: every width through torchvision's ``adjust_channels``
    (``_make_divisible(c * width_mult, 8)``, 0.75 exactly), the squeeze from the adjusted width, the
    last channel ``adjust_channels(1280)``; the torch build scales the same table."""
    import json
    from fractions import Fraction

    import torch
    from torch import nn
    from torch_zoo import MOBILENET_V3_BN_EPS, MOBILENET_V3_LARGE, conv_norm_act, inverted_residual_v3, make_divisible

    def adjust(c: int) -> int:
        return make_divisible(c * Fraction(3, 4), 8)

    table = [(adjust(cin), k, adjust(e), adjust(c), se, act, s) for cin, k, e, c, se, act, s, _ in MOBILENET_V3_LARGE]
    last_in, last_channel = table[-1][3], adjust(1280)
    model = nn.Sequential(
        conv_norm_act(3, table[0][0], 3, 2, activation=nn.Hardswish, eps=MOBILENET_V3_BN_EPS),
        *(inverted_residual_v3(*row) for row in table),
        conv_norm_act(last_in, 6 * last_in, 1, activation=nn.Hardswish, eps=MOBILENET_V3_BN_EPS),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6 * last_in, last_channel), nn.Hardswish(), nn.Linear(last_channel, 1000),
    )  # fmt: skip
    torch.manual_seed(0)
    macs, _ = flop_counter_macs(model, INPUT)
    result = run_cli(["net", "mobilenet_v3_large", "--set", "width_mult=0.75", "--format", "json"])
    assert result.code == 0, result.output  # type: ignore[attr-defined]
    doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert total(doc, "params") == sum(p.numel() for p in model.parameters())
    assert total(doc, "macs") == macs
    assert all(e["skipped"] for e in doc["expectations"])  # stated for width 1.0
