"""Padding: resolve padding requests (``same``, ``valid``, ``full``, ``causal``, ints, pairs) to explicit pairs, and the Pad layer.

Semantics:

* ``valid``: no padding.
* ``same`` (TF/Keras, any stride): ``out = ceil(i / s)``, total padding
  ``max((out - 1)·s + d(k-1) + 1 - i, 0)``, the odd unit at the *end*
  (``before = total // 2``). PyTorch agrees for stride 1 and rejects ``padding='same'`` for
  stride > 1 (convcalc then follows TF and says so).
* ``full``: ``d(k-1)`` on both sides (every partial overlap, Dumoulin & Visin 2016 §2.2.3).
* ``causal`` (1D only, Keras/WaveNet): ``d(k-1)`` before, 0 after.

Transposed convolution follows Keras ``Conv*DTranspose`` (``deconv_output_length``):
with ``output_padding`` unset, ``same`` gives ``out = i·s`` and ``valid`` gives
``out = i·s + max(d(k-1)+1 - s, 0)``; with ``output_padding`` set, the crop is ``k_eff // 2``
per side for ``same`` and 0 for ``valid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.formula import axis_names
from convcalc.parse.values import Axes, Padding, Pairs
from convcalc.primitives.base import OpStats, Shape, check_rank, numel, pads_text, single_input
from convcalc.primitives.conv import effective_kernel
from convcalc.rf import AxisStep


def _same_pair(size: int, k_eff: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def resolve_conv_padding(
    padding: Padding, sizes: Sequence[int], kernel: Axes, stride: Axes, dilation: Axes
) -> tuple[Pairs, tuple[str, ...]]:
    """Explicit ``(before, after)`` pairs for a convolution, and notes about framework differences."""
    if not isinstance(padding, str):
        return padding, ()
    k_eff = [effective_kernel(k, d) for k, d in zip(kernel, dilation, strict=True)]
    if padding == "valid":
        return tuple((0, 0) for _ in sizes), ()
    if padding == "full":
        return tuple((k - 1, k - 1) for k in k_eff), ("'full' padding: d·(k-1) on both sides.",)
    if padding == "causal":
        if len(sizes) != 1:
            raise ShapeError(
                "'causal' padding applies to 1D layers only.",
                hint="Use 'same' or explicit before:after pairs for 2D/3D layers.",
            )
        return ((k_eff[0] - 1, 0),), ("'causal' padding (Keras/WaveNet): d·(k-1) before, 0 after.",)
    pairs = tuple(_same_pair(i, k, s) for i, k, s in zip(sizes, k_eff, stride, strict=True))
    shown = ", ".join(f"{n}: {a}+{b}" for n, (a, b) in zip(axis_names(len(pairs)), pairs, strict=True))
    notes = [f"'same' padding resolved to before+after = {shown} (TF/Keras: out = ceil(i/s), odd unit at the end)."]
    if any(s > 1 for s in stride):
        notes.append("PyTorch rejects padding='same' with stride > 1; these are TensorFlow/Keras semantics.")
    return pairs, tuple(notes)


def resolve_transposed_padding(
    padding: Padding,
    output_padding: Axes | None,
    kernel: Axes,
    stride: Axes,
    dilation: Axes,
) -> tuple[Pairs, Axes, tuple[str, ...]]:
    """Crop pairs and output padding for a transposed convolution (module docstring)."""
    rank = len(kernel)
    if not isinstance(padding, str):
        return padding, output_padding or (0,) * rank, ()
    k_eff = [effective_kernel(k, d) for k, d in zip(kernel, dilation, strict=True)]
    if padding not in ("same", "valid"):
        raise ShapeError(
            f"'{padding}' padding does not apply to a transposed convolution.",
            hint="Use an int, pairs, 'same' or 'valid' (Keras Conv*DTranspose semantics).",
        )
    if output_padding is not None:
        crops = tuple((k // 2, k // 2) if padding == "same" else (0, 0) for k in k_eff)
        note = (
            f"Keras Conv*DTranspose '{padding}' with output_padding set: crop k_eff//2 per side"
            if padding == "same"
            else "Keras Conv*DTranspose 'valid' with output_padding set: no crop"
        )
        return crops, output_padding, (note + "; with output_padding=None the output would differ.",)
    crops_list: list[tuple[int, int]] = []
    extra: list[int] = []
    for k, s in zip(k_eff, stride, strict=True):
        total = k - s
        if padding == "same" and total >= 0:
            crops_list.append((total // 2, total - total // 2))
            extra.append(0)
        else:
            crops_list.append((0, 0))
            extra.append(max(-total, 0))
    target = "i·s" if padding == "same" else "i·s + max(k_eff - s, 0)"
    return (
        tuple(crops_list),
        tuple(extra),
        (
            f"Keras Conv*DTranspose '{padding}' with output_padding=None: out = {target}"
            " (set output_padding, even 0, for the other Keras formula).",
        ),
    )


@dataclass(frozen=True)
class Pad:
    """Zero padding (PyTorch ``ZeroPad*d``, Keras ``ZeroPadding*D``) or, with negative amounts,
    cropping (Keras ``Cropping*D``): ``out = i + before + after`` per axis.

    No params or ops; ``moved`` = output elements. Receptive-field step: kernel 1, stride 1,
    padding ``before`` (the first output unit sits ``before`` pixels left of the first input).
    """

    op: ClassVar[str] = "pad"
    merge: ClassVar[bool] = False

    padding: tuple[tuple[int, int], ...]

    def describe(self) -> str:
        if all(a <= 0 and b <= 0 for a, b in self.padding):
            return "crop " + pads_text(tuple((-a, -b) for a, b in self.padding))
        return "zero pad " + pads_text(self.padding)

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        check_rank(shape, len(self.padding), "this padding")
        out = tuple(i + a + b for i, (a, b) in zip(shape[1:], self.padding, strict=True))
        for name, size in zip(axis_names(len(out)), out, strict=True):
            if size < 1:
                raise ShapeError(f"along axis {name} the cropped size is {size} (< 1).", hint="Crop less.")
        return OpStats(
            output=(shape[0], *out),
            moved=shape[0] * numel(out),
            rf=tuple(AxisStep(1, 1, Fraction(a)) for a, _ in self.padding),
        )
