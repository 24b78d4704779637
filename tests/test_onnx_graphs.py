"""Hand-built ONNX graphs (``onnx.helper``) for what the PyTorch exporters do not emit, bad models,
and the CLI around ``convcalc import``.

References: the ONNX reference implementation (``onnx.reference.ReferenceEvaluator``) runs each
graph on a random input, so every row's output shape is compared with the shape ONNX itself
computes; parameter counts are the sizes of the graph's learnable initializers.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")
np = pytest.importorskip("numpy")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from convcalc.errors import SpecError  # noqa: E402
from convcalc.interop.onnx import import_model  # noqa: E402

F = TensorProto.FLOAT


def init(name: str, *shape: int) -> Any:
    rng = np.random.default_rng(len(name))
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def ints(name: str, values: list[int]) -> Any:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def model(
    nodes: list[Any], inits: list[Any], in_shape: list[Any], outputs: list[str], opset: int = 19, value_info: list[Any] = ()
) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, in_shape)],
        [helper.make_tensor_value_info(o, F, None) for o in outputs],
        inits,
        value_info=list(value_info),
    )
    domains = [helper.make_opsetid("", opset), helper.make_opsetid("com.example", 1)]
    return helper.make_model(graph, opset_imports=domains)


def run_shapes(proto: Any, in_shape: list[int]) -> dict[str, tuple[int, ...]]:
    """Every intermediate tensor's shape (batch dropped) from running ONNX's reference implementation."""
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    names = [o for n in probe.graph.node for o in n.output if o]
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_tensor_value_info(n, F, None) for n in names)
    x = np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)
    values = ReferenceEvaluator(probe).run(None, {"x": x})
    return {name: tuple(v.shape[1:]) for name, v in zip(names, values, strict=True)}


def check_against_reference(proto: Any, in_shape: list[int]) -> Any:
    imported = import_model(proto)
    shapes = run_shapes(proto, in_shape)
    for layer in imported.layers:
        row = imported.result.rows[[r.name for r in imported.result.rows].index(layer.name)]
        assert row.output_shape == shapes[layer.output], layer.name
    return imported


def row(imported: Any, name: str) -> Any:
    return next(r for r in imported.result.rows if r.name == name)


def test_conv_auto_pad_same_lower_and_upper() -> None:
    """SAME_LOWER puts the odd padding unit first, SAME_UPPER last (ONNX Conv spec)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], "lower", kernel_shape=[4, 4], strides=[2, 2], auto_pad="SAME_LOWER"),
        helper.make_node("Conv", ["a", "w2", "b2"], ["y"], "upper", kernel_shape=[2, 3], auto_pad="SAME_UPPER"),
    ]
    proto = model(nodes, [init("w1", 8, 3, 4, 4), init("w2", 6, 8, 2, 3), init("b2", 6)], [1, 3, 9, 9], ["y"])
    imported = check_against_reference(proto, [1, 3, 9, 9])
    lower, upper = imported.layers
    # out = ceil(9/2) = 5; total = (5-1)*2 + 4 - 9 = 3 -> (2, 1) for SAME_LOWER
    assert lower.fields["padding"] == 0 or lower.fields["padding"] == [[2, 1], [2, 1]]
    assert lower.fields["padding"] == [[2, 1], [2, 1]]
    # stride 1: total = k - 1 -> (0, 1) along H (k=2), (1, 1) along W (k=3) for SAME_UPPER
    assert upper.fields["padding"] == [[0, 1], [1, 1]]
    assert imported.result.totals().params == 8 * 3 * 16 + 6 * 8 * 6 + 6


def test_deform_conv_absorbs_its_offset_and_mask_convs() -> None:
    """DeformConv fed by offset = Conv(x) and mask = Sigmoid(Conv(x)) is one deformable2d row whose
    parameters are every initializer of the four nodes (convcalc's offset conv has 3·G·K channels)."""
    k, g = 3, 2
    nodes = [
        helper.make_node("Conv", ["x", "wo", "bo"], ["offset"], "offset_conv", kernel_shape=[k, k], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "wm", "bm"], ["m"], "mask_conv", kernel_shape=[k, k], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["m"], ["mask"], "mask_sigmoid"),
        helper.make_node(
            "DeformConv", ["x", "w", "offset", "b", "mask"], ["y"], "dcn", kernel_shape=[k, k], pads=[1, 1, 1, 1], offset_group=g
        ),
    ]
    inits = [
        init("wo", 2 * g * k * k, 4, k, k),
        init("bo", 2 * g * k * k),
        init("wm", g * k * k, 4, k, k),
        init("bm", g * k * k),
        init("w", 2, 4, k, k),
        init("b", 2),
    ]
    proto = model(nodes, inits, [1, 4, 4, 4], ["y"])
    imported = import_model(proto)
    (layer,) = imported.layers
    assert layer.type == "deformable2d" and layer.fields["version"] == 2 and layer.fields["offset_groups"] == g
    assert imported.result.totals().params == sum(math.prod(t.dims) for t in inits)
    assert imported.result.output_shape == run_shapes(proto, [1, 4, 4, 4])["y"]
    # an offset that does not come from a conv of the same input cannot be expressed
    nodes[0] = helper.make_node("Relu", ["x"], ["r"], "relu")
    nodes.insert(1, helper.make_node("Conv", ["r", "wo", "bo"], ["offset"], "offset_conv", kernel_shape=[k, k], pads=[1, 1, 1, 1]))
    with pytest.raises(SpecError, match=r"DeformConv node 'dcn': its offsets do not come from a Conv"):
        import_model(model(nodes, inits, [1, 4, 4, 4], ["y"]))


def test_lrn_reduce_mean_keepdims_and_split_with_sizes() -> None:
    nodes = [
        helper.make_node("LRN", ["x"], ["n"], "norm1", size=5, alpha=2e-4, beta=0.75, bias=2.0),
        helper.make_node("Split", ["n", "sizes"], ["a", "b", "c"], "split", axis=1),
        helper.make_node("ReduceMean", ["a", "hw"], ["ga"], "gap_keep", keepdims=1),
        helper.make_node("ReduceMean", ["b", "hw"], ["gb"], "gap_drop", keepdims=0),
        helper.make_node("ReduceMax", ["c", "w_axis"], ["gc"], "max_w", keepdims=1),
    ]
    inits = [ints("sizes", [2, 3, 5]), ints("hw", [2, 3]), ints("w_axis", [-1])]
    proto = model(nodes, inits, [1, 10, 6, 7], ["ga", "gb", "gc"], opset=18)
    imported = check_against_reference(proto, [1, 10, 6, 7])
    types = {layer.name: (layer.type, layer.fields) for layer in imported.layers}
    assert types["norm1"] == ("local_response_norm", {"size": 5, "alpha": 2e-4, "k": 2.0})
    assert [types[n][0] for n in ("split", "split_2", "split_3")] == ["channel_slice"] * 3
    assert types["gap_keep"] == ("global_avgpool", {})
    assert types["gap_drop"] == ("global_avgpool", {"keepdims": False})
    assert types["max_w"] == ("adaptive_maxpool2d", {"output_size": [None, 1]})
    assert row(imported, "norm1").other_ops == (5 + 5) * 10 * 6 * 7  # (size + 5)·numel (PyTorch's LocalResponseNorm)


def test_norms_and_activations_by_op() -> None:
    nodes = [
        helper.make_node("GroupNormalization", ["x", "gs", "gb"], ["g"], "gn", num_groups=2),
        helper.make_node("InstanceNormalization", ["g", "is", "ib"], ["i"], "inorm"),
        helper.make_node("HardSigmoid", ["i"], ["h"], "hsig", alpha=1 / 6, beta=0.5),
        helper.make_node("PRelu", ["h", "slope"], ["p"], "prelu"),
        helper.make_node("Gelu", ["p"], ["q"], "gelu", approximate="tanh"),
        helper.make_node("HardSwish", ["q"], ["y"], "hswish"),
    ]
    inits = [init("gs", 6), init("gb", 6), init("is", 6), init("ib", 6), init("slope", 6, 1, 1)]
    proto = model(nodes, inits, [1, 6, 5, 5], ["y"], opset=21)
    imported = import_model(proto)
    assert [(layer.type, layer.fields) for layer in imported.layers] == [
        ("groupnorm", {"num_groups": 2}),
        ("instancenorm2d", {"affine": True}),
        ("hardsigmoid", {}),
        ("prelu", {"num_parameters": 6}),
        ("gelu", {"approximate": "tanh"}),
        ("hardswish", {}),
    ]
    assert imported.result.totals().params == sum(math.prod(t.dims) for t in inits)
    per_group = model([nodes[0]], [init("gs", 2), init("gb", 2)], [1, 6, 5, 5], ["g"], opset=18)
    with pytest.raises(SpecError, match=r"GroupNormalization \(1 node: 'gn'\): .*per group, opset 18"):
        import_model(per_group)


def test_split_into_equal_chunks_is_torch_chunk() -> None:
    nodes = [helper.make_node("Split", ["x"], ["a", "b", "c"], "s", axis=1, num_outputs=3)]
    proto = model(nodes, [], [1, 7, 4, 4], ["a", "b", "c"], opset=18)
    imported = check_against_reference(proto, [1, 7, 4, 4])
    assert [(layer.type, layer.fields) for layer in imported.layers] == [
        ("chunk", {"chunks": 3, "index": i}) for i in range(3)
    ]  # torch.chunk(7, 3): 3, 3, 1 channels


def test_ops_with_attributes_moved_to_inputs_across_opsets() -> None:
    """Pad/Clip/Resize/ReduceMean/Split read attributes before their opset change, inputs after."""
    old = model(
        [
            helper.make_node("Pad", ["x"], ["p"], "pad", pads=[0, 0, 1, 2, 0, 0, 1, 2]),
            helper.make_node("Clip", ["p"], ["c"], "clip", min=0.0, max=6.0),
            helper.make_node("ReduceMean", ["c"], ["y"], "gap", axes=[2, 3], keepdims=1),
        ],
        [],
        [1, 3, 5, 5],
        ["y"],
        opset=10,
    )
    new = model(
        [
            helper.make_node("Pad", ["x", "pads"], ["p"], "pad"),
            helper.make_node("Clip", ["p", "lo", "hi"], ["c"], "clip"),
            helper.make_node("ReduceMean", ["c", "axes"], ["y"], "gap", keepdims=1),
        ],
        [
            ints("pads", [0, 0, 1, 2, 0, 0, 1, 2]),
            numpy_helper.from_array(np.array(0, np.float32), "lo"),
            numpy_helper.from_array(np.array(6, np.float32), "hi"),
            ints("axes", [2, 3]),
        ],
        [1, 3, 5, 5],
        ["y"],
        opset=18,
    )
    for proto in (old, new):
        imported = check_against_reference(proto, [1, 3, 5, 5])
        assert [(layer.type, layer.fields) for layer in imported.layers] == [
            ("zeropad2d", {"padding": [[1, 1], [2, 2]]}),
            ("relu6", {}),
            ("global_avgpool", {}),
        ]


def test_channels_last_input_of_tensorflow_exports() -> None:
    """tf2onnx-style NHWC input transposed to NCHW: the spec's input is channels_last, no row for it."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], "to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "w", "b"], ["c"], "conv", kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], "gap"),
        helper.make_node("Flatten", ["p"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], "dense", transB=1),
    ]
    inits = [init("w", 8, 3, 3, 3), init("b", 8), init("fc_w", 4, 8), init("fc_b", 4)]
    proto = model(nodes, inits, [1, 9, 11, 3], ["y"])
    imported = check_against_reference(proto, [1, 9, 11, 3])
    assert imported.spec["input"] == {"shape": "9x11x3", "layout": "channels_last"}
    assert [r.name for r in imported.result.rows] == ["conv", "gap", "flatten", "dense"]
    assert imported.result.rows[0].output_shape == (8, 4, 5)
    assert imported.result.totals().params == sum(math.prod(t.dims) for t in inits)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", kernel_shape=[3, 3])
    mid = model([conv, helper.make_node("Transpose", ["c"], ["y"], "to_nhwc", perm=[0, 2, 3, 1])], inits[:2], [1, 3, 9, 9], ["y"])
    with pytest.raises(SpecError, match=r"Transpose \(1 node: 'to_nhwc'\)"):
        import_model(mid)


def test_conv_transpose_output_shape() -> None:
    """output_shape sets the pads (ONNX ConvTranspose spec): 5 -> 10 and 11 with k=3, s=2."""
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], "up", kernel_shape=[3, 3], strides=[2, 2], output_shape=[10, 11])]
    imported = import_model(model(nodes, [init("w", 3, 8, 3, 3)], [1, 3, 5, 5], ["y"], opset=13))
    assert imported.result.output_shape == (8, 10, 11)
    # total padding = s·(i-1) + k - out = 8 + 3 - 10 = 1 and 0: the odd unit at the start (not SAME_UPPER)
    assert imported.layers[0].fields["padding"] == [[1, 0], [0, 0]]


def test_conv_transpose_and_resize_and_depth_to_space() -> None:
    nodes = [
        helper.make_node(
            "ConvTranspose", ["x", "w"], ["t"], "up", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0], output_padding=[1, 0]
        ),
        helper.make_node("Resize", ["t", "", "scales"], ["r"], "resize", mode="linear"),
        helper.make_node("DepthToSpace", ["r"], ["y"], "d2s", blocksize=2, mode="CRD"),
    ]
    inits = [init("w", 3, 8, 3, 3), numpy_helper.from_array(np.array([1, 1, 1.5, 2], np.float32), "scales")]
    proto = model(nodes, inits, [1, 3, 5, 5], ["y"], opset=13)
    imported = check_against_reference(proto, [1, 3, 5, 5])
    up, resize, d2s = imported.layers
    assert up.type == "conv_transpose2d" and up.fields["out_channels"] == 8
    assert resize.fields == {"scale_factor": [1.5, 2], "mode": "bilinear"}
    assert d2s.type == "pixel_shuffle"
    # transposed conv MACs per input position: in_positions x C_in x C_out x k²
    assert row(imported, "up").macs == 5 * 5 * 3 * 8 * 9


def test_matmul_add_is_linear_and_named_from_node_names() -> None:
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], "flatten", axis=1),
        helper.make_node("MatMul", ["f", "W"], ["m"], "dense"),
        helper.make_node("Add", ["m", "B"], ["a"], "dense_bias"),
        helper.make_node("Mul", ["a", "half"], ["h"], "scale"),
        helper.make_node("Softmax", ["h"], ["y"], "probs", axis=-1),
    ]
    inits = [init("W", 48, 10), init("B", 10), numpy_helper.from_array(np.array(0.5, np.float32), "onnx::Mul_1")]
    nodes[3] = helper.make_node("Mul", ["a", "onnx::Mul_1"], ["h"], "scale")
    proto = model(nodes, inits, [1, 3, 4, 4], ["y"])
    imported = check_against_reference(proto, [1, 3, 4, 4])
    assert [(r.name, r.type) for r in imported.result.rows] == [
        ("flatten", "flatten"),
        ("dense", "linear"),
        ("scale", "elementwise"),
        ("probs", "softmax"),
    ]
    assert imported.result.totals().params == 48 * 10 + 10  # the scalar 0.5 is not a parameter
    assert imported.result.totals().macs == 48 * 10


def scalar(name: str, value: float) -> Any:
    return numpy_helper.from_array(np.array(value, np.float32), name)


def erf_gelu(x: str, out: str, divide_by: float = math.sqrt(2)) -> list[Any]:
    """GELU as x·½(1 + erf(x/√2)), written Mul(x, 1/√2) (not the exporters' Div) with the ½ before the x."""
    return [
        helper.make_node("Mul", [x, "inv_r2"], ["g0"], "gelu_scale"),
        helper.make_node("Erf", ["g0"], ["g1"], "erf"),
        helper.make_node("Add", ["one", "g1"], ["g2"], "gelu_add"),
        helper.make_node("Mul", ["g2", "half"], ["g3"], "gelu_half"),
        helper.make_node("Mul", [x, "g3"], [out], "gelu"),
    ]


GELU_CONSTANTS = [scalar("inv_r2", 1 / math.sqrt(2)), scalar("one", 1.0), scalar("half", 0.5)]


def test_gelu_subgraph_and_unsqueeze_back_to_a_gate() -> None:
    """Another spelling of the erf GELU is still one gelu row; an Unsqueeze of N x C to N x C x 1 x 1
    (opset 13: axes as an input) is an unflatten row, so the gate's multiply broadcasts as in ONNX."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv", kernel_shape=[3, 3]),
        *erf_gelu("c", "a"),
        helper.make_node("GlobalAveragePool", ["a"], ["p"], "pool"),
        helper.make_node("Flatten", ["p"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "fc_w"], ["s"], "fc", transB=1),
        helper.make_node("Unsqueeze", ["s", "axes"], ["u"], "view"),
        helper.make_node("Mul", ["a", "u"], ["y"], "gate"),
    ]
    inits = [init("w", 6, 3, 3, 3), init("fc_w", 6, 6), ints("axes", [2, 3]), *GELU_CONSTANTS]
    imported = check_against_reference(model(nodes, inits, [1, 3, 7, 7], ["y"], opset=13), [1, 3, 7, 7])
    assert [(layer.name, layer.type) for layer in imported.layers] == [
        ("conv", "conv2d"), ("erf", "gelu"), ("pool", "global_avgpool"), ("flatten", "flatten"),
        ("fc", "linear"), ("view", "unflatten"), ("gate", "multiply"),
    ]  # fmt: skip
    assert imported.layers[5].fields == {"dim": 1, "unflattened_size": [6, 1, 1]}
    assert imported.result.totals().params == 6 * 3 * 9 + 6 * 6


BAD_PATTERNS = [
    pytest.param(
        [*erf_gelu("x", "y")[:1], helper.make_node("Erf", ["g0"], ["y"], "erf")],
        r"Erf \(1 node: 'erf'\): Erf node 'erf' is not part of GELU",
        id="erf-alone",
    ),
    pytest.param(
        [helper.make_node("Mul", ["x", "one"], ["g0"], "gelu_scale"), *erf_gelu("x", "y")[1:]],
        r"Erf node 'erf' is not part of GELU",
        id="gelu-with-the-wrong-scale",
    ),
    pytest.param(
        [*erf_gelu("x", "y"), helper.make_node("Relu", ["g1"], ["z"], "reads_erf")],
        r"Erf node 'erf' is not part of GELU",
        id="erf-output-read-elsewhere",
    ),
    pytest.param(
        [
            helper.make_node("Reshape", ["x", "grouped"], ["r"], "split"),
            helper.make_node("Transpose", ["r"], ["t"], "swap", perm=[0, 2, 1, 3, 4]),
            helper.make_node("Reshape", ["t", "other"], ["y"], "merge"),
        ],
        r"Transpose node 'swap' permutes axes \[0, 2, 1, 3, 4\]",
        id="shuffle-not-reshaped-back",
    ),
    pytest.param(
        [helper.make_node("Reshape", ["x", "mixed"], ["y"], "mix")],
        r"Reshape node 'mix' reshapes 1x8x4x4 to 1x4x8x4, which is neither a flatten nor an unflatten",
        id="reshape-that-moves-sizes",
    ),
]


@pytest.mark.parametrize(("nodes", "message"), BAD_PATTERNS)
def test_near_misses_of_the_patterns_exit_2_naming_the_node(nodes: list[Any], message: str) -> None:
    inits = [*GELU_CONSTANTS, ints("grouped", [1, 2, 4, 4, 4]), ints("other", [1, 8, 16]), ints("mixed", [1, 4, 8, 4])]
    with pytest.raises(SpecError, match=message) as err:
        import_model(model(nodes, inits, [1, 8, 4, 4], ["y"]))
    assert err.value.exit_code == 2


# ----------------------------------------------------------------------------------------------
# Bad models and the CLI
# ----------------------------------------------------------------------------------------------


def small(tmp_path: Path, in_shape: list[Any] | None = None, extra: list[Any] | None = None, info: list[Any] = ()) -> Path:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["y"], "relu"),
        *(extra or []),
    ]
    out = nodes[-1].output[0]
    path = tmp_path / "small.onnx"
    proto = model(nodes, [init("w", 4, 3, 3, 3)], in_shape or [1, 3, 8, 8], [out], value_info=info)
    path.write_bytes(proto.SerializeToString())
    return path


def assert_bad(result: Any, *words: str) -> None:
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.stderr, result.stderr


def test_truncated_and_non_onnx_files_exit_2(run_cli: Any, tmp_path: Path) -> None:
    path = small(tmp_path)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:50])
    assert_bad(run_cli(["import", str(truncated)]), "not an ONNX model")
    text = tmp_path / "notes.onnx"
    text.write_text("name: not a model\n")
    assert_bad(run_cli(["import", str(text)]), "not an ONNX model")
    assert_bad(run_cli(["import", str(tmp_path / "missing.onnx")]), "no such file")


def test_unknown_ops_exit_2_listing_them_or_become_unknown_rows(run_cli: Any, tmp_path: Path) -> None:
    extra = [
        helper.make_node("Erf", ["y"], ["e"], "erf_1"),
        helper.make_node("MyOp", ["e"], ["z"], "custom_1", domain="com.example"),
    ]
    path = small(tmp_path, extra=extra, info=[helper.make_tensor_value_info("z", F, [1, 4, 6, 6])])
    result = run_cli(["import", str(path)])
    assert_bad(result, "Erf (1 node: 'erf_1')", "MyOp (1 node: 'custom_1')", "--allow-unknown")
    kept = run_cli(["import", str(path), "--allow-unknown", "-o", str(tmp_path / "s.yaml")])
    assert kept.code == 0, kept.output
    assert "2 unknown layer(s)" in kept.stderr
    spec = (tmp_path / "s.yaml").read_text()
    assert spec.count("type: unknown") == 2 and "UNKNOWN: ONNX MyOp" in spec
    doc = json.loads(run_cli(["net", str(tmp_path / "s.yaml"), "--format", "json"]).stdout)
    unknown = [r for r in doc["layers"] if r["type"] == "unknown"]
    assert [r["output_shape"] for r in unknown] == [[4, 6, 6], [4, 6, 6]]
    assert all("NOT counted" in r["notes"][0] for r in unknown)
    assert any("NOT counted" in w for w in doc["warnings"])
    table = run_cli(["net", str(tmp_path / "s.yaml")]).stdout
    assert "unknown" in table and "NOT counted" in table


def test_dynamic_shapes_need_in(run_cli: Any, tmp_path: Path) -> None:
    path = small(tmp_path, in_shape=["N", 3, "H", "W"])
    assert_bad(run_cli(["import", str(path)]), "dynamic dimensions (H, W)", "--in")
    fixed = run_cli(["import", str(path), "--in", "3x10x12"])
    assert fixed.code == 0 and "input: 3x10x12" in fixed.stdout
    assert_bad(run_cli(["import", str(path), "--in", "3x10"]), "--in has 2 sizes")


def test_cycle_exits_2(run_cli: Any, tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], "first"),
        helper.make_node("Relu", ["a"], ["b"], "second"),
    ]
    path = tmp_path / "cycle.onnx"
    path.write_bytes(model(nodes, [], [1, 3, 4, 4], ["b"]).SerializeToString())
    assert_bad(run_cli(["import", str(path)]), "cycle", "'first'", "'second'")


def test_missing_onnx_package_names_the_install_command(run_cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    path = small(tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert_bad(run_cli(["import", str(path)]), "pip install 'convcalc[onnx]'")


def test_check_against_by_order_for_unnamed_graphs(run_cli: Any, tmp_path: Path) -> None:
    """A spec with its own names matches a graph by position (--by-order), not by name."""
    path = small(tmp_path)
    spec = tmp_path / "design.yaml"
    spec.write_text(
        "input: 3x8x8\nlayers:\n"
        "  - {type: conv2d, name: stem, out_channels: 4, kernel_size: 3, bias: false}\n"
        "  - {type: relu, name: act}\n"
    )
    by_name = run_cli(["check", str(spec), "--against", str(path)])
    assert by_name.code == 1 and "in the spec but not in the model" in by_name.stdout
    assert run_cli(["check", str(spec), "--against", str(path), "--by-order"]).code == 0
    resized = run_cli(["check", str(spec), "--against", str(path), "--by-order", "--in", "3x10x10"])  # --in applies to the spec
    assert resized.code == 1 and "output shape: spec 4x8x8, model 4x6x6" in resized.stdout
    spec.write_text(spec.read_text().replace("kernel_size: 3", "kernel_size: 3, padding: 1"))
    wrong = run_cli(["check", str(spec), "--against", str(path), "--by-order"])
    assert wrong.code == 1
    assert f"{spec}:3: layer 'stem' / model 'conv': output shape: spec 4x8x8, model 4x6x6" in wrong.stdout
    assert "(ONNX node 'conv')" in wrong.stdout
    assert_bad(run_cli(["check", str(spec), str(spec), "--against", str(path)]), "one spec")


def test_a_layer_convcalc_refuses_exits_2_naming_the_node(run_cli: Any, tmp_path: Path) -> None:
    """ONNX allows pool padding larger than half the kernel; PyTorch (and convcalc) do not."""
    extra = [helper.make_node("MaxPool", ["y"], ["m"], "wide_pad", kernel_shape=[2, 2], pads=[2, 2, 2, 2])]
    path = small(tmp_path, extra=extra)
    assert_bad(run_cli(["import", str(path)]), "cannot evaluate the imported layer", "(ONNX node 'wide_pad')")


def test_empty_files_two_inputs_and_nothing_to_import_exit_2(run_cli: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert_bad(run_cli(["import", str(empty)]), "not an ONNX model")
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(bytes(range(256)) * 4)
    assert_bad(run_cli(["import", str(noise)]), "not an ONNX model")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["y"], "add")],
        "two",
        [helper.make_tensor_value_info("x", F, [1, 3, 4, 4]), helper.make_tensor_value_info("z", F, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", F, None)],
    )
    two = tmp_path / "two.onnx"
    two.write_bytes(helper.make_model(graph).SerializeToString())
    assert_bad(run_cli(["import", str(two)]), "has one input; this model has 2 ('x', 'z')")
    only_identity = tmp_path / "identity.onnx"
    only_identity.write_bytes(model([helper.make_node("Identity", ["x"], ["y"], "id")], [], [1, 3, 4, 4], ["y"]).SerializeToString())
    assert_bad(run_cli(["import", str(only_identity)]), "nothing to import")
