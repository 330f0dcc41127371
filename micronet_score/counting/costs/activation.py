"""Activations and transcendental functions, per element of the output.

Conventions (spec section 3): comparisons count as multiplications (they get the multiply's precision) and a
transcendental function (exp, log, tanh, erf, sqrt, rsqrt, ...) counts as one operation, booked as a mult.
"""

from __future__ import annotations

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def _per_element(mults: int, adds: int = 0):
    def cost(call: OpCall) -> Cost:
        n = call.out.numel() if not isinstance(call.out, tuple) else call.out[0].numel()
        return Cost(mults * n, adds * n)

    return cost


# ReLU: one comparison with zero.
register(aten.relu, aten.relu_, aten.threshold, aten.threshold_)(_per_element(1))
# ReLU6, hardtanh, clamp with both bounds: two comparisons.
register(aten.hardtanh, aten.hardtanh_)(_per_element(2))
register(aten.leaky_relu, aten.leaky_relu_, aten._prelu_kernel, aten.prelu)(_per_element(2))
register(aten.sigmoid, aten.sigmoid_)(_per_element(2, 1))  # exp, reciprocal; 1 + exp
register(aten.silu, aten.silu_)(_per_element(3, 1))  # sigmoid (2 mults, 1 add) times x
register(aten.hardswish, aten.hardswish_)(_per_element(4, 1))  # x * clamp(x + 3, 0, 6) / 6
register(aten.hardsigmoid, aten.hardsigmoid_)(_per_element(3, 1))  # clamp(x + 3, 0, 6) / 6
# ELU: comparison, exp, alpha * (exp - 1): 3 mults + 1 add. SELU scales the result (1.0507...) and CELU its
# input (x / alpha): 1 more mult each where the factor is not 1, whether torch runs them as themselves or as
# ELU with a scale or an input scale.
register(aten.selu, aten.selu_)(_per_element(4, 1))


@register(aten.elu, aten.elu_)
def elu(call: OpCall) -> Cost:
    scales = sum(call.arg(i, name, 1) != 1 for i, name in ((2, "scale"), (3, "input_scale")))
    n = call.out.numel()
    return Cost((3 + scales) * n, n)


@register(aten.celu, aten.celu_)
def celu(call: OpCall) -> Cost:
    n = call.out.numel()
    return Cost((3 + (call.arg(1, "alpha", 1) != 1)) * n, n)
# softplus: log(1 + exp(x)) with the threshold comparison: 3 mults + 1 add. Mish: x * tanh(softplus(x)).
register(aten.softplus)(_per_element(3, 1))
register(aten.mish, aten.mish_)(_per_element(5, 1))
# LogSigmoid: log(sigmoid(x)), the mirror of softplus (-softplus(-x)): 3 mults + 1 add.
register(aten.log_sigmoid_forward, *maybe("log_sigmoid"))(_per_element(3, 1))
# GLU: a * sigmoid(b), per output element (half the input along dim): sigmoid (2 mults, 1 add) and 1 mult.
register(aten.glu)(_per_element(3, 1))
# Softshrink: two comparisons, then x - lambda or x + lambda; Hardshrink: two comparisons (|x| > lambda).
register(aten.softshrink)(_per_element(2, 1))
register(aten.hardshrink)(_per_element(2))
# RReLU: LeakyReLU with a slope drawn in training and the mean slope in eval: a comparison and a mult.
register(aten.rrelu_with_noise, *maybe("rrelu_with_noise_"))(_per_element(2))
# Formulas of a few elementwise functions, by their operations (transcendentals 1 each, comparisons as mults):
register(aten.hypot, *maybe("hypot_"))(_per_element(3, 1))  # sqrt(x*x + y*y)
register(aten.logaddexp, aten.logaddexp2)(_per_element(3, 1))  # log(exp(x) + exp(y)), base e or 2
register(aten.xlogy, *maybe("xlogy_"))(_per_element(2))  # x * log(y)
register(aten.sinc, *maybe("sinc_"))(_per_element(3))  # sin(pi * x) / (pi * x)
register(aten.heaviside, *maybe("heaviside_"))(_per_element(2))  # x < 0, x == 0
register(aten.nan_to_num, *maybe("nan_to_num_"))(_per_element(3))  # isnan, isposinf, isneginf
register(aten.copysign, *maybe("copysign_"), aten.deg2rad, *maybe("deg2rad_"), aten.rad2deg,
         *maybe("rad2deg_"))(_per_element(1))
# One transcendental or one arithmetic operation per element.
register(
    aten.tanh, aten.tanh_, aten.exp, aten.exp_, aten.exp2, aten.expm1, aten.log, aten.log_, aten.log2,
    aten.log10, aten.log1p, aten.erf, aten.erf_, aten.erfc, aten.sqrt, aten.sqrt_, aten.rsqrt, aten.rsqrt_,
    aten.sin, aten.cos, aten.tan, aten.asin, aten.acos, aten.atan, aten.sinh, aten.cosh, aten.asinh, aten.acosh,
    aten.atanh, aten.reciprocal,
    aten.reciprocal_, aten.abs, aten.abs_, aten.neg, aten.neg_, aten.sign, aten.sgn, aten.floor, aten.ceil,
    aten.round, aten.trunc, aten.frac, aten.bitwise_not, aten.square,
    *maybe("logit"), *maybe("erfinv"), *maybe("atan2"),
)(_per_element(1))
register(aten.clamp, aten.clamp_, aten.clip, aten.clip_)(
    lambda call: Cost(call.out.numel() * sum(b is not None for b in (call.arg(1, "min"), call.arg(2, "max"))))
)
register(aten.clamp_min, aten.clamp_min_, aten.clamp_max, aten.clamp_max_)(_per_element(1))


@register(aten.gelu, aten.gelu_)
def gelu(call: OpCall) -> Cost:
    n = call.out.numel()
    if call.kwargs.get("approximate", call.args[1] if len(call.args) > 1 else "none") == "tanh":
        # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))): tanh + 6 mults, 2 adds.
        return Cost(7 * n, 2 * n)
    # 0.5 * x * (1 + erf(x / sqrt(2))): erf + 3 mults, 1 add.
    return Cost(4 * n, n)


@register(aten.pow, aten.pow_)
def pow_(call: OpCall) -> Cost:
    n = call.out.numel()
    exponent = call.arg(1, "exponent")
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and float(exponent).is_integer() \
            and 1 <= exponent <= 4:
        return Cost((int(exponent) - 1) * n)  # x^k by repeated multiplication
    return Cost(n)  # a general power is one transcendental


def _rows(call: OpCall) -> tuple[int, int]:
    x, dim = call.args[0], call.args[1]
    n = x.shape[dim] if x.dim() else 1
    return x.numel() // max(n, 1), n


@register(aten._softmax, aten.softmax, *maybe("_safe_softmax"))
def softmax(call: OpCall) -> Cost:
    rows, n = _rows(call)
    # n exponentials, n - 1 additions for the sum, n multiplications by its reciprocal.
    return Cost(rows * 2 * n, rows * (n - 1))


@register(aten._log_softmax, aten.log_softmax)
def log_softmax(call: OpCall) -> Cost:
    rows, n = _rows(call)
    # n exponentials and one log (n + 1 transcendentals), n - 1 additions for the sum, n subtractions.
    return Cost(rows * (n + 1), rows * (2 * n - 1))
