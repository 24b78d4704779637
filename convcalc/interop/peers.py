"""What other counters report for the module ``convcalc export`` writes, from convcalc's separate counts.

Each peer is one entry: a rule that rebuilds the tool's printed total from convcalc's per-layer
numbers (MACs, bias additions, parameters, input/output elements) and the ``torch.nn`` class each
layer is exported as, a one-line explanation, and where the tool is *wrong* rather than merely
following another convention. The rules were derived by reading each tool's source and are checked
against the tools themselves by ``bench/peers.py`` and ``tests/test_peers.py``:

* torchinfo 1.8.0 (``layer_info.py: calculate_macs``, ``model_statistics.py``): per leaf module
  with parameters, ``"Conv" in class name``: ``params x N x output positions``; else ``N x params``.
* fvcore 0.1.5 (``jit_handles.py``, ``flop_count.py: _DEFAULT_SUPPORTED_OPS``): traced aten ops:
  convolution (transposed per input position, no bias), linear/addmm, batch_norm (eval:
  ``numel x (2 if affine else 1)``), group/layer norm (``5|4 x numel``), instance norm,
  ``adaptive_avg_pool2d`` (input numel), ``upsample_nearest2d`` (x1) / ``upsample_bilinear2d`` (x4).
* ptflops 0.7.5 pytorch backend (``pytorch_ops.py``, ``pytorch_engine.py``): module hooks keyed by
  *exact* type plus patched ``torch.nn.functional`` calls, which ``nn.ReLU``, pools, ``nn.Upsample``...
  also make: those layers are counted twice. aten backend (``aten_ops.py``): convolution and mm/addmm
  with bias.
* thop 0.1.1 (``vision/basic_hooks.py``, ``calc_func.py``): hooks keyed by exact type; convolution
  ``output numel x C_in/g x prod(k)`` (also for transposed ones), norms ``2 x numel`` (x2 affine).
* torchscan 0.2.0 (``modules/macs.py``): conv ``out numel x C_in/g x prod(k)``, transposed adds
  ``4 x rank``; pools use the module's ``kernel_size`` as stored (an int ``k`` counts ``k``, not ``k²``).
* ``torch.utils.flop_counter.FlopCounterMode`` (torch 2.13): 2 x the MACs of convolutions and matmuls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from convcalc.engine import StageResult
from convcalc.primitives.activation import Activation, Identity
from convcalc.primitives.base import numel
from convcalc.primitives.conv import Conv, ConvTranspose, DeformSample
from convcalc.primitives.linear import Linear
from convcalc.primitives.norm import Norm
from convcalc.primitives.pool import AdaptivePool, Pool
from convcalc.primitives.resample import Upsample
from convcalc.primitives.reshape import Flatten

if TYPE_CHECKING:
    from convcalc.network.result import NetResult

ACTIVATION_CLASSES = {
    "relu": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU", "elu": "ELU", "gelu": "GELU", "silu": "SiLU",
    "mish": "Mish", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid", "sigmoid": "Sigmoid", "tanh": "Tanh",
    "softmax": "Softmax", "log_softmax": "LogSoftmax", "prelu": "PReLU",
}  # fmt: skip
"""convcalc activation -> the ``torch.nn`` class the export writes."""


class Unit(NamedTuple):
    """One exported module call (or tensor op) with convcalc's numbers for it, per sample."""

    cls: str
    """``torch.nn`` class name the export writes (``Conv2d``, ``BatchNorm2d``...; ``merge`` for tensor ops)."""
    stage: StageResult
    modulated: bool = False
    """A deformable conv called with masks (v2)."""

    @property
    def macs(self) -> int:
        return self.stage.stats.macs

    @property
    def positions(self) -> int:
        """Output positions of the exported module: a transposed conv whose crop is larger at the end
        than at the start outputs ``b - a`` more per axis, cropped afterwards by ``F.pad``."""
        op = self.stage.op
        if isinstance(op, ConvTranspose):
            return math.prod(o + max(b - a, 0) for o, (a, b) in zip(self.stage.output[1:], op.padding, strict=True))
        return numel(self.stage.output[1:])

    @property
    def bias_adds(self) -> int:
        if isinstance(self.stage.op, ConvTranspose):
            return self.stage.stats.biases * self.positions
        return self.stage.stats.bias_adds

    @property
    def params(self) -> int:
        return self.stage.stats.params

    @property
    def n_in(self) -> int:
        """Input elements the exported module sees: asymmetric padding is an ``F.pad`` before it."""
        shape, op = self.stage.input_shapes[0], self.stage.op
        if isinstance(op, (Conv, Pool)) and any(a != b for a, b in op.padding):
            return shape[0] * math.prod(i + a + b for i, (a, b) in zip(shape[1:], op.padding, strict=True))
        return numel(shape)

    @property
    def n_out(self) -> int:
        return numel(self.stage.output)

    @property
    def rank(self) -> int:
        return len(self.stage.input_shapes[0]) - 1

    def spatial(self) -> list[tuple[int, int]]:
        """``(input, output)`` sizes per spatial axis (a pool that drops its unit axes outputs 1s)."""
        out = self.stage.output[1:] or (1,) * self.rank
        return list(zip(self.stage.input_shapes[0][1:], out, strict=True))


def units(kind: str, stages: Sequence[StageResult]) -> list[Unit]:
    """The modules ``convcalc export`` writes for one layer of type ``kind`` (see :mod:`.torch_export`)."""
    out = []
    for index, stage in enumerate(stages):
        op, rank = stage.op, len(stage.input_shapes[0]) - 1
        if op.merge:
            cls = "merge"
        elif isinstance(op, Conv):
            cls = "DeformConv2d" if kind == "deformable2d" and index == len(stages) - 1 else f"Conv{rank}d"
        elif isinstance(op, ConvTranspose):
            cls = f"ConvTranspose{rank}d"
        elif isinstance(op, Linear):
            cls = "Linear" if rank == 0 else f"Conv{rank}d"
        elif isinstance(op, Norm):
            cls = _norm_class(op, rank)
        elif isinstance(op, Pool):
            cls = f"{op.mode.capitalize()}Pool{rank}d"
        elif isinstance(op, AdaptivePool):
            cls = f"Adaptive{op.mode.capitalize()}Pool{rank}d"
        elif isinstance(op, Activation):
            cls = ACTIVATION_CLASSES[op.fn]
        elif isinstance(op, Upsample):
            cls = "Upsample"
        elif isinstance(op, Identity):
            cls = "Dropout" if kind == "dropout" else "Identity"
        elif isinstance(op, Flatten):
            cls = "Flatten"
        elif isinstance(op, DeformSample):
            continue  # inside DeformConv2d
        else:
            cls = type(op).__name__  # views and moves: no tool counts them
        modulated = any(isinstance(s.op, DeformSample) and s.op.modulated for s in stages)
        out.append(Unit(cls, stage, modulated and cls == "DeformConv2d"))
    return out


def _norm_class(op: Norm, rank: int) -> str:
    if op.style == "batch":
        return f"BatchNorm{max(rank, 1)}d"
    if op.style == "instance":
        return f"InstanceNorm{rank}d"
    if op.style == "group":
        return "GroupNorm"
    return "LayerNorm" if op.normalized_shape is not None or rank == 0 else "ChannelLayerNorm"


def _is(unit: Unit, *prefixes: str) -> bool:
    return unit.cls.startswith(prefixes)


def _kernel(unit: Unit) -> tuple[int, ...]:
    op = unit.stage.op
    return tuple(getattr(op, "kernel_size", ()))


def _out_positions(unit: Unit) -> int:
    return numel(unit.stage.output[1:])


def _affine(unit: Unit) -> bool:
    op = unit.stage.op
    return isinstance(op, Norm) and op.affine


# -- the rules (per exported module, batch N) ---------------------------------------------------


def torchinfo(unit: Unit, n: int) -> int:
    if unit.params == 0:
        return 0
    if "Conv" in unit.cls:
        weights = unit.stage.stats.weights
        return n * (weights * unit.positions + unit.bias_adds)  # weights x output positions
    return n * unit.params


def fvcore(unit: Unit, n: int) -> int:
    if _is(unit, "Conv", "Linear"):
        return n * unit.macs
    if _is(unit, "BatchNorm"):
        return n * unit.n_in * (2 if _affine(unit) else 1)
    if _is(unit, "GroupNorm", "LayerNorm", "ChannelLayerNorm", "InstanceNorm"):
        return n * unit.n_in * (5 if _affine(unit) else 4)
    if unit.cls == "AdaptiveAvgPool2d":
        return n * unit.n_in
    op = unit.stage.op
    if isinstance(op, Upsample) and unit.rank == 2 and op.mode in ("nearest", "bilinear"):
        return n * unit.n_out * (1 if op.mode == "nearest" else 4)
    return 0


PTFLOPS_FUNCTIONAL = ("ReLU", "PReLU", "ELU", "GELU", "SiLU", "Softmax")
"""Modules whose forward calls a ``torch.nn.functional`` function ptflops patches (counted numel again)."""


def ptflops(unit: Unit, n: int) -> int:
    module = _ptflops_module(unit, n)
    functional = 0
    if unit.cls in PTFLOPS_FUNCTIONAL or _is(unit, "MaxPool", "AvgPool", "AdaptiveMaxPool", "AdaptiveAvgPool"):
        functional = n * unit.n_in
    elif unit.cls == "Upsample":
        functional = n * unit.n_out
    elif unit.cls == "LocalResponseNorm":
        # F.local_response_norm: x.mul(x), .mul(alpha), .add(k) (patched tensor methods, numel each),
        # and the patched avg_pool over the square padded by size - 1 channels
        size = getattr(unit.stage.op, "size", 1)
        functional = n * (3 * unit.n_in + (unit.stage.input_shapes[0][0] + size - 1) * _out_positions(unit))
    return module + functional


def _ptflops_module(unit: Unit, n: int) -> int:
    if unit.cls == "DeformConv2d":  # registered only when torchvision imports
        return n * (unit.macs + unit.bias_adds + _deform_extra(unit))
    if _is(unit, "Conv", "Linear"):
        return n * (unit.macs + unit.bias_adds)
    if _is(unit, "BatchNorm", "InstanceNorm", "GroupNorm"):
        return n * unit.n_in * (2 if _affine(unit) else 1)
    if unit.cls == "LayerNorm":
        return n * unit.n_in  # nn.LayerNorm has no 'affine' attribute: never doubled
    if unit.cls in ("ReLU", "PReLU", "ELU", "LeakyReLU", "ReLU6", "GELU"):
        return n * unit.n_out
    if _is(unit, "MaxPool", "AvgPool", "AdaptiveMaxPool", "AdaptiveAvgPool"):
        return n * unit.n_in
    if unit.cls == "Upsample":
        return unit.n_out  # the hook reads output[0]: one sample whatever the batch
    return 0


def _deform_extra(unit: Unit) -> int:
    """ptflops' deformable surcharge: ``prod(k) x (24 (+1 with masks))`` per output position."""
    op = unit.stage.op
    kernel = math.prod(getattr(op, "kernel_size", (1,)))
    return kernel * (24 + unit.modulated) * _out_positions(unit)


def ptflops_aten(unit: Unit, n: int) -> int:
    if _is(unit, "Conv", "Linear"):
        return n * (unit.macs + unit.bias_adds)
    return 0


def thop(unit: Unit, n: int) -> int:
    op = unit.stage.op
    if _is(unit, "Conv") and not _is(unit, "ConvTranspose"):
        return n * unit.macs
    if isinstance(op, ConvTranspose):
        return n * op.out_channels * unit.positions * (op.in_channels // op.groups) * math.prod(op.kernel_size)
    if unit.cls == "Linear":
        return n * unit.macs
    if _is(unit, "BatchNorm", "InstanceNorm") or unit.cls == "LayerNorm":
        return n * 2 * unit.n_in * (2 if _affine(unit) else 1)
    if unit.cls == "PReLU":
        return n * unit.n_in
    if unit.cls == "Softmax":
        channels = unit.stage.input_shapes[0][0]
        return n * (unit.n_in // channels) * (3 * channels - 1)
    if _is(unit, "AvgPool"):
        return n * unit.n_out
    if _is(unit, "AdaptiveAvgPool"):
        kernel = 1.0
        for i, o in unit.spatial():
            kernel *= float(i) / float(o)
        return int((kernel + 1) * (n * unit.n_out))
    if isinstance(op, Upsample):
        per = {"nearest": 1, "linear": 5, "bilinear": 11}.get(op.mode, 0)
        return n * unit.n_out * per
    return 0


def torchscan(unit: Unit, n: int) -> int:
    op = unit.stage.op
    if isinstance(op, ConvTranspose):
        per_output = (op.in_channels // op.groups) * math.prod(op.kernel_size)
        return 4 * len(op.kernel_size) + n * op.out_channels * unit.positions * per_output
    if _is(unit, "Conv", "Linear"):
        return n * unit.macs
    if _is(unit, "BatchNorm"):
        return n * unit.n_in * (2 if _affine(unit) else 1)
    if isinstance(op, Pool):
        k = _stored_kernel(_kernel(unit))
        return n * unit.n_out * (k - 1 + (unit.rank if op.mode == "avg" else 0))
    if isinstance(op, AdaptivePool):
        kernel = [i // o if i % o == 0 else i % o + 1 for i, o in unit.spatial()]
        return n * unit.n_out * (math.prod(kernel) - 1 + (len(kernel) if op.mode == "avg" else 0))
    return 0


def _stored_kernel(kernel: tuple[int, ...]) -> int:
    """torchscan's window size: ``prod(kernel_size)`` for a tuple, the int itself for an int (the
    export writes an int when all axes agree, as torchvision does)."""
    return kernel[0] if len(set(kernel)) == 1 else math.prod(kernel)


def torch_flop_counter(unit: Unit, n: int) -> int:
    if _is(unit, "Conv", "Linear"):
        return 2 * n * unit.macs
    return 0


class Wrong(NamedTuple):
    """Where a tool is wrong rather than following another convention, and the exported modules it
    is wrong on (the note is shown only for a network that has one)."""

    text: str
    on: Callable[[Unit], bool]


def _transposed(unit: Unit) -> bool:
    return _is(unit, "ConvTranspose")


def _double_counted(unit: Unit) -> bool:
    """Modules ptflops counts by its hook and again through the functional call it patches."""
    doubled = unit.cls in PTFLOPS_FUNCTIONAL and unit.cls not in ("SiLU", "Softmax")
    return doubled or unit.cls == "Upsample" or _is(unit, "MaxPool", "AvgPool", "AdaptiveMaxPool", "AdaptiveAvgPool")


def _subclass(unit: Unit) -> bool:
    """Counted modules the export writes as a subclass of a ``torch.nn`` class (hooks keyed by
    exact type miss them): the channels-first ``ChannelLayerNorm(nn.LayerNorm)``."""
    return unit.cls == "ChannelLayerNorm"


def _square_window(unit: Unit) -> bool:
    kernel = _kernel(unit)
    return isinstance(unit.stage.op, Pool) and len(kernel) > 1 and len(set(kernel)) == 1 and kernel[0] > 1


class Peer(NamedTuple):
    """One counter: its rule, how it is built from convcalc's counts, and where it is wrong."""

    name: str
    tool: str
    rule: Callable[[Unit, int], int]
    explain: str
    wrong: tuple[Wrong, ...] = ()
    batch_one: bool = False
    """True when the tool always builds its own batch of one (ptflops)."""
    live_only: bool = False
    """True when the tool drops work whose result never reaches the output (fvcore's jit trace
    removes dead code, e.g. Inception-v3's auxiliary head in a forward that returns the logits only)."""


PEERS: dict[str, Peer] = {}


def register(peer: Peer) -> None:
    """Add a peer; a name registered twice is refused."""
    if peer.name in PEERS:
        raise ValueError(f"peer {peer.name!r} registered twice")
    PEERS[peer.name] = peer


register(Peer(
    "torchinfo", "torchinfo 1.8.0 summary().total_mult_adds", torchinfo,
    "MACs + bias adds + params of norm/PReLU layers (conv: weights x output positions)",
    (Wrong("transposed convs counted per output position (x prod(stride))", _transposed),),
))  # fmt: skip
register(Peer(
    "fvcore", "fvcore 0.1.5 FlopCountAnalysis.total()", fvcore,
    "MACs (no bias) + BN numel x2 + other norms x5 + 2D adaptive-avg-pool inputs + 2D upsampling;"
    " side branches dropped",
    live_only=True,
))  # fmt: skip
register(Peer(
    "ptflops", "ptflops 0.7.5 get_model_complexity_info (pytorch backend)", ptflops,
    "MACs + bias adds + norm numel x2 + ReLU-like activations, pools and upsampling (twice)",
    (
        Wrong("counts ReLU/PReLU/ELU/GELU, pools and upsampling twice", _double_counted),
        Wrong("skips subclasses of its module types (the export's ChannelLayerNorm)", _subclass),
    ),
    batch_one=True,
))  # fmt: skip
register(Peer(
    "ptflops_aten", "ptflops 0.7.5 get_model_complexity_info (aten backend)", ptflops_aten,
    "MACs + bias adds (aten.convolution, aten.addmm); nothing else",
    batch_one=True,
))  # fmt: skip
register(Peer(
    "thop", "thop 0.1.1 profile() MACs", thop,
    "MACs (no bias) + norm numel x4 (x2 without affine) + avg pools + softmax + upsampling",
    (
        Wrong("transposed convs counted per output position", _transposed),
        Wrong("skips subclasses of its module types (the export's ChannelLayerNorm)", _subclass),
    ),
))  # fmt: skip
register(Peer(
    "torchscan", "torchscan 0.2.0 crawl_module() totals.macs (known_value)", torchscan,
    "MACs (no bias) + BN numel x2 + pools (window - 1 per output) + adaptive pools",
    (
        Wrong("transposed convs counted per output position (+4·rank)", _transposed),
        Wrong("a k x k pool window counted as k", _square_window),
    ),
))  # fmt: skip
register(Peer(
    "torch_flop_counter", "torch.utils.flop_counter.FlopCounterMode (torch 2.13) FLOPs", torch_flop_counter,
    "2 x MACs of convolutions and matmuls (FLOPs, not MACs); nothing else",
))  # fmt: skip


def peer_totals(layers: Iterable[tuple[str, Sequence[StageResult]]], batch: int = 1) -> dict[str, int]:
    """Each peer's total for layers ``(type, stages)`` in order, the last stage being the output;
    ``batch`` as the tool would be run (ptflops always builds a batch of one)."""
    listed = list(layers)
    all_units = [u for kind, stages in listed for u in units(kind, stages)]
    live = _live([stage for _, stages in listed for stage in stages])
    totals = {}
    for name, peer in PEERS.items():
        n = 1 if peer.batch_one else batch
        totals[name] = sum(peer.rule(u, n) for u in all_units if not peer.live_only or u.stage.name in live)
    return totals


def wrong_notes(layers: Iterable[tuple[str, Sequence[StageResult]]]) -> dict[str, list[str]]:
    """Per peer, the notes of :attr:`Peer.wrong` that apply to some module of layers ``(type, stages)``."""
    all_units = [u for kind, stages in layers for u in units(kind, stages)]
    return {name: [w.text for w in peer.wrong if any(w.on(u) for u in all_units)] for name, peer in PEERS.items()}


def network_layers(result: NetResult) -> list[tuple[str, Sequence[StageResult]]]:
    """The ``(type, stages)`` of the rows that run in the result's mode (what the exported module runs)."""
    return [(row.type, row.stages) for row in result.rows if result.runs(row)]


def network_peer_totals(result: NetResult) -> dict[str, int]:
    """:func:`peer_totals` of the rows that run in the result's mode: the tools run the exported
    module, whose forward skips training-only rows unless it is in ``train()`` mode."""
    return peer_totals(network_layers(result), result.batch)


def _live(stages: Sequence[StageResult]) -> set[str]:
    """Names of the stages the last stage depends on (itself included)."""
    if not stages:
        return set()
    live = {stages[-1].name}
    for stage in reversed(stages):
        if stage.name in live:
            live.update(stage.inputs)
    return live
