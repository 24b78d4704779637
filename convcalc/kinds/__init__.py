"""Named layer types. Importing this package registers every built-in kind."""

from convcalc.kinds import convs, factorised, layers
from convcalc.kinds.base import Kind, all_kinds, lookup, register

__all__ = ["Kind", "all_kinds", "convs", "factorised", "layers", "lookup", "register"]
