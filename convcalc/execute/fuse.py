"""Inference-time fusion for the end-to-end forward pass (the per-layer timings run every stage
alone, unfused).

Two rewrites, decided from the plans' :class:`~convcalc.execute.registry.Fuse` flags and the
graph alone (so the memory estimate knows their cost before anything is made):

* **fold** - a convolution (or transposed convolution) whose only reader is an eval-mode batch
  norm ``y = x·s + t`` takes it into its weights, per output channel ``o``:
  ``w'[o] = s[o]·w[o]``, ``b'[o] = s[o]·b[o] + t[o]`` (``b = 0`` without a bias), with
  ``s = γ/√(σ² + ε)``, ``t = β - μ·s``: the rule of PyTorch's
  ``torch.nn.utils.fusion.fuse_conv_bn_weights`` (Jacob et al. 2018, "Quantization and
  Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", §3.2). The
  batch norm's pass over its input disappears; the folded weights are a second copy (counted).
* **epilogue** - an element-wise stage (ReLU, ReLU6, tanh) whose only input is a convolution's
  output (after any folds) runs inside that convolution, in place on each output block as the
  convolution writes it (the block is still in cache: one pass over memory fewer); as oneDNN's
  post-ops and TensorRT's conv+activation fusion do. Nothing folds into a step after its
  epilogue (``f(s·y + t) != s·f(y) + t``).
* **in place** - a stage that can write its output into its first input's buffer (ReLU, ReLU6,
  tanh, a same-shaped add) does so when that input is a fresh array (made by a stage of this
  pass, never the network's input) that nothing else reads: no new array, no page faults.

These are the rewrites inference engines apply (e.g. ``torch.fx.experimental.optimization.fuse``
folds batch norms the same way); the results equal the unfused pass up to float rounding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convcalc.execute.registry import Array, Fuse, Kernel, Plan, Step


@dataclass(frozen=True)
class FusedStep:
    """One step of the fused pass: stage ``stage``'s kernel (with the affines of the batch-norm
    stages ``folds`` folded in, in order, then stage ``epilogue`` applied to each output block),
    run in place or not, reading ``inputs`` and producing the tensor of the last stage it covers,
    ``output``."""

    stage: int
    inputs: tuple[str, ...]
    output: str
    folds: tuple[int, ...] = ()
    in_place: bool = False
    epilogue: int | None = None


def plan_fusion(names: Sequence[str], inputs: Sequence[tuple[str, ...]], plans: Sequence[Plan]) -> list[FusedStep]:
    """The fused pass over stages ``names`` (reading ``inputs``) from their plans (module docstring)."""
    readers = Counter(name for names_in in inputs for name in names_in)
    steps: list[FusedStep] = []
    producer: dict[str, int] = {}
    fresh: set[str] = set()
    for index, (name, sources, plan) in enumerate(zip(names, inputs, plans, strict=True)):
        first = sources[0] if sources else ""
        sole = first in producer and readers[first] == 1
        at = producer.get(first, -1)
        merged = None
        if sole and len(sources) == 1 and Fuse.AFFINE in plan.fuse and _folds(steps[at], plans):
            merged = replace(steps[at], output=name, folds=(*steps[at].folds, index))
        elif sole and len(sources) == 1 and Fuse.ELEMENTWISE in plan.fuse and _takes_epilogue(steps[at], plans):
            merged = replace(steps[at], output=name, epilogue=index)
        if merged is not None:
            steps[at] = merged
            producer[name] = producer.pop(first)
            if first in fresh:
                fresh.add(name)
            continue
        in_place = sole and first in fresh and Fuse.IN_PLACE in plan.fuse
        producer[name] = len(steps)
        steps.append(FusedStep(index, tuple(sources), name, (), in_place))
        if in_place or Fuse.FRESH in plan.fuse:
            fresh.add(name)
    return steps


def _folds(step: FusedStep, plans: Sequence[Plan]) -> bool:
    return not step.in_place and step.epilogue is None and Fuse.FOLDS in plans[step.stage].fuse


def _takes_epilogue(step: FusedStep, plans: Sequence[Plan]) -> bool:
    return not step.in_place and step.epilogue is None and Fuse.EPILOGUE in plans[step.stage].fuse


def folded_bytes(steps: Sequence[FusedStep], plans: Sequence[Plan], channels: Sequence[int], dtype: np.dtype[Any]) -> int:
    """Bytes of the folded copies of the weights: each folding stage's weights (and packed
    weights) made once more, plus a bias of its ``channels`` outputs where it had none."""
    total = 0
    for step in steps:
        if step.folds:
            plan = plans[step.stage]
            total += plan.weight_bytes(dtype) + (0 if len(plan.weights) > 1 else channels[step.stage] * dtype.itemsize)
    return total


def summary(steps: Sequence[FusedStep]) -> tuple[int, int, int]:
    """How many batch norms the pass folds, how many of its steps run in place and how many
    activations run as a convolution's epilogue."""
    return sum(len(s.folds) for s in steps), sum(s.in_place for s in steps), sum(s.epilogue is not None for s in steps)


def fused_step(step: FusedStep, kernels: Sequence[Kernel]) -> Step:
    """The callable of ``step``: its kernel with the batch norms folded in, or in place."""
    kernel = kernels[step.stage]
    for index in step.folds:
        affine = kernels[index].affine
        assert kernel.fold is not None and affine is not None, "plan flags without kernel callables"
        kernel = kernel.fold(*affine)
    if step.epilogue is not None:
        then = kernels[step.epilogue].elementwise
        assert kernel.epilogue is not None and then is not None, "plan flags without kernel callables"
        kernel = kernel.epilogue(then)
    if step.in_place:
        assert kernel.in_place is not None, "plan flags without kernel callables"
        return kernel.in_place
    return kernel.step


def fold_conv(w: Array, b: Array | None, scale: Array, shift: Array) -> tuple[Array, Array]:
    """Weights ``(C_out, C_in/g, *k)`` and bias of ``scale·conv(x) + shift`` (module docstring)."""
    w_folded = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    return w_folded, (shift if b is None else b * scale + shift)


def fold_conv_transpose(w: Array, b: Array | None, scale: Array, shift: Array, groups: int) -> tuple[Array, Array]:
    """Weights ``(C_in, C_out/g, *k)`` and bias of ``scale·conv_transpose(x) + shift``: output
    channel ``o = j·(C_out/g) + i`` of group ``j`` is column ``i`` of that group's input rows."""
    c_in, per_group = w.shape[:2]
    grouped = w.reshape(groups, c_in // groups, per_group, *w.shape[2:])
    w_folded = grouped * scale.reshape(groups, 1, per_group, *(1,) * (w.ndim - 2))
    return w_folded.reshape(w.shape), (shift if b is None else b * scale + shift)
