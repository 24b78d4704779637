"""Models in and out: ONNX import (:mod:`convcalc.interop.onnx`) and spec-vs-model comparison
(:mod:`convcalc.interop.compare`). Optional dependencies (``onnx``, ``torch``) are imported
lazily inside the functions that need them, never at ``import convcalc``.
"""
