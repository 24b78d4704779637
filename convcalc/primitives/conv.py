"""The convolution family: convolution, transposed convolution, channel shuffle, deformable sampling.

Shapes follow PyTorch (``torch.nn.Conv*d`` / ``ConvTranspose*d`` docs): floor division,
dilation, groups, output_padding; padding is explicit ``(before, after)`` per axis, so
TF/Keras asymmetric 'same' padding is representable. MACs count multiply-accumulates
(FLOPs = 2 x MACs); bias additions are reported apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from convcalc.errors import ShapeError
from convcalc.formula import Product, axis_names, kernel_term, positions, product
from convcalc.parse.values import Axes, Pairs, format_shape
from convcalc.primitives.base import OpStats, Shape, check_rank, identity_steps, numel, pads_text, single_input
from convcalc.rf import AxisStep


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """PyTorch: in_channels and out_channels must both be divisible by groups."""
    for label, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise ShapeError(
                f"{label} = {channels} is not divisible by groups = {groups}.",
                hint=f"Choose groups that divides both {in_channels} and {out_channels}.",
            )


def check_channels(shape: Shape, in_channels: int) -> None:
    """The input's channel count must equal the layer's ``in_channels``."""
    if shape[0] != in_channels:
        raise ShapeError(
            f"the input has {shape[0]} channels but in_channels = {in_channels}.",
            hint="Drop in_channels (it is taken from the input) or fix the input shape.",
        )


def effective_kernel(kernel: int, dilation: int) -> int:
    """Extent of a dilated kernel: ``d * (k - 1) + 1`` (Yu & Koltun 2016)."""
    return dilation * (kernel - 1) + 1


def conv_out_size(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int, axis: str) -> int:
    """``floor((i + p_b + p_a - d*(k-1) - 1) / s) + 1`` (PyTorch Conv docs; Dumoulin & Visin 2016, rel. 15).

    Refuses (like PyTorch) a kernel whose dilated extent exceeds the padded input.
    """
    span = size + pad[0] + pad[1] - effective_kernel(kernel, dilation)
    if span < 0:
        raise ShapeError(
            f"along axis {axis} the kernel's effective size d·(k-1)+1 = {effective_kernel(kernel, dilation)}"
            f" is larger than the padded input {size} + {pad[0]} + {pad[1]} = {size + pad[0] + pad[1]}"
            " (the output would be smaller than 1).",
            hint="Use a smaller kernel or dilation, more padding, or a larger input.",
        )
    return span // stride + 1


def window_out_sizes(sizes: Sequence[int], kernel: Axes, stride: Axes, padding: Pairs, dilation: Axes) -> tuple[int, ...]:
    """:func:`conv_out_size` for every axis."""
    names = axis_names(len(sizes))
    return tuple(
        conv_out_size(i, k, s, p, d, n) for i, k, s, p, d, n in zip(sizes, kernel, stride, padding, dilation, names, strict=True)
    )


def transposed_step(k_eff: int, stride: int, crop_before: int) -> AxisStep:
    """Receptive-field step of a transposed window: refine the grid by ``stride`` (fractional
    stride 1/s), then a stride-1 window of ``k_eff`` taps with padding ``k_eff - 1 - crop_before``
    (Dumoulin & Visin 2016, rel. 13-14). Also the rule for nearest/linear upsampling (netops).
    """
    return AxisStep(k_eff, 1, Fraction(k_eff - 1 - crop_before), upsample=stride)


def transposed_out_size(
    size: int, kernel: int, stride: int, crop: tuple[int, int], dilation: int, output_padding: int, axis: str
) -> int:
    """``(i - 1)*s - p_b - p_a + d*(k - 1) + output_padding + 1`` (PyTorch ConvTranspose docs).

    PyTorch requires ``output_padding < max(stride, dilation)`` and an output of at least 1.
    """
    if output_padding >= max(stride, dilation):
        raise ShapeError(
            f"along axis {axis} output_padding = {output_padding} must be smaller than"
            f" max(stride, dilation) = {max(stride, dilation)}.",
            hint="output_padding only resolves the ambiguity of a strided convolution's size; lower it.",
        )
    out = (size - 1) * stride - crop[0] - crop[1] + effective_kernel(kernel, dilation) + output_padding
    if out < 1:
        raise ShapeError(
            f"along axis {axis} the output size (i-1)·s - p_b - p_a + d·(k-1) + output_padding + 1 = {out} is < 1.",
            hint="Reduce the padding.",
        )
    return out


def uneven_overlap(kernel: int, stride: int, dilation: int) -> bool:
    """True when interior output pixels of a transposed conv receive different numbers of
    contributions (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").

    Output pixel ``o`` receives one contribution per tap ``t`` with ``o ≡ t·d (mod s)``; the
    overlap is even iff that count is the same for every residue ``o mod s``.
    """
    counts = {sum(1 for t in range(kernel) if (r - t * dilation) % stride == 0) for r in range(stride)}
    return len(counts) > 1


def _shape_line(axis: str, value: int, text: str) -> str:
    return f"{axis}_out = {text} = {value}"


@dataclass(frozen=True)
class Conv:
    """N-d convolution (cross-correlation), PyTorch ``Conv1d/2d/3d`` semantics.

    * output per axis: ``floor((i + p_b + p_a - d(k-1) - 1)/s) + 1``
    * weights: ``C_out × (C_in/g) × prod(k)``; biases: ``C_out``
    * MACs: ``out_positions × C_out × (C_in/g) × prod(k)`` (one MAC per weight per output position)
    * receptive-field step: kernel ``d(k-1)+1``, stride ``s``, padding ``p_b``
    """

    op: ClassVar[str] = "conv"
    merge: ClassVar[bool] = False

    in_channels: int
    out_channels: int
    kernel_size: Axes
    stride: Axes
    padding: Pairs
    dilation: Axes
    groups: int = 1
    bias: bool = True

    def describe(self) -> str:
        parts = [f"k={format_shape(self.kernel_size)}"]
        if any(s != 1 for s in self.stride):
            parts.append(f"s={format_shape(self.stride)}")
        if any(p != (0, 0) for p in self.padding):
            parts.append("p=" + pads_text(self.padding))
        if any(d != 1 for d in self.dilation):
            parts.append(f"d={format_shape(self.dilation)}")
        if self.groups != 1:
            parts.append(f"g={self.groups}")
        return f"conv {self.in_channels}->{self.out_channels} " + " ".join(parts)

    def out_sizes(self, sizes: Sequence[int]) -> tuple[int, ...]:
        return window_out_sizes(sizes, self.kernel_size, self.stride, self.padding, self.dilation)

    def weight_product(self) -> Product:
        return product(
            "weights", [("C_out", self.out_channels), ("C_in/g", self.in_channels // self.groups), kernel_term(self.kernel_size)]
        )

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = _checked_input(self, inputs, "this convolution")
        out = self.out_sizes(shape[1:])
        weights = self.weight_product()
        macs = product(
            "MACs",
            [
                positions(out, "out"),
                ("C_out", self.out_channels),
                ("C_in/g", self.in_channels // self.groups),
                kernel_term(self.kernel_size),
            ],
        )
        lines = [
            _shape_line(n, o, f"⌊({i} + {p[0]} + {p[1]} - {d}·({k}-1) - 1)/{s}⌋ + 1")
            for n, o, i, k, s, p, d in zip(
                axis_names(len(out)), out, shape[1:], self.kernel_size, self.stride, self.padding, self.dilation, strict=True
            )
        ]
        rf = tuple(
            AxisStep(effective_kernel(k, d), s, Fraction(p[0]))
            for k, s, p, d in zip(self.kernel_size, self.stride, self.padding, self.dilation, strict=True)
        )
        return _conv_stats(self, out, weights, macs, lines, rf)


@dataclass(frozen=True)
class ConvTranspose:
    """N-d transposed convolution, PyTorch ``ConvTranspose1d/2d/3d`` semantics.

    * output per axis: ``(i-1)s - p_b - p_a + d(k-1) + output_padding + 1`` (padding crops)
    * weights: ``C_in × (C_out/g) × prod(k)``; biases: ``C_out``
    * MACs are counted per *input* position, as torch.utils.flop_counter does:
      ``in_positions × C_in × (C_out/g) × prod(k)`` — every input value is multiplied by every
      tap of its group's filters, whatever padding later crops.
    * receptive field: the grid is refined by ``s`` (fractional stride 1/s), then a stride-1
      window of ``d(k-1)+1`` taps with padding ``d(k-1) - p_b`` (Dumoulin & Visin 2016, rel. 13-14).
    """

    op: ClassVar[str] = "conv_transpose"
    merge: ClassVar[bool] = False

    in_channels: int
    out_channels: int
    kernel_size: Axes
    stride: Axes
    padding: Pairs
    output_padding: Axes
    dilation: Axes
    groups: int = 1
    bias: bool = True

    def describe(self) -> str:
        text = f"conv_transpose {self.in_channels}->{self.out_channels} k={format_shape(self.kernel_size)} s={format_shape(self.stride)}"
        if any(p != (0, 0) for p in self.padding):
            text += " p=" + pads_text(self.padding)
        if any(self.output_padding):
            text += f" op={format_shape(self.output_padding)}"
        if any(d != 1 for d in self.dilation):
            text += f" d={format_shape(self.dilation)}"
        return text + (f" g={self.groups}" if self.groups != 1 else "")

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = _checked_input(self, inputs, "this transposed convolution")
        axes = axis_names(len(self.kernel_size))
        per_axis = tuple(
            zip(shape[1:], self.kernel_size, self.stride, self.padding, self.dilation, self.output_padding, axes, strict=True)
        )
        out = tuple(transposed_out_size(i, k, s, p, d, op, n) for i, k, s, p, d, op, n in per_axis)
        weights = product(
            "weights", [("C_in", self.in_channels), ("C_out/g", self.out_channels // self.groups), kernel_term(self.kernel_size)]
        )
        macs = product(
            "MACs",
            [
                positions(shape[1:], "in"),
                ("C_in", self.in_channels),
                ("C_out/g", self.out_channels // self.groups),
                kernel_term(self.kernel_size),
            ],
        )
        lines = [
            _shape_line(n, o, f"({i}-1)·{s} - {p[0]} - {p[1]} + {d}·({k}-1) + {op} + 1")
            for o, (i, k, s, p, d, op, n) in zip(out, per_axis, strict=True)
        ]
        uneven = [f"{n} (k={k}, s={s}, d={d})" for (_, k, s, _, d, _, n) in per_axis if uneven_overlap(k, s, d)]
        notes = (
            (
                f"checkerboard: uneven overlap along {', '.join(uneven)}: the kernel is not divisible by the stride;"
                " prefer a divisible kernel or resize-then-convolve (Odena et al. 2016). See 'convcalc overlap'.",
            )
            if uneven
            else ()
        )
        rf = tuple(
            transposed_step(effective_kernel(k, d), s, p[0])
            for k, s, p, d in zip(self.kernel_size, self.stride, self.padding, self.dilation, strict=True)
        )
        return _conv_stats(self, out, weights, macs, lines, rf, notes)


def _checked_input(conv: Conv | ConvTranspose, inputs: Sequence[Shape], what: str) -> Shape:
    """The one input of a (transposed) convolution, checked against its rank, channels and groups."""
    shape = single_input(inputs, conv.op)
    check_rank(shape, len(conv.kernel_size), what)
    check_channels(shape, conv.in_channels)
    check_groups(conv.in_channels, conv.out_channels, conv.groups)
    return shape


def _conv_stats(
    conv: Conv | ConvTranspose,
    out: Sequence[int],
    weights: Product,
    macs: Product,
    lines: Sequence[str],
    rf: tuple[AxisStep, ...],
    notes: tuple[str, ...] = (),
) -> OpStats:
    """A (transposed) convolution's stats: biases ``C_out`` (if any), one bias add per output element."""
    biases = conv.out_channels if conv.bias else 0
    return OpStats(
        output=(conv.out_channels, *out),
        weights=weights.value,
        biases=biases,
        macs=macs.value,
        bias_adds=biases * numel(out),
        rf=rf,
        notes=notes,
        explain=(*lines, weights.explain(), f"biases = {biases:,}", macs.explain()),
    )


@dataclass(frozen=True)
class ChannelShuffle:
    """ShuffleNet channel shuffle (Zhang et al. 2018): reshape ``(g, C/g)`` -> transpose -> flatten.

    No parameters and no MACs; every element is moved once (``moved = C × positions``).
    """

    op: ClassVar[str] = "channel_shuffle"
    merge: ClassVar[bool] = False

    groups: int

    def describe(self) -> str:
        return f"channel_shuffle g={self.groups}"

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        shape = single_input(inputs, self.op)
        if shape[0] % self.groups:
            raise ShapeError(
                f"channel_shuffle needs the {shape[0]} channels to be divisible by groups = {self.groups}.",
                hint="Use a number of groups that divides the channel count.",
            )
        return OpStats(
            output=shape,
            moved=numel(shape),
            rf=identity_steps(shape),
            explain=(f"moved = C × positions = {numel(shape):,} elements (0 params, 0 MACs)",),
        )


@dataclass(frozen=True)
class DeformSample:
    """Bilinear sampling of a deformable convolution (Dai et al. 2017; v2 modulated: Zhu et al. 2019).

    Inputs: the feature map ``(C_in, *sizes)`` and the offsets ``(2·G·K, *out)`` (v2: offsets and
    masks, ``3·G·K`` channels), ``K = prod(k)``, ``G`` offset groups. Output: the sampled columns laid
    out as ``(C_in, k_h·H_out, k_w·W_out)`` so the main convolution is a ``k``-strided ``k`` conv.
    Cost, reported under ``other_ops`` (it is interpolation, not a convolution's MACs, so network
    MAC totals stay comparable with published conv+linear counts): 4 multiply-adds per sampled
    value for the bilinear weights (+1 for the v2 modulation) over ``C_in × K × out_positions``
    values, plus (v2) one sigmoid per mask value. The receptive field depends on the data (``rf = None``).
    """

    op: ClassVar[str] = "deform_sample"
    merge: ClassVar[bool] = False

    kernel_size: Axes
    stride: Axes
    padding: Pairs
    dilation: Axes
    offset_groups: int = 1
    modulated: bool = False

    def describe(self) -> str:
        return f"bilinear sampling ({'v2, modulated' if self.modulated else 'v1'}) k={format_shape(self.kernel_size)} G={self.offset_groups}"

    def out_sizes(self, sizes: Sequence[int]) -> tuple[int, ...]:
        return window_out_sizes(sizes, self.kernel_size, self.stride, self.padding, self.dilation)

    def analyse(self, inputs: Sequence[Shape], names: Sequence[str] = ()) -> OpStats:
        if len(inputs) != 2:
            raise ShapeError("deformable sampling takes the feature map and the offsets.")
        shape, offsets = inputs
        check_rank(shape, len(self.kernel_size), "this deformable convolution")
        if shape[0] % self.offset_groups:
            raise ShapeError(f"the {shape[0]} input channels are not divisible by offset_groups = {self.offset_groups}.")
        out = self.out_sizes(shape[1:])
        taps = numel(self.kernel_size)
        expected = ((3 if self.modulated else 2) * self.offset_groups * taps, *out)
        if tuple(offsets) != expected:
            raise ShapeError(f"the offsets have shape {format_shape(offsets)} but {format_shape(expected)} is needed.")
        per_value = 5 if self.modulated else 4
        sampling = product(
            "sampling ops",
            [("ops/value", per_value), ("C_in", shape[0]), kernel_term(self.kernel_size), positions(out, "out")],
        )
        masks = product("mask sigmoids", [("G", self.offset_groups), kernel_term(self.kernel_size), positions(out, "out")])
        return OpStats(
            output=(shape[0], *(k * o for k, o in zip(self.kernel_size, out, strict=True))),
            other_ops=sampling.value + (masks.value if self.modulated else 0),
            rf=None,
            notes=("receptive field is data-dependent (deformable sampling moves every tap by a learned offset).",),
            explain=(sampling.explain(), masks.explain() if self.modulated else "mask sigmoids = 0 (v1)"),
        )


def overlap_counts(size: int, kernel: int, stride: int, crop: tuple[int, int], dilation: int, output_padding: int) -> list[int]:
    """How many input pixels contribute to each output pixel of a 1D transposed convolution.

    Input ``i`` reaches output ``i·s + t·d - p_before`` for every tap ``t``; outputs beyond the
    cropped range are dropped (direct enumeration of the definition, O(size · kernel)).
    """
    out = transposed_out_size(size, kernel, stride, crop, dilation, output_padding, "L")
    counts = [0] * out
    for i in range(size):
        for t in range(kernel):
            o = i * stride + t * dilation - crop[0]
            if 0 <= o < out:
                counts[o] += 1
    return counts
