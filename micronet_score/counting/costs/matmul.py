"""Matrix products: mm, addmm (linear layers), linear, bmm, baddbmm, mv, addmv, dot.

An (M x K) @ (K x N) product costs M*N*K multiplications and M*N*(K-1) additions. When one operand is a stored
weight, each output channel (a column of the right weight, a row of the left one) has its own dot-product
length: the non-zeros of that weight slice. A bias adds one addition per output element whose weight slice is
not entirely zero. ``alpha``/``beta`` other than 1 cost one multiplication per element they scale.
"""

from __future__ import annotations

import torch

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def _product(call: OpCall, a: torch.Tensor, b: torch.Tensor, bias: object) -> Cost:
    """Cost of a @ b for operands of shape (..., M, K) @ (..., K, N), bias add included."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = max(a.shape[:-2].numel(), b.shape[:-2].numel())
    if b.dim() == 2 and call.is_static(b):
        stats, per_channel = call.channel_stats(b, 1), m * batch
    elif a.dim() == 2 and call.is_static(a):
        stats, per_channel = call.channel_stats(a, 0), n * batch
    else:
        return Cost(batch * m * n * k, batch * m * n * (k - 1) + (batch * m * n if bias is not None else 0))
    adds = per_channel * stats.nonzeros_minus_one + (per_channel * stats.active if bias is not None else 0)
    return Cost(per_channel * stats.nonzeros, adds)


def _scaling(call: OpCall, bias: object) -> int:
    """Multiplications for alpha != 1 (scales the product) and beta not in (0, 1) (scales the bias)."""
    outputs = call.out.numel()
    alpha, beta = call.kwargs.get("alpha", 1), call.kwargs.get("beta", 1)
    return (outputs if alpha != 1 else 0) + (outputs if bias is not None and beta not in (0, 1) else 0)


@register(aten.mm, aten.bmm, *maybe("_int_mm"), kind="linear")
def mm(call: OpCall) -> Cost:
    return _product(call, call.args[0], call.args[1], None)


@register(aten.addmm, aten.baddbmm, kind="linear", mult_operands=(1, 2))
def addmm(call: OpCall) -> Cost:
    bias, a, b = call.args[0], call.args[1], call.args[2]
    mults, adds, _ = _product(call, a, b, bias)
    return Cost(mults + _scaling(call, bias), adds)


@register(aten.linear, mult_operands=(0, 1))
def linear(call: OpCall) -> Cost:
    x, weight, bias = call.args[0], call.args[1], call.arg(2, "bias")
    rows = x.shape[:-1].numel()
    if call.is_static(weight):
        stats = call.channel_stats(weight, 0)
        adds = rows * stats.nonzeros_minus_one + (rows * stats.active if bias is not None else 0)
        return Cost(rows * stats.nonzeros, adds)
    n, k = weight.shape
    return Cost(rows * n * k, rows * n * (k - 1) + (rows * n if bias is not None else 0))


@register(aten.mv)
def mv(call: OpCall) -> Cost:
    return _product(call, call.args[0], call.args[1].unsqueeze(-1), None)


@register(aten.addmv, mult_operands=(1, 2))
def addmv(call: OpCall) -> Cost:
    bias = call.args[0]
    mults, adds, _ = _product(call, call.args[1], call.args[2].unsqueeze(-1), bias)
    return Cost(mults + _scaling(call, bias), adds)


@register(aten.dot, aten.vdot)
def dot(call: OpCall) -> Cost:
    k = call.args[0].numel()
    return Cost(k, k - 1)


@register(aten._cdist_forward)
def cdist(call: OpCall) -> Cost:
    """``torch.cdist`` computed directly (torch's matrix-product form of p = 2 reaches mm and the elementwise
    operators instead): per output distance over M features, M subtractions and M - 1 additions, then by p:
    squares and one sqrt (p = 2: M + 1 mults); absolute values (p = 1: M); absolute values and M - 1
    comparisons, no sum (p = inf: 2M - 1 mults, M adds); comparisons with zero (p = 0: M); else absolute
    values, powers and one root (2M + 1). A zero in a stored operand still costs its subtraction."""
    m, p = call.args[0].shape[-1], float(call.arg(2, "p", 2.0))
    outputs = call.out.numel()
    if m == 0:
        return Cost(0, 0)
    if p == float("inf"):
        return Cost(outputs * (2 * m - 1), outputs * m)
    mults = {2.0: m + 1, 1.0: m, 0.0: m}.get(p, 2 * m + 1)
    return Cost(outputs * mults, outputs * (2 * m - 1))
