"""Op -> kernel bindings, one module per family (they register into
:mod:`convcalc.execute.registry` on import)."""

from convcalc.execute.bindings import conv, layers, tensor

__all__ = ["conv", "layers", "tensor"]
