"""Matrix products: mm, addmm (linear layers), linear, bmm, baddbmm, mv, addmv, dot.

An (M x K) @ (K x N) product costs M*N*K multiplications and M*N*(K-1) additions. When one operand is a stored
weight, each output channel (a column of the right weight, a row of the left one) has its own dot-product
length: the non-zeros of that weight slice. A bias adds one addition per output element whose weight slice is
not entirely zero. ``alpha``/``beta`` other than 1 cost one multiplication per element they scale.
"""

from __future__ import annotations

import math

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


@register(*maybe("_grouped_mm"), kind="linear", mult_operands=(0, 1))
def grouped_mm(call: OpCall) -> Cost:
    """Groups of products in one call (mixture-of-experts layers: tokens (T, K) against expert weights (G, K, N),
    ``offs`` marking each expert's rows): every output element is one dot product of its group's length. A
    split of the reduced dimension ((M, K) @ (K, N), ``offs`` over K, output (G, M, N)) sums each group's K_g
    values: M*N*K mults and M*N*K - G*M*N adds (every group taken as non-empty: the offsets are values). Dense:
    the weights' zeros are not read per expert."""
    a, b, out = call.args[0], call.args[1], call.out
    bias = call.arg(3, "bias")
    outputs = out.numel()
    if a.dim() == 2 and b.dim() == 2:  # offs split the reduced dimension
        mults = a.shape[0] * b.shape[1] * a.shape[1]
        adds = mults - outputs
    else:
        mults = outputs * a.shape[-1]
        adds = outputs * (a.shape[-1] - 1)
    return Cost(mults, adds + (outputs if bias is not None else 0))


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


def _contract(left: list[int], right: list[int], summed: list[int]) -> tuple[list[int], int, int]:
    """(result shape, mults, adds) of broadcasting two shapes and summing over the dims ``summed`` (kept as 1):
    each result element is a dot product of the summed length, or one product when nothing is summed."""
    shape = [max(a, b) for a, b in zip(left, right)]
    length = math.prod(shape[d] for d in summed)
    for d in summed:
        shape[d] = 1
    n = math.prod(shape)
    return shape, n * length, n * (length - 1) if summed else 0


@register(aten._trilinear, mult_operands=(0, 1, 2))
def trilinear(call: OpCall) -> Cost:
    """``nn.Bilinear`` (``F.bilinear``): y_k = x1ᵀ W_k x2, computed as torch does: for each slice along
    ``unroll_dim``, the product of the first two operands summed over the dims the third lacks, then that
    times the third summed over the rest (per example of nn.Bilinear: out·in2·in1 + out·in2 mults,
    out·(in1·in2 − 1) adds). A slice sum over ``unroll_dim`` adds the slices. In the ``nn.Bilinear`` layout,
    a stored weight's zeros are skipped in the first product, as a linear layer's are."""
    i1, i2, i3 = call.args[0], call.args[1], call.args[2]
    expands = [set(call.args[i]) for i in (3, 4, 5)]
    sumdim, unroll = set(call.args[6]), call.arg(7, "unroll_dim", 1)
    if expands == [{1, 3}, {0}, {1, 2}] and sumdim == {2, 3} and unroll == 1 and call.is_static(i2) \
            and not i2.is_meta:
        # nn.Bilinear: W (out, in1, in2); per example and slice (k, j) a dot product over in1 of W[k, :, j]'s
        # non-zeros, then per k a dense dot product over in2
        batch, k, n2 = i1.shape[0], i2.shape[0], i2.shape[2]
        nonzero = (i2.detach() != 0).sum(dim=1)
        return Cost(batch * int(nonzero.sum()) + batch * k * n2,
                    batch * int((nonzero - 1).clamp_min(0).sum()) + batch * k * (n2 - 1))
    total = i1.dim() + len(expands[0])
    shapes: list[list[int]] = []
    for t, expand in zip((i1, i2, i3), expands):
        sizes, it = [], iter(t.shape)
        for d in range(total):
            sizes.append(1 if d in expand else next(it))
        shapes.append(sizes)
    slices = max(s[unroll] for s in shapes)
    for s in shapes:
        s[unroll] = 1
    first = [d for d in sorted(sumdim) if d in expands[2] and d != unroll]
    second = [d for d in sorted(sumdim) if d not in expands[2] and d != unroll]
    middle, mults1, adds1 = _contract(shapes[0], shapes[1], first)
    out, mults2, adds2 = _contract(middle, shapes[2], second)
    mults, adds = slices * (mults1 + mults2), slices * (adds1 + adds2)
    if unroll in sumdim:
        adds += (slices - 1) * math.prod(out)
    return Cost(mults, adds)
