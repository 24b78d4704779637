"""Receptive fields through global context, against a brute-force dependency count.

The rule (issue 9; Araujo, Norris & Sim, Distill 2019, and the usual tools): a unit's field is the
bounding box of the input pixels that reach it along paths avoiding global reductions; the unit
*sees global context* iff some path through a global reduction reaches it. A global reduction is
a pooling whose single output unit reads its whole input map (of more than one position).

The brute force propagates SETS of input pixels through the network's flat stage graph. What each
op reads is measured, not assumed: the Jacobian of the op alone (run by the torch executor of
``tests/test_rf_bruteforce.py``: all-ones weights, positive inputs, so no dependency cancels)
says which input units each output unit depends on. Per output unit: ``L`` = the union of ``L``
of the units it reads (empty after a global reduction), ``g`` = any ``g`` of them (true after a
global reduction). convcalc's rows must agree: a field whose interval is the bounding box of
``L`` on interior units (within the stated upsampling slack), the ``global context`` status where
``L`` is empty, and the flag exactly where ``g`` holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_rf_bruteforce import apply, interior_units, interval, needs_torch, network, slack, torch

from convcalc.errors import ConvcalcError
from convcalc.network.evaluate import evaluate_file
from convcalc.network.result import LayerRow, NetResult
from convcalc.primitives.pool import AdaptivePool, Pool
from convcalc.render.network import net_to_dict, render_csv, render_markdown, render_table

SPECS = Path(__file__).resolve().parent.parent / "specs"

Sets = tuple[list[frozenset[int]], list[bool]]
"""Per spatial unit of a tensor (row-major): the input pixels reaching it locally, and whether global context does."""


def reads(op: object, shapes: Sequence[tuple[int, ...]], out: tuple[int, ...]) -> list[list[list[int]]]:
    """Per input, per output unit: the input units it depends on (a Jacobian of the op alone)."""
    inputs = tuple(torch.rand(1, *shape, dtype=torch.float64) + 0.5 for shape in shapes)
    jac = torch.autograd.functional.jacobian(lambda *xs: apply(op, list(xs), out), inputs, vectorize=True)
    result = []
    for shape, block in zip(shapes, jac, strict=True):
        units_out, units_in = math.prod(out[1:]), math.prod(shape[1:])
        dense = block.abs().reshape(out[0], units_out, shape[0], units_in).sum(dim=(0, 2)) > 0
        result.append([torch.nonzero(row).flatten().tolist() for row in dense])
    return result


def covers_whole_map(read: list[int], shape: tuple[int, ...]) -> bool:
    """The single unit reads units spanning every axis of its input map."""
    coords = [_coords(u, shape[1:]) for u in read]
    return all(min(c[a] for c in coords) == 0 and max(c[a] for c in coords) == n - 1 for a, n in enumerate(shape[1:]))


def _coords(unit: int, sizes: Sequence[int]) -> tuple[int, ...]:
    out = []
    for size in reversed(sizes):
        unit, rest = divmod(unit, size)
        out.append(rest)
    return tuple(reversed(out))


def propagate(result: NetResult) -> dict[str, Sets]:
    """The (L, g) sets of every stage of the flat graph."""
    shapes = {r.name: r.output for row in result.rows for r in row.stages}
    shapes["input"] = result.input_shape
    pixels = math.prod(result.input_shape[1:])
    sets: dict[str, Sets] = {"input": ([frozenset([u]) for u in range(pixels)], [False] * pixels)}
    for stage in result.stages:
        out = shapes[stage.name]
        ins = [shapes[name] for name in stage.inputs]
        per_input = reads(stage.op, ins, out)
        units = math.prod(out[1:])
        is_pool = isinstance(stage.op, (Pool, AdaptivePool))
        if is_pool and units == 1 and math.prod(ins[0][1:]) > 1 and covers_whole_map(per_input[0][0], ins[0]):
            sets[stage.name] = ([frozenset()], [True])
            continue
        local: list[frozenset[int]] = []
        context: list[bool] = []
        for u in range(units):
            local.append(frozenset().union(*(sets[n][0][v] for n, r in zip(stage.inputs, per_input, strict=True) for v in r[u])))
            context.append(any(sets[n][1][v] for n, r in zip(stage.inputs, per_input, strict=True) for v in r[u]))
        sets[stage.name] = (local, context)
    return sets


def assert_agrees(result: NetResult, row: LayerRow, sets: Sets) -> None:
    """convcalc's field, status and flag for ``row`` against the propagated sets."""
    local, context = sets
    sizes = row.output_shape[1:]
    assert row.global_context == any(context), f"{row.name}: flag {row.global_context}, brute force {any(context)}"
    assert all(context) or not any(context), f"{row.name}: context reaches some units only"
    if not any(local):
        assert row.rf_status == "global context" and row.field is None, row.name
        return
    assert row.field is not None, f"{row.name}: {row.rf_status}"
    assert all(local), f"{row.name}: some units have no local path"
    bounds = slack(result, row)
    for unit in interior_units(result, row):
        flat = 0
        for coord, size in zip(unit, sizes, strict=True):
            flat = flat * size + coord
        coords = [_coords(p, result.input_shape[1:]) for p in local[flat]]
        for axis, (field, o, extra) in enumerate(zip(row.field, unit, bounds, strict=True)):
            first, last = min(c[axis] for c in coords), max(c[axis] for c in coords)
            lo, hi = interval(field, o)
            message = f"{row.name} unit {unit} axis {axis}: brute force {first}..{last}, field {lo}..{hi} (slack {extra})"
            assert math.ceil(lo) <= first <= lo + extra, message
            assert hi - extra <= last <= math.floor(hi), message


def assert_network_agrees(result: NetResult) -> None:
    sets = propagate(result)
    for row in result.rows:
        if len(row.output_shape) > 1:
            assert_agrees(result, row, sets[row.name])


# ==============================================================================================
# The cases
# ==============================================================================================

SE_GATES = """
input: 4x8x8
define:
  se:
    params: {}
    layers:
      - {type: conv2d, name: conv, out_channels: 4, kernel_size: 1}
      - name: gate
        merge: multiply
        branches:
          - [identity]
          - [{type: adaptive_avgpool2d, output_size: 1}, {type: conv2d, out_channels: 2, kernel_size: 1}, relu,
             {type: conv2d, out_channels: 4, kernel_size: 1}, sigmoid]
layers:
  - {type: se, repeat: 3}
"""


def _gates(result: NetResult) -> list[LayerRow]:
    return [r for r in result.rows if r.type == "multiply"]


def test_three_se_gates_do_not_grow_the_field() -> None:
    """Before: 8, 15, 22 (each gate widened the field by the 8-wide map). The local paths are
    1x1 convs: the field stays 1x1, and from the first gate on the units see global context."""
    result = network(SE_GATES)
    gates = _gates(result)
    assert [[int(a.size) for a in g.field or ()] for g in gates] == [[1, 1]] * 3
    assert all(g.global_context for g in gates)
    assert not any(r.global_context for r in result.rows[: result.rows.index(gates[0])] if r.rf_status == "exact")


@needs_torch
def test_three_se_gates_match_brute_force() -> None:
    assert_network_agrees(network(SE_GATES))


GLOBAL_UPSAMPLED = """
input: 4x8x8
layers:
  - {type: global_avgpool, keepdims: true}
  - {type: upsample, size: 8, mode: bilinear}
"""


def test_global_pool_upsampled_back_is_global_context_not_23() -> None:
    row = network(GLOBAL_UPSAMPLED).rows[-1]
    assert (row.field, row.rf_status, row.global_context) == (None, "global context", True)


@needs_torch
def test_global_pool_upsampled_back_matches_brute_force() -> None:
    assert_network_agrees(network(GLOBAL_UPSAMPLED))


def test_deeplab_head_takes_the_field_of_its_local_branches() -> None:
    """specs/deeplab_aspp.yaml on its 33x33 map: the widest local branch is the rate-18 atrous
    3x3 (2·18 + 1 = 37), then the 3x3 conv (+2): 39, marked; the image-pooling branch adds none."""
    rows = {r.name: r for r in evaluate_file(str(SPECS / "deeplab_aspp.yaml")).rows}
    classifier = rows["classifier"]
    assert classifier.field is not None
    assert [a.size for a in classifier.field] == [2 * 18 + 1 + 2] * 2
    assert classifier.global_context and rows["aspp.convs.concat"].global_context
    assert rows["aspp.convs.4.upsample"].rf_status == "global context"
    assert not rows["aspp.convs.3.0"].global_context


def test_deeplabv3_fields_are_local_and_totals_are_torchvisions() -> None:
    """The issue's numbers: 427 at the backbone output (ResNet-50, output stride 8), 1,019 at the
    last classifier conv (+ 2·36·8 for the rate-36 branch, + 2·8 for the 3x3 conv) instead of a
    field widened by the image-pooling branch. The totals are torchvision's published pair for
    DeepLabV3_ResNet50_Weights (42,004,074 params, 178.722 GFLOPS), so the spec is that network
    (checked layer by layer against a torch build in tests/test_library_fcn.py)."""
    result = evaluate_file(str(SPECS / "deeplabv3_resnet50.yaml"))
    rows = {r.name: r for r in result.rows}
    backbone, head = rows["backbone.layer4.2.relu"], rows["classifier.4"]
    assert [a.size for a in backbone.field or ()] == [427, 427] and not backbone.global_context
    assert [a.size for a in head.field or ()] == [427 + 2 * 36 * 8 + 2 * 8] * 2 == [1_019] * 2
    assert head.global_context
    totals = result.totals()
    assert totals.params == 42_004_074
    assert round(totals.macs / 10**9, 3) == 178.722


def test_seed_dilated_stack_is_unchanged() -> None:
    sizes = []
    for depth in (1, 2, 3):
        rows = network(
            "input: 1x40x40\nlayers:\n"
            + f"  - {{type: conv2d, out_channels: 1, kernel_size: 3, repeat: {depth}, each: {{dilation: {[1, 2, 4][:depth]}}}}}\n"
        ).rows
        assert not rows[-1].global_context
        sizes.append(int((rows[-1].field or ())[0].size))
    assert sizes == [3, 7, 15]


def test_every_format_marks_global_context() -> None:
    result = network(SE_GATES)
    gate = _gates(result)[0]
    doc = net_to_dict(result)
    layers = {d["name"]: d for d in doc["layers"]}  # type: ignore[attr-defined]
    assert all(axis["global_context"] is True for axis in layers[gate.name]["receptive_field"])
    assert all("global_context" not in axis for axis in layers["0.0.conv"]["receptive_field"])
    assert layers["0.0.gate.branch2.0"]["receptive_field"] == "global context"
    table = render_table(result)
    assert "1x1 +g" in table and "+g global context:" in table
    markdown = render_markdown(result)
    assert "| 1x1 +g |" in markdown and "+g global context:" in markdown
    header, *lines = render_csv(result).splitlines()
    column = header.split(",").index("rf_global_context")
    flags = {line.split(",")[0]: line.split(",")[column] for line in lines}
    assert flags[gate.name] == "true" and flags["0.0.conv"] == "false"


def test_a_window_as_large_as_the_map_is_a_global_reduction() -> None:
    """avgpool2d with the map's size (pre-adaptive ResNets) reduces over all axes like global pooling."""
    result = network(
        """
input: 2x6x6
layers:
  - {type: conv2d, name: x, out_channels: 2, kernel_size: 3, padding: 1}
  - {type: avgpool2d, name: pool, kernel_size: 6}
  - {type: multiply, name: gated, inputs: [x, pool]}
"""
    )
    rows = {r.name: r for r in result.rows}
    assert rows["pool"].rf_status == "global context"
    assert rows["gated"].global_context and [a.size for a in rows["gated"].field or ()] == [3, 3]


# ==============================================================================================
# Property: small random graphs with gates, global pools, upsampling, dilation, stride, residuals
# ==============================================================================================

GLOBAL_POOLS = (
    "{type: global_avgpool, keepdims: true}",
    "{type: global_maxpool, keepdims: true}",
    "{type: adaptive_avgpool2d, output_size: 1}",
)


@st.composite
def graphs(draw: st.DrawFn) -> str:
    size = draw(st.integers(6, 10))
    lines = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "pool", "gate", "image_pool", "residual", "upsample", "whole_pool"]))
        glob = draw(st.sampled_from(GLOBAL_POOLS))
        if kind == "conv":
            k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
            p = draw(st.integers(0, d * (k - 1)))
            out = (size + 2 * p - d * (k - 1) - 1) // s + 1
            if out < 3:
                continue
            size = out
            lines.append(f"{{type: conv2d, out_channels: 2, kernel_size: {k}, stride: {s}, dilation: {d}, padding: {p}}}")
        elif kind == "pool":
            if size < 6:
                continue
            size = (size - 2) // 2 + 1
            lines.append(f"{{type: {draw(st.sampled_from(['maxpool2d', 'avgpool2d']))}, kernel_size: 2, stride: 2}}")
        elif kind == "gate":
            lines.append(
                f"{{merge: multiply, branches: [[identity], [{glob}, {{type: conv2d, out_channels: 2, kernel_size: 1}}, sigmoid]]}}"
            )
        elif kind == "image_pool":
            merge = draw(st.sampled_from(["add", "concat"]))
            mode = draw(st.sampled_from(["nearest", "bilinear"]))
            d = draw(st.integers(1, 2))
            lines.append(
                f"{{merge: {merge}, branches: [[{{type: conv2d, out_channels: 2, kernel_size: 3, dilation: {d}, padding: {d}}}],"
                f" [{glob}, {{type: conv2d, out_channels: 2, kernel_size: 1}}, {{type: upsample, size: {size}, mode: {mode}}}]]}}"
            )
            if merge == "concat":
                lines.append("{type: conv2d, out_channels: 2, kernel_size: 1}")
        elif kind == "residual":
            d = draw(st.integers(1, 3))
            lines.append(f"{{residual: [{{type: conv2d, out_channels: 2, kernel_size: 3, dilation: {d}, padding: {d}}}]}}")
        elif kind == "upsample":
            if size > 8:
                continue
            size *= 2
            lines.append("{type: upsample, scale_factor: 2, mode: nearest}")
        else:
            lines.append(
                f"{{merge: add, branches: [[identity], [{{type: avgpool2d, kernel_size: {size}}},"
                f" {{type: upsample, size: {size}, mode: nearest}}]]}}"
            )
    lines.append("{type: conv2d, out_channels: 1, kernel_size: 3, padding: 1}")
    return "input: 2x12x12\nlayers:\n" + "".join(f"  - {line}\n" for line in lines)


@needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graphs_match_brute_force(text: str) -> None:
    try:
        result = network(text)
    except ConvcalcError:
        assume(False)
        return
    assume(not [n for n in result.warnings() if "not aligned" in n])
    assert_network_agrees(result)


# ==============================================================================================
# The library numbers (specs written with issue 9's expressions)
# ==============================================================================================


@pytest.mark.parametrize(("name", "layer", "size", "before"), [
    ("efficientnet_b0", "features.8.0", 851, 4_153),
    ("mobilenet_v3_large", "features.16.0", 595, 2_235),
])  # fmt: skip
def test_library_fields_are_local_with_global_context(name: str, layer: str, size: int, before: int) -> None:
    rows = {r.name: r for r in evaluate_file(str(SPECS / f"{name}.yaml")).rows}
    row = rows[layer]
    assert row.field is not None and row.global_context
    assert [a.size for a in row.field] == [size, size], f"before issue 9: {before}"
