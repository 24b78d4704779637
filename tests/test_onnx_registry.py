"""The ONNX converter registry: one converter per op type and opset range, duplicates refused."""

from __future__ import annotations

import pytest

from convcalc.interop.onnx import registry
from convcalc.interop.onnx.convert import load_converters


def test_overlapping_registrations_are_refused_and_ranges_select_by_opset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", {})

    @registry.converter("Foo", until=12)
    def old(node: object, g: object) -> None:
        return None

    @registry.converter("Foo", since=13)
    def new(node: object, g: object) -> None:
        return None

    assert registry.lookup("Foo", 11) is old and registry.lookup("Foo", 18) is new
    assert registry.lookup("Bar", 18) is None
    with pytest.raises(ValueError, match=r"Foo registered twice for opsets 10\.\.12"):
        registry.converter("Foo", since=10, until=20)(old)


def test_attribute_to_input_ops_have_a_converter_per_opset_range() -> None:
    pytest.importorskip("onnx")
    load_converters()
    for op in ("ReduceMean", "ReduceMax"):
        assert registry.lookup(op, 17) is not registry.lookup(op, 18)
    for op in ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "Resize", "Pad", "Split", "Slice", "Clip"):
        assert registry.lookup(op, 20) is not None, op
    assert registry.lookup("DeformConv", 18) is None and registry.lookup("DeformConv", 19) is not None
