"""Elementwise arithmetic and comparisons, per output element (broadcasting included).

add/sub: 1 add (plus 1 mult when ``alpha`` is not 1); mul/div: 1 mult; comparisons, min/max: 1 op booked as a
mult; addcmul/addcdiv: 1 add and 1 or 2 mults; lerp: 1 mult and 2 adds.
"""

from __future__ import annotations

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def _n(call: OpCall) -> int:
    return call.out.numel()


@register(aten.add, aten.add_, aten.sub, aten.sub_, aten.rsub)
def add(call: OpCall) -> Cost:
    n = _n(call)
    alpha = call.kwargs.get("alpha", call.args[2] if len(call.args) > 2 else 1)
    return Cost(n if alpha != 1 else 0, n)


register(aten.mul, aten.mul_, aten.div, aten.div_, aten.true_divide, aten.floor_divide, aten.remainder,
         aten.fmod)(lambda call: Cost(_n(call), 0))
register(
    aten.eq, aten.ne, aten.lt, aten.le, aten.gt, aten.ge, aten.maximum, aten.minimum, aten.fmax, aten.fmin,
    aten.bitwise_and, aten.bitwise_or, aten.bitwise_xor, aten.isnan, aten.isinf, aten.isfinite,
)(lambda call: Cost(_n(call), 0))
# logical and/or/xor: 1 add per combined pair; logical not costs nothing (spec section 3)
register(aten.logical_and, aten.logical_or, aten.logical_xor, *maybe("logical_and_"), *maybe("logical_or_"),
         *maybe("logical_xor_"))(lambda call: Cost(0, _n(call)))
register(aten.logical_not, *maybe("logical_not_"))(lambda call: Cost(0, 0))


@register(aten.addcmul, aten.addcmul_, aten.addcdiv, aten.addcdiv_)
def addcmul(call: OpCall) -> Cost:
    n = _n(call)
    value = call.kwargs.get("value", call.args[3] if len(call.args) > 3 else 1)
    return Cost(n * (2 if value != 1 else 1), n)


@register(aten.lerp, aten.lerp_)
def lerp(call: OpCall) -> Cost:
    n = _n(call)  # start + weight * (end - start)
    return Cost(n, 2 * n)
