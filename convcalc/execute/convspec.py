"""Validated geometry of one convolution call (shapes only, no data)."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from convcalc.execute.geometry import IntSpec, PadSpec, Pairs, int_tuple, pad_pairs, window_out_len


@dataclass(frozen=True)
class ConvSpec:
    """Shapes and hyper-parameters of ``y = conv(x, w)`` (PyTorch ``ConvNd``).

    ``y[n, o, p] = b[o] + sum_{c, t} w[o, c, t] * x_pad[n, g(o)*Cg + c, p*s + t*d]``
    with ``g(o) = o // (C_out/groups)`` and ``x_pad`` zero-padded by the
    ``(before, after)`` pairs.
    """

    batch: int
    c_in: int
    c_out: int
    groups: int
    in_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Pairs
    dilation: tuple[int, ...]
    out_shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.in_shape)

    @property
    def c_in_g(self) -> int:
        """Input channels per group."""
        return self.c_in // self.groups

    @property
    def c_out_g(self) -> int:
        """Output channels per group."""
        return self.c_out // self.groups

    @property
    def taps(self) -> int:
        """Kernel taps ``prod(k)``."""
        return prod(self.kernel)

    @property
    def macs(self) -> int:
        """Direct-algorithm MACs: ``N * out_positions * C_out * C_in/g * prod(k)``."""
        return self.batch * prod(self.out_shape) * self.c_out * self.c_in_g * self.taps

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize


def make_conv_spec(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: IntSpec = 1,
    padding: PadSpec = 0,
    dilation: IntSpec = 1,
    groups: int = 1,
    dtype: DTypeLike = np.float32,
    allow_crop: bool = False,
) -> ConvSpec:
    """Validate a convolution's arguments (``ValueError`` on inconsistency).

    ``allow_crop`` admits negative padding (cropping), used internally by the
    transposed convolution's phase decomposition.
    """
    nd = len(x_shape) - 2
    if nd not in (1, 2, 3):
        raise ValueError(f"x must be (N, C, *spatial) with 1-3 spatial axes, got {x_shape}")
    if len(w_shape) != nd + 2:
        raise ValueError(f"weight {w_shape} does not match input {x_shape}")
    n, c_in, *in_sp = x_shape
    c_out, c_in_g, *kernel = w_shape
    if groups < 1 or c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in} and C_out={c_out}")
    if c_in_g != c_in // groups:
        raise ValueError(f"weight expects {c_in_g} channels per group, input gives {c_in // groups}")
    if min(kernel) < 1 or min(in_sp) < 1 or n < 1:
        raise ValueError(f"empty input or kernel: x {x_shape}, w {w_shape}")
    st = int_tuple(stride, nd, "stride")
    dl = int_tuple(dilation, nd, "dilation")
    pads = pad_pairs(padding, nd, allow_negative=allow_crop)
    out = tuple(window_out_len(length, k, s, p, d) for length, k, s, p, d in zip(in_sp, kernel, st, pads, dl, strict=True))
    if min(out) < 1:
        raise ValueError(f"kernel larger than padded input: x {x_shape}, w {w_shape}, padding {pads}")
    return ConvSpec(
        batch=n,
        c_in=c_in,
        c_out=c_out,
        groups=groups,
        in_shape=tuple(in_sp),
        kernel=tuple(kernel),
        stride=st,
        padding=pads,
        dilation=dl,
        out_shape=out,
        dtype=np.dtype(dtype),
    )
