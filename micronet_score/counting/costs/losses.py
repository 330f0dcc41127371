"""Losses: their formula's operations per element (as torch's reference decompositions write them; constants
combined with constants are load-time work, comparisons and transcendentals 1 mult each), plus the reduction over
the n elements: ``sum`` n - 1 adds, ``mean`` n - 1 adds + 1 mult, ``none`` nothing (spec section 3).

Per element (d = x - y):
- ``mse_loss``: d² : 1 add + 1 mult;
- ``smooth_l1_loss(beta)``: |d| < beta ? d²·(0.5/beta) : |d| - 0.5·beta, both branches computed (``where``):
  d (1 add), |d| (1 mult), the comparison (1 mult), d·d and the constant factor (2 mults), the subtraction (1 add):
  4 mults + 2 adds;
- ``huber_loss(delta)``: |d| < delta ? 0.5·|d|·|d| : delta·(|d| - 0.5·delta): d (1 add), |d|, the comparison,
  0.5·|d|·|d| (2 mults), delta·(|d| - c) (1 add, 1 mult): 5 mults + 2 adds;
- ``binary_cross_entropy``: (t - 1)·max(log1p(-x), -100) - t·max(log x, -100): -x, log1p, max, the product;
  log, max, the product (7 mults); t - 1 and the difference (2 adds); a ``weight`` 1 mult more;
- ``binary_cross_entropy_with_logits``: (1 - t)·x - logsigmoid(x): 1 - t (1 add), the product (1 mult),
  logsigmoid (3 mults + 1 add, as ``log_sigmoid`` is priced), the difference (1 add): 4 mults + 3 adds; with
  ``pos_weight``, the log weight (pos_weight - 1)·t + 1 (1 mult + 1 add) multiplies the logsigmoid (1 mult):
  6 mults + 4 adds; a ``weight`` 1 mult more;
- ``nll_loss`` (per target; ``nll_loss2d`` per target pixel): -x[t], the gather free and the negation 1 mult
  (with class weights the product by w[t], the negation folded into the constant weight: still 1 mult). A mean
  with class weights divides by their sum over the targets: n - 1 adds more. ``ignore_index`` is not read:
  every target is priced as used (the count does not depend on the targets' values).
- Cross entropy runs in torch as ``log_softmax`` then ``nll_loss``; each is priced by its own entry
  (``log_softmax`` over C classes: C + 1 transcendentals, 2C - 1 adds per row), nothing is registered for the
  composite, so nothing is counted twice. ``l1_loss`` and ``kl_div`` reach the tracer as their elementwise
  operations and reductions (sub, abs, mean; mul, xlogy, sub, mean), priced as themselves.
"""

from __future__ import annotations

import math

import torch

from micronet_score.counting.registry import Cost, OpCall, aten, register

_NONE, _MEAN, _SUM = 0, 1, 2


def _reduction(reduction: int, n: int) -> Cost:
    """The reduction's operations over ``n`` elements."""
    if reduction == _NONE or n == 0:
        return Cost(0, 0)
    return Cost(1 if reduction == _MEAN else 0, n - 1)


def _elements(*tensors) -> int:
    shapes = [t.shape for t in tensors if isinstance(t, torch.Tensor)]
    return math.prod(torch.broadcast_shapes(*shapes)) if shapes else 1


def _elementwise(mults: int, adds: int, reduction_at: int, weight_at: int | None = None):
    """The cost of a loss of (mults, adds) per element, its ``reduction`` argument at ``reduction_at`` and an
    optional elementwise ``weight`` argument at ``weight_at`` (1 mult more per element)."""

    def cost(call: OpCall) -> Cost:
        n = _elements(call.args[0], call.args[1])
        per_m = mults + (weight_at is not None and call.arg(weight_at, "weight") is not None)
        reduce = _reduction(int(call.arg(reduction_at, "reduction", _MEAN)), n)
        return Cost(n * per_m + reduce.mults, n * adds + reduce.adds)

    return cost


register(aten.mse_loss)(_elementwise(1, 1, 2))
register(aten.smooth_l1_loss)(_elementwise(4, 2, 2))
register(aten.huber_loss)(_elementwise(5, 2, 2))
register(aten.binary_cross_entropy)(_elementwise(7, 2, 3, weight_at=2))


@register(aten.binary_cross_entropy_with_logits)
def bce_with_logits(call: OpCall) -> Cost:
    # (self, target, weight=None, pos_weight=None, reduction=mean)
    n = _elements(call.args[0], call.args[1])
    mults, adds = 4, 3
    if call.arg(3, "pos_weight") is not None:
        mults, adds = mults + 2, adds + 1
    if call.arg(2, "weight") is not None:
        mults += 1
    reduce = _reduction(int(call.arg(4, "reduction", _MEAN)), n)
    return Cost(n * mults + reduce.mults, n * adds + reduce.adds)


@register(aten.nll_loss_forward, aten.nll_loss2d_forward)
def nll_loss(call: OpCall) -> Cost:
    # (self, target, weight, reduction, ignore_index)
    n = call.args[1].numel()
    weighted = call.arg(2, "weight") is not None
    reduction = int(call.arg(3, "reduction", _MEAN))
    reduce = _reduction(reduction, n)
    total_weight = max(n - 1, 0) if weighted and reduction == _MEAN else 0
    return Cost(n + reduce.mults, reduce.adds + total_weight)
