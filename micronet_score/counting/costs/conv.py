"""Convolutions of every dimension, grouped, depthwise, strided and transposed.

Per output element a convolution computes a dot product of length k^d * C_in / groups: that many
multiplications and one fewer additions, plus one for the bias. Sparse filters shorten their own dot products
(per output channel non-zeros). Padding is ignored: every output costs the full dot product. A transposed
convolution costs the full product per *input* position: each input element is multiplied by k^d * C_out /
groups weights and the products are accumulated into the outputs.
"""

from __future__ import annotations

import math

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def _has_bias(bias: object) -> bool:
    return bias is not None


@register(aten.convolution, aten._convolution, *maybe("convolution_overrideable"), kind="conv", mult_operands=(0, 1))
def convolution(call: OpCall) -> Cost:
    x, weight, bias = call.arg(0, "input"), call.arg(1, "weight"), call.arg(2, "bias")
    transposed = bool(call.arg(6, "transposed", False))
    out = call.out
    batch = x.shape[0]
    if transposed:
        # weight: (C_in, C_out/groups, k...); every input element meets its channel's filter once.
        stats = call.channel_stats(weight, 0)
        positions = batch * math.prod(x.shape[2:])
        mults = positions * stats.nonzeros
        outputs = out.numel()
        adds = max(mults - outputs, 0) + (outputs if _has_bias(bias) else 0)
        return Cost(mults, adds)
    # weight: (C_out, C_in/groups, k...); each output element of channel c costs z_c mults, z_c - 1 adds.
    stats = call.channel_stats(weight, 0)
    per_channel = batch * math.prod(out.shape[2:])
    mults = per_channel * stats.nonzeros
    adds = per_channel * stats.nonzeros_minus_one
    if _has_bias(bias):
        adds += per_channel * stats.active
    return Cost(mults, adds)
