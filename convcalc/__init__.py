"""convcalc: exact arithmetic of convolutions (shapes, parameters, MACs, receptive fields).

The Python API (:mod:`convcalc.api`) is loaded on first use, so ``import convcalc`` and the CLI's
start-up stay cheap: ``convcalc.layer``, ``convcalc.network``, ``convcalc.from_onnx``,
``convcalc.from_torch`` and the result types ``LayerReport`` / ``NetworkReport``.
"""

from typing import Any

__version__ = "0.1.0"

API = ("layer", "network", "from_onnx", "from_torch", "LayerReport", "NetworkReport")


def __getattr__(name: str) -> Any:
    if name in API:
        from convcalc import api

        return getattr(api, name)
    raise AttributeError(f"module 'convcalc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
