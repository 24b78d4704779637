"""Receptive-field arithmetic per spatial axis (Araujo, Norris & Sim, Distill 2019).

A unit of a feature map sees an interval of the input. Per axis we track, in input pixels:

* ``size``  r: how many input pixels the field of one unit spans;
* ``jump``  j: the distance in input pixels between two adjacent units (effective stride);
* ``start`` c: the centre of the first unit's field (negative when it lies in the padding).

A layer step with effective kernel ``k = d*(k-1)+1``, stride ``s`` and padding-before ``p``
applied on a grid that is first refined by ``u`` (``u > 1`` for transposed convolution and
upsampling: "fractionally strided", the jump becomes ``j/u``) gives (Distill eq. 1-3)::

    j1 = j / u
    r' = r + (k - 1) * j1
    c' = c + ((k - 1) / 2 - p) * j1
    j' = j1 * s

All three are exact :class:`fractions.Fraction`; they stay integers for ordinary convolutions.
The effective padding of a unit reported with it is ``P = (r - 1) / 2 - c``.

Global context (as Araujo et al. and the usual tools): the field follows the spatially *local*
paths. A path through a global reduction (a pooling whose one unit spans the whole map, see
:func:`convcalc.primitives.pool.pools_whole_map`) does not widen the field; it marks the units it
reaches as seeing *global context*. So the output of a global pooling (and whatever is computed
from it alone: a 1x1 conv, an upsampling back to the map) has no local field, only global
context; a merge with it (a squeeze-and-excitation ``multiply`` gate, DeepLab's image-pooling
branch concatenated back) takes the field of its local inputs and carries the mark on. It never
compounds: gates in a row add nothing to the field.
"""

from fractions import Fraction
from typing import NamedTuple


class AxisStep(NamedTuple):
    """One layer's effect on one axis: refine by ``upsample``, then a window ``kernel``/``stride``/``pad``."""

    kernel: int = 1
    stride: int = 1
    pad: Fraction = Fraction(0)
    upsample: int = 1


IDENTITY_STEP = AxisStep()


class AxisField(NamedTuple):
    """Receptive field of one unit along one axis, in input pixels."""

    size: Fraction = Fraction(1)
    jump: Fraction = Fraction(1)
    start: Fraction = Fraction(0)

    def step(self, st: AxisStep) -> "AxisField":
        """Apply one layer (module docstring, Distill 2019 eq. 1-3)."""
        if st.kernel == 1 and st.stride == 1 and st.upsample == 1 and not st.pad:
            return self  # an element-wise layer changes nothing
        if st.upsample == 1 and self.jump.denominator == 1 and st.pad.denominator == 1:
            return self._integer_step(st)
        jump = self.jump / st.upsample
        return AxisField(
            size=self.size + (st.kernel - 1) * jump,
            jump=jump * st.stride,
            start=self.start + (Fraction(st.kernel - 1, 2) - st.pad) * jump,
        )

    def _integer_step(self, st: AxisStep) -> "AxisField":
        """:meth:`step` for an integer jump and padding without refinement, in integer arithmetic
        (the common case; Fraction operations are slow): ``c' = c + (k - 1 - 2p)·j / 2``."""
        jump = self.jump.numerator
        shift = (st.kernel - 1 - 2 * st.pad.numerator) * jump
        return AxisField(
            size=self.size + (st.kernel - 1) * jump,
            jump=Fraction(jump * st.stride),
            start=self.start + (shift // 2 if shift % 2 == 0 else Fraction(shift, 2)),
        )

    @property
    def padding(self) -> Fraction:
        """Effective padding ``P = (r - 1)/2 - c`` (Distill 2019)."""
        return (self.size - 1) / 2 - self.start


Field = tuple[AxisField, ...]
"""A receptive field: one :class:`AxisField` per spatial axis."""


def identity_field(rank: int) -> Field:
    """The input's own field: every unit sees exactly itself."""
    return tuple(AxisField() for _ in range(rank))


def apply(field: Field, steps: tuple[AxisStep, ...]) -> Field:
    """Apply one step per axis."""
    return tuple(axis.step(st) for axis, st in zip(field, steps, strict=True))


def merge(fields: list[Field]) -> tuple[Field, bool]:
    """Merge branches: the largest field per axis; ``aligned`` is False when jumps or centres differ."""
    aligned = all(f == fields[0] or _same_grid(f, fields[0]) for f in fields)
    merged = tuple(max(axes, key=lambda a: a.size) for axes in zip(*fields, strict=True))
    return merged, aligned


def _same_grid(a: Field, b: Field) -> bool:
    return all(x.jump == y.jump and x.start == y.start for x, y in zip(a, b, strict=True))


def fmt(value: Fraction) -> str:
    """``7`` or ``7/2`` (never a rounded float)."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def to_json(value: Fraction) -> int | str:
    """Integers stay ints in JSON; fractions become ``"7/2"`` strings."""
    return value.numerator if value.denominator == 1 else fmt(value)
