"""Reductions, per output element over the n values it reduces: sum n-1 adds; mean n-1 adds + 1 mult;
max/min/argmax n-1 comparisons; prod n-1 mults; variance (mean, n subtractions, n squares, n-1 adds, 1 mult),
std one rsqrt more; vector norms; logsumexp; cumulative sums."""

from __future__ import annotations

from micronet_score.counting.registry import Cost, OpCall, aten, register


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _shape(call: OpCall) -> tuple[int, int]:
    """(outputs, values reduced per output)."""
    outputs = max(_first(call.out).numel(), 1)
    return outputs, call.args[0].numel() // outputs


@register(aten.sum, aten.nansum)
def sum_(call: OpCall) -> Cost:
    outputs, n = _shape(call)
    return Cost(0, outputs * (n - 1))


@register(aten.mean, aten.nanmean)
def mean(call: OpCall) -> Cost:
    outputs, n = _shape(call)
    return Cost(outputs, outputs * (n - 1))


@register(aten.amax, aten.amin, aten.max, aten.min, aten.argmax, aten.argmin, aten.aminmax)
def extreme(call: OpCall) -> Cost:
    outputs, n = _shape(call)
    if len(call.args) >= 2 and hasattr(call.args[1], "shape"):  # torch.max(a, b) is elementwise
        return Cost(_first(call.out).numel(), 0)
    return Cost(outputs * (n - 1), 0)


@register(aten.all, aten.any)
def all_any(call: OpCall) -> Cost:
    """A logical and/or folded over the n values: n - 1 adds per output (spec section 3)."""
    outputs, n = _shape(call)
    return Cost(0, outputs * max(n - 1, 0))


@register(aten.prod)
def prod(call: OpCall) -> Cost:
    outputs, n = _shape(call)
    return Cost(outputs * (n - 1), 0)


def _variance(outputs: int, n: int) -> Cost:
    return Cost(outputs * (1 + n + 1), outputs * ((n - 1) + n + (n - 1)))


@register(aten.var, aten.var_mean)
def var(call: OpCall) -> Cost:
    return _variance(*_shape(call))


@register(aten.std, aten.std_mean)
def std(call: OpCall) -> Cost:
    outputs, n = _shape(call)
    mults, adds, _ = _variance(outputs, n)
    return Cost(mults + outputs, adds)


@register(aten.linalg_vector_norm, aten.norm)
def vector_norm(call: OpCall) -> Cost:
    outputs, n = _shape(call)
    # |x| or x^2 per value, n - 1 adds, one root.
    return Cost(outputs * (n + 1), outputs * (n - 1))


@register(aten.logsumexp)
def logsumexp(call: OpCall) -> Cost:
    outputs, n = _shape(call)
    return Cost(outputs * (n + 1), outputs * (n - 1))


@register(aten.cumsum, aten.cumsum_)
def cumsum(call: OpCall) -> Cost:
    x, dim = call.args[0], call.args[1]
    n = x.shape[dim] if x.dim() else 1
    return Cost(0, (x.numel() // max(n, 1)) * max(n - 1, 0))
