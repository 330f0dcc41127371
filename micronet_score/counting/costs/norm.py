"""Normalisations.

Batch norm in inference is a per-channel affine (1 mult + 1 add per element) unless the engine folds it into
the convolution or linear layer that produces its input (then it costs nothing here and the producer gains a
bias); the folding decision is the engine's, made once the whole forward has been seen. Norms that compute
statistics at run time (layer norm, group norm, batch norm in training mode, RMS norm) cost, per normalised
group of n values: mean (n-1) adds + 1 mult, variance n mults + (n-1) adds + 1 mult, 1 transcendental (rsqrt),
then 1 add + 1 mult per element, plus the affine transform when present.
"""

from __future__ import annotations

import math

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def _statistics(groups: int, n: int, weight: object, bias: object) -> Cost:
    group_mults = 1 + n + 1 + 1  # mean's division, squares, variance's division, rsqrt
    group_adds = 2 * (n - 1)
    elements = groups * n
    mults = groups * group_mults + elements * (1 + (weight is not None))
    adds = groups * group_adds + elements * (1 + (bias is not None))
    return Cost(mults, adds)


@register(aten.native_batch_norm, aten._native_batch_norm_legit, kind="batchnorm", mult_operands=(0, 1, 3, 4))
def batch_norm(call: OpCall) -> Cost:
    x = call.args[0]
    if call.arg(5, "training", False):
        channels = x.shape[1]
        return _statistics(channels, x.numel() // channels, call.args[1], call.args[2])
    n = x.numel()
    return Cost(n, n)


@register(aten._native_batch_norm_legit_no_training, kind="batchnorm", mult_operands=(0, 1, 3, 4))
def batch_norm_inference(call: OpCall) -> Cost:
    n = call.args[0].numel()
    return Cost(n, n)


@register(aten.native_layer_norm, mult_operands=(0, 2))
def layer_norm(call: OpCall) -> Cost:
    x, shape = call.args[0], call.args[1]
    n = math.prod(shape)
    return _statistics(x.numel() // max(n, 1), n, call.arg(2, "weight"), call.arg(3, "bias"))


@register(aten.native_group_norm, mult_operands=(0, 1))
def group_norm(call: OpCall) -> Cost:
    weight, bias = call.args[1], call.args[2]
    batch, channels, hxw, groups = call.args[3], call.args[4], call.args[5], call.args[6]
    return _statistics(batch * groups, channels // groups * hxw, weight, bias)


@register(*maybe("_fused_rms_norm"), *maybe("rms_norm"))
def rms_norm(call: OpCall) -> Cost:
    x, shape = call.args[0], call.args[1]
    n = math.prod(shape)
    groups = x.numel() // max(n, 1)
    weight = call.arg(2, "weight")
    # per group: n squares, n - 1 adds and 1 division (the mean), 1 add (eps), 1 rsqrt; per element: 1 mult
    # (+1 for the weight). The same ops PyTorch runs when it does not fuse the norm.
    return Cost(groups * (n + 2) + groups * n * (1 + (weight is not None)), groups * n)
