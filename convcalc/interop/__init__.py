"""Interoperability with other tools: ONNX import, spec-vs-model comparison, PyTorch code export and the
conventions of peer counters (optional packages imported lazily)."""
