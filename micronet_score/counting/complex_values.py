"""Prices of real arithmetic applied to complex values (spec section 3 "Complex arithmetic").

The tracer calls :func:`complex_cost` for a costed operator that reads or writes a complex tensor, with the
cost its real cost function computed from the shapes. Per complex element (a + bi):

- add/sub: 2 adds (a real operand is promoted: its zero imaginary part is added too); ``alpha`` ≠ 1: 1 mult per
  real value it scales;
- multiply, matrix products and their sums: each complex product is 4 mults + 2 adds, each accumulation 2 adds;
  a real operand times a complex one is 2 mults (each part scaled);
- divide (convention, the spec is silent): the textbook (a + bi)/(c + di) = ((ac + bd) + (bc − ad)i)/(c² + d²),
  6 mults + 3 adds + 2 divisions = 8 mults + 3 adds; complex / real 2 mults; real / complex 6 mults + 1 add
  (ac, ad, c², d², c² + d², 2 divisions); reciprocal 1/(c + di): 4 mults + 1 add;
- |z| = sqrt(a² + b²): 2 mults + 1 add + 1 transcendental (3 mults + 1 add); exp(z) = eᵃ(cos b + i sin b):
  2 transcendentals + 2 mults (4 mults); z ** k for an integer k from 1 to 4: k − 1 complex multiplies;
- sums, means, cumulative sums and negation act on each part: twice the real price;
- dtype conversions: free when each part converts exactly (float32 to complex64, complex64 to float32), else
  1 mult per converted real value.

Operators priced natively for complex values (FFTs, ``polar``, ``angle``, ``conj_physical``) keep their cost.
Any other costed operator on complex values returns None: the tracer raises ``ComplexTensorError`` naming it
(transcendentals other than exp, norms, softmax ... of complex tensors). A complex convolution reaches the
tracer as torch's own decomposition into real convolutions and adds, and is priced as those.
"""

from __future__ import annotations

from typing import Any

import torch

from micronet_score.bits import dtype_bits, exact_conversion
from micronet_score.counting.registry import Cost, CostEntry, OpCall, aten, maybe

__all__ = ["complex_cost", "has_complex_price", "part_bits"]


def _packets(*names: str) -> frozenset[Any]:
    return frozenset(p for name in names for p in maybe(name))


_NATIVE = _packets("_fft_c2c", "_fft_r2c", "_fft_c2r", "polar", "angle", "conj_physical", "_conj_physical",
                   "conj_physical_")
_ADDS = _packets("add", "add_", "sub", "sub_", "rsub")
_PER_PART = _packets("neg", "neg_", "sum", "nansum", "mean", "cumsum", "cumsum_")
_PRODUCTS = _packets("mul", "mul_", "mm", "bmm", "addmm", "baddbmm", "linear", "mv", "addmv", "dot", "vdot",
                     "prod")
_DIVIDES = _packets("div", "div_", "true_divide", "true_divide_")
_PRICED = _NATIVE | _ADDS | _PER_PART | _PRODUCTS | _DIVIDES | _packets(
    "_to_copy", "reciprocal", "reciprocal_", "abs", "abs_", "exp", "exp_", "pow", "pow_")


def _cx(x: Any) -> bool:
    """True for a complex tensor or a Python complex number."""
    return x.is_complex() if isinstance(x, torch.Tensor) else isinstance(x, complex)


def _conversion(call: OpCall) -> Cost | None:
    src, out = call.args[0], call.out
    if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor):
        return None
    src_part, out_part = src.dtype.to_real(), out.dtype.to_real()
    if exact_conversion(src_part, out_part):
        return Cost(0, 0)
    return Cost(out.numel() * (2 if src.is_complex() and out.is_complex() else 1), 0)


def has_complex_price(packet: Any) -> bool:
    """True when :func:`complex_cost` may price ``packet`` on complex values."""
    return packet in _PRICED


def complex_cost(packet: Any, entry: CostEntry, call: OpCall, real: Cost) -> Cost | None:
    """The cost of ``packet`` on complex values, from ``real`` (its real cost function's figures on the same
    shapes); None when micronet-score has no complex price for it."""
    if packet in _NATIVE:
        return real
    out = call.out if isinstance(call.out, torch.Tensor) else None
    n = out.numel() if out is not None else 0
    args = call.args
    if packet is aten._to_copy:
        return _conversion(call)
    if packet in _ADDS:
        alpha = call.arg(2, "alpha", 1)
        if _cx(alpha) or out is None:
            return None
        other = args[1] if len(args) > 1 else None
        return Cost(0 if alpha == 1 else n * (2 if _cx(other) else 1), 2 * n)
    if packet in _PER_PART:
        return Cost(2 * real.mults, 2 * real.adds)
    if packet in _PRODUCTS:
        positions = entry.mult_operands if entry.mult_operands is not None else (0, 1)
        operands = [args[i] for i in positions if i < len(args)]
        complex_operands = sum(_cx(x) for x in operands) if len(operands) > 1 else 2 * _cx(args[0])
        if complex_operands >= 2:  # complex x complex: 4 mults + 2 adds per product; accumulations 2 adds
            return Cost(4 * real.mults, 2 * real.mults + 2 * real.adds)
        if complex_operands == 1:  # real x complex: each part on its own
            return Cost(2 * real.mults, 2 * real.adds)
        return None
    if packet in _DIVIDES and out is not None and len(args) > 1:
        num, den = _cx(args[0]), _cx(args[1])
        if num and den:
            return Cost(8 * n, 3 * n)
        if den:
            return Cost(6 * n, n)
        return Cost(2 * n, 0) if num else None
    if packet in (aten.reciprocal, aten.reciprocal_) and out is not None:
        return Cost(4 * n, n)
    if packet in (aten.abs, aten.abs_) and args and _cx(args[0]):
        return Cost(3 * n, n)
    if packet in (aten.exp, aten.exp_):
        return Cost(4 * n, 0)
    if packet in (aten.pow, aten.pow_) and _small_power(call.arg(1, "exponent")):
        return Cost(4 * real.mults, 2 * real.mults)  # z^k: k - 1 complex multiplies
    return None


def _small_power(exponent: Any) -> bool:
    """True for the exponents the real ``pow`` prices as repeated multiplication (1 to 4, integers)."""
    return isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and \
        float(exponent).is_integer() and 1 <= exponent <= 4


def part_bits(t: torch.Tensor, bits: int) -> int:
    """Width of one part (real or imaginary) of ``t``'s values: half its dtype's width for a complex tensor
    at that width (complex64 holds two 32-bit floats); ``bits`` itself otherwise (a narrower setting)."""
    if t.is_complex() and bits >= dtype_bits(t.dtype):
        return dtype_bits(t.dtype) // 2
    return bits
