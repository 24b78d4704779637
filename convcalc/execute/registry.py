"""The op -> kernel binding registry of the executor.

The executor runs *primitives* (the stages the arithmetic engine produced), never named kinds:
every ``op`` name of the primitive classes has one :data:`Binding`, registered with
:func:`binds` (a duplicate is refused; a meta-test checks none is missing). A binding is *pure
planning*: from the op and the batched shapes it returns a :class:`Plan` that declares the
weights it needs (shapes and initialisation, never allocated here), its workspace and its
temporaries in bytes, and a ``build`` function that turns the allocated weights into a
:class:`Kernel` (the callable to time and, for conv, transposed conv and linear, a direct-loop
reference on a crop). So the memory of a whole run is known before one weight is made
(:mod:`convcalc.execute.memory`), and weights are made once, directly in the run's dtype.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]
Shape = tuple[int, ...]
Step = Callable[[Sequence[Array]], Array]


@dataclass(frozen=True)
class Check:
    """A numerics check of a small output crop against a direct-loop reference."""

    max_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance


Reference = Callable[[Sequence[Array], Array], Check]


@dataclass(frozen=True)
class Weight:
    """One parameter tensor: ``offset + scale · N(0, 1)`` of ``shape`` (``scale = 0``: a constant)."""

    shape: Shape
    scale: float = 1.0
    offset: float = 0.0


def fan_in_scale(fan_in: int) -> float:
    """He initialisation ``sqrt(2 / fan_in)`` (He et al. 2015) keeps activations O(1) through
    deep random networks."""
    return math.sqrt(2.0 / max(fan_in, 1))


@dataclass(frozen=True)
class Context:
    """What a binding may know: the batched input and output shapes and the dtype."""

    inputs: tuple[Shape, ...]
    output: Shape
    dtype: np.dtype[Any]
    verify: bool = False

    def nbytes(self, shape: Shape) -> int:
        """Bytes of an array of ``shape`` in the run's dtype."""
        return math.prod(shape) * self.dtype.itemsize

    @property
    def output_bytes(self) -> int:
        return self.nbytes(self.output)


class Fuse(enum.Flag):
    """What the end-to-end pass may do with a stage (:mod:`convcalc.execute.fuse`), declared by
    its plan before anything is made; the kernel carries the matching callable."""

    NONE = 0
    FRESH = enum.auto()
    """``step`` returns a new array that shares memory with no input and no weight."""
    IN_PLACE = enum.auto()
    """``Kernel.in_place`` computes the same output into its first input's buffer."""
    FOLDS = enum.auto()
    """``Kernel.fold(scale, shift)`` is the kernel of ``scale·step(x) + shift`` per output channel."""
    AFFINE = enum.auto()
    """The stage is ``x·scale + shift`` per channel, ``Kernel.affine = (scale, shift)``."""
    EPILOGUE = enum.auto()
    """``Kernel.epilogue(f)`` is the kernel of ``f(step(x))``, ``f`` applied in place to each
    block of the output as it is written (while the block is cache hot)."""
    ELEMENTWISE = enum.auto()
    """The stage maps each value alone; ``Kernel.elementwise(a)`` applies it in place to any
    block ``a`` of its input."""


@dataclass(frozen=True)
class Kernel:
    """One stage ready to run: ``step(inputs) -> output``, an optional crop reference and the
    callables of its plan's :class:`Fuse` flags."""

    step: Step
    reference: Reference | None = None
    in_place: Step | None = None
    fold: Callable[[Array, Array], Kernel] | None = None
    affine: tuple[Array, Array] | None = None
    epilogue: Callable[[Callable[[Array], object]], Kernel] | None = None
    elementwise: Callable[[Array], object] | None = None


@dataclass(frozen=True)
class Plan:
    """A stage's declared needs (nothing allocated yet) and how to build its kernel.

    ``temporary_bytes`` bounds the arrays one call allocates besides its output (e.g. the
    intermediate arrays of an element-wise formula, a float64 copy for a reference check);
    ``packed_bytes`` the weights ``build`` re-arranges once for the kernel (kept with them);
    ``fuse`` what the end-to-end pass may fuse (:class:`Fuse`).
    """

    build: Callable[[tuple[Array, ...]], Kernel]
    weights: tuple[Weight, ...] = ()
    workspace_bytes: int = 0
    temporary_bytes: int = 0
    packed_bytes: int = 0
    fuse: Fuse = Fuse.NONE

    def weight_bytes(self, dtype: np.dtype[Any]) -> int:
        return sum(math.prod(w.shape) for w in self.weights) * dtype.itemsize + self.packed_bytes


def stateless(
    step: Step,
    temporary_bytes: int = 0,
    *,
    fresh: bool = False,
    in_place: Step | None = None,
    elementwise: Callable[[Array], object] | None = None,
) -> Plan:
    """The plan of a stage without weights or workspace (``fresh``: it returns new arrays;
    ``in_place``: the same output written into the first input's buffer; ``elementwise``: the
    stage applied in place to any block of its input, see :class:`Fuse`)."""
    fuse = (Fuse.FRESH if fresh else Fuse.NONE) | (Fuse.IN_PLACE if in_place is not None else Fuse.NONE)
    fuse |= Fuse.ELEMENTWISE if elementwise is not None else Fuse.NONE
    return Plan(lambda _: Kernel(step, in_place=in_place, elementwise=elementwise), temporary_bytes=temporary_bytes, fuse=fuse)


OpT = TypeVar("OpT")
Binding = Callable[[OpT, Context], Plan]

BINDINGS: dict[str, Binding[Any]] = {}
"""Primitive name -> binding (filled by :func:`binds` when :mod:`convcalc.execute.bindings` loads)."""


def binds(*classes: type[OpT]) -> Callable[[Binding[OpT]], Binding[OpT]]:
    """Register the binding of the primitive classes ``classes`` (keyed by their ``op`` name;
    registering a name twice is refused)."""

    def register(fn: Binding[OpT]) -> Binding[OpT]:
        for cls in classes:
            name: str = getattr(cls, "op")  # noqa: B009 - the primitives' ClassVar name
            if name in BINDINGS:
                raise ValueError(f"kernel binding for {name!r} registered twice")
            BINDINGS[name] = fn
        return fn

    return register


def binding(name: str) -> Binding[Any]:
    """The binding of primitive ``name`` (KeyError when there is none)."""
    _load()
    return BINDINGS[name]


def bound_ops() -> frozenset[str]:
    """Primitive names that have a binding."""
    _load()
    return frozenset(BINDINGS)


def _load() -> None:
    """Import the binding modules (they register on import)."""
    import convcalc.execute.bindings  # noqa: F401
