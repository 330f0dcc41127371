"""Operators that make, take apart or conjugate complex values (spec section 3).

Free: ``torch.complex`` (pairs two real tensors), the lazy conjugation (``conj``: a flag on the view, priced by
the arithmetic that reads it) and its resolution; ``view_as_complex``/``view_as_real`` (and ``.real``/``.imag``,
which dispatch to them) are in the free table. Priced: ``polar`` (r·cos θ, r·sin θ: 2 transcendentals + 2 mults
per element, all booked as mults), ``angle`` (atan2 of the parts: 1 transcendental; a comparison on a real
input), ``conj_physical`` (negates the imaginary parts: 1 op per complex element, as ``neg`` costs 1).

The complex versions of the real arithmetic (a complex multiply, add, |z|, exp, matrix products, sums) are in
:mod:`micronet_score.counting.complex_values`; the FFTs in :mod:`micronet_score.counting.costs.fft`.
"""

from __future__ import annotations

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register, register_free

register_free(aten.complex, aten._conj, *maybe("conj"), *maybe("resolve_conj"))


@register(aten.polar)
def polar(call: OpCall) -> Cost:
    return Cost(4 * call.out.numel(), 0)


@register(aten.angle)
def angle(call: OpCall) -> Cost:
    return Cost(call.out.numel(), 0)


@register(aten.conj_physical, aten._conj_physical, *maybe("conj_physical_"))
def conj_physical(call: OpCall) -> Cost:
    out = call.out
    return Cost(out.numel() if out.is_complex() else 0, 0)
