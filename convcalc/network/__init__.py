"""Whole networks from YAML: template expressions, the spec, evaluation, results and ``check``.

Called, this package is the API function :func:`convcalc.api.network`: once imported, a submodule
is its package's attribute, so ``convcalc.network`` is this package after any import of
``convcalc.network.*`` and ``convcalc.network(spec, ...)`` must still evaluate a spec (the issue's
API). The package's class is swapped for a callable one that forwards the call; ``convcalc.api``
is imported only then (no import cycle, nothing loaded at start-up).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convcalc.api import NetworkReport


class CallablePackage(types.ModuleType):
    """A module object that, called, runs :func:`convcalc.api.network` with the same arguments."""

    def __call__(self, *args: Any, **kwargs: Any) -> NetworkReport:
        from convcalc.api import network

        return network(*args, **kwargs)


sys.modules[__name__].__class__ = CallablePackage
