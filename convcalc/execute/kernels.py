"""Public kernel API: every function takes and returns NumPy arrays.

Convolutions: :func:`conv`, :func:`conv_transpose`, :func:`deform_conv2d`
(planned from shapes by :func:`plan_conv` / :func:`plan_conv_transpose`,
whose ``workspace_bytes`` is the scratch memory a call will use).  Pooling,
normalisation, activations, resampling and re-arrangement layers follow
``torch.nn.functional``.  :func:`kernel_stats` collects per-call MAC counts;
:func:`workspace_budget` bounds scratch memory.
"""

from convcalc.execute.conv import ConvPlan, conv, pack_conv, plan_conv, run_plan
from convcalc.execute.deform import deform_conv2d, deform_workspace_bytes
from convcalc.execute.layers import (
    batch_norm,
    channel_shuffle,
    erf,
    flatten,
    gelu,
    group_norm,
    hardsigmoid,
    hardswish,
    layer_norm,
    leaky_relu,
    linear,
    pixel_shuffle,
    pixel_unshuffle,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    tanh,
    upsample_linear,
    upsample_nearest,
    zero_pad,
)
from convcalc.execute.pool import (
    adaptive_avg_pool,
    adaptive_max_pool,
    avg_pool,
    global_avg_pool,
    global_max_pool,
    max_pool,
)
from convcalc.execute.stats import KernelRecord, KernelStats, kernel_stats
from convcalc.execute.transposed import ConvTransposePlan, conv_transpose, pack_col2im, plan_conv_transpose, run_transpose_plan
from convcalc.execute.workspace import (
    get_workspace_budget,
    release_workspace,
    set_workspace_budget,
    workspace_budget,
)

swish = silu

__all__ = [
    "ConvPlan",
    "ConvTransposePlan",
    "KernelRecord",
    "KernelStats",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "avg_pool",
    "batch_norm",
    "channel_shuffle",
    "conv",
    "conv_transpose",
    "deform_conv2d",
    "deform_workspace_bytes",
    "erf",
    "flatten",
    "gelu",
    "get_workspace_budget",
    "global_avg_pool",
    "global_max_pool",
    "group_norm",
    "hardsigmoid",
    "hardswish",
    "kernel_stats",
    "layer_norm",
    "leaky_relu",
    "linear",
    "max_pool",
    "pack_col2im",
    "pack_conv",
    "pixel_shuffle",
    "pixel_unshuffle",
    "plan_conv",
    "plan_conv_transpose",
    "release_workspace",
    "relu",
    "relu6",
    "run_plan",
    "run_transpose_plan",
    "set_workspace_budget",
    "sigmoid",
    "silu",
    "softmax",
    "swish",
    "tanh",
    "upsample_linear",
    "upsample_nearest",
    "workspace_budget",
    "zero_pad",
]
