"""Named layer types. Importing this package registers the convolution kinds; the network layer
kinds (:mod:`convcalc.kinds.layers`) register on first lookup of a name not found yet."""

from convcalc.kinds import convs, factorised
from convcalc.kinds.base import Kind, all_kinds, lookup, register

__all__ = ["Kind", "all_kinds", "convs", "factorised", "lookup", "register"]
