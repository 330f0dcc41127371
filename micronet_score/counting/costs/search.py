"""Look-ups, histograms and selections (spec section 3, "operators whose cost depends on an algorithm").

- ``searchsorted`` / ``bucketize`` into B boundaries: a binary search, ⌈log₂(B + 1)⌉ comparisons per looked-up
  value (B + 1 possible places), booked as mults.
- ``histc(bins, min, max)`` over n values: per value 1 mult + 1 add (the bin index, (x - min)·bins/(max - min)
  with the factor a constant) and 1 comparison (in range?), and 1 add per counted value (its bin's count).
  When ``min == max`` torch takes the range from the data: a min and a max over the n values, n - 1
  comparisons each, as ``amin``/``amax`` are priced. The counted values (those in range) are read from the
  output (the sum of its counts); on the meta device, which holds no values, the cost raises
  :class:`~micronet_score.errors.ValuesNeededError` (the default count then reruns on real values; under
  ``shapes_only=True`` that is the error), as ``nn.EmbeddingBag`` does for its bag sizes.
- ``nonzero`` (and ``argwhere``, ``torch.where(cond)``, which torch runs as ``nonzero``), ``nonzero_static``,
  ``masked_select``: 1 comparison per input value (per value of the broadcast of input and mask for
  ``masked_select``); the selection itself moves values and is free. ``nonzero`` and ``masked_select`` return
  as many values as pass, a shape the meta device cannot know: they need real inputs
  (:mod:`micronet_score.counting.costs.values`).
"""

from __future__ import annotations

import math

import torch

from micronet_score.counting.costs.values import needs_values
from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register
from micronet_score.errors import ValuesNeededError


def _search(boundaries: int) -> int:
    """⌈log₂(B + 1)⌉: the comparisons of a binary search among B boundaries."""
    return math.ceil(math.log2(boundaries + 1)) if boundaries > 0 else 0


def _numel(value) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else 1


@register(aten.searchsorted)
def searchsorted(call: OpCall) -> Cost:
    # searchsorted.Tensor/.Scalar(sorted_sequence, self, ...): each row of the sequence holds B boundaries
    sequence = call.args[0]
    boundaries = sequence.shape[-1] if sequence.dim() else 1
    return Cost(_numel(call.out) * _search(boundaries), 0)


@register(aten.bucketize)
def bucketize(call: OpCall) -> Cost:
    # bucketize.Tensor/.Scalar(self, boundaries, ...): boundaries is 1-D
    boundaries = call.arg(1, "boundaries")
    return Cost(_numel(call.out) * _search(boundaries.numel()), 0)


@register(aten.histc)
def histc(call: OpCall) -> Cost:
    x, out = call.args[0], call.out
    n = x.numel()
    low, high = call.arg(2, "min", 0), call.arg(3, "max", 0)
    if out.is_meta:
        raise ValuesNeededError(f"torch.histc's cost counts the values that fall in its range ({n} values into "
                                f"{out.numel()} bins here), which the meta device does not hold: count with "
                                "real inputs (shapes_only=False)")
    counted = int(out.detach().sum().item())
    scan = 2 * max(n - 1, 0) if low == high else 0  # the range from the data: a min and a max
    return Cost(2 * n + scan, n + counted)


@register(aten.nonzero, *maybe("nonzero_static"))
def nonzero(call: OpCall) -> Cost:
    return Cost(call.args[0].numel(), 0)


@register(aten.masked_select)
def masked_select(call: OpCall) -> Cost:
    x, mask = call.args[0], call.arg(1, "mask")
    return Cost(math.prod(torch.broadcast_shapes(x.shape, mask.shape)), 0)


needs_values(aten.nonzero.default, what="the indices of the non-zero values")
needs_values(aten.masked_select.default, what="the values the mask selects")
