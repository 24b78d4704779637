"""Interoperability with other tools: ONNX import and spec-vs-model comparison (optional packages imported lazily)."""
