"""Orders and selections (spec section 3, "operators whose cost depends on an algorithm").

Over a row of n values, keeping the k smallest (or largest) costs (n - 1)·⌈log₂(k + 1)⌉ comparisons, booked as
mults (comparisons count as mults):

- ``sort`` (and ``argsort``, ``msort``, which torch runs as ``sort``), ``mode`` (a sort, then a scan of equal
  neighbours): the full order, k = n;
- ``topk(k)``: that k (``topk(1)`` is a max: n - 1);
- ``kthvalue(k)``: that k, as the spec writes it (a k-th smallest past the middle is not re-counted from the
  other end);
- ``median`` / ``nanmedian`` (torch's lower median, rank ⌈n/2⌉): k = ⌈n/2⌉; without ``dim`` all values are one
  row;
- ``unique`` (``torch.unique``: ``_unique2``/``_unique``) sorts all values: one row of n = numel, k = n;
  ``unique(dim=d)`` sorts the n = size(d) slices of m values each, a comparison of two slices comparing up to
  m values: m·(n - 1)·⌈log₂(n + 1)⌉; ``unique_consecutive`` needs no order (its input is taken as ordered): each
  value (slice) is compared with its neighbour, k = 1: (n - 1) comparisons (m·(n - 1) with ``dim``).

``unique`` and ``unique_consecutive`` return as many values as there are distinct ones: the meta device cannot
run them, so they need real inputs (:mod:`micronet_score.counting.costs.values`).
"""

from __future__ import annotations

import math

import torch

from micronet_score.counting.costs.values import needs_values
from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def comparisons(n: int, k: int) -> int:
    """(n - 1)·⌈log₂(k + 1)⌉: the comparisons that keep the k best of n values (0 for n <= 1 or k <= 0)."""
    if n <= 1 or k <= 0:
        return 0
    return (n - 1) * math.ceil(math.log2(k + 1))


def _rows(x: torch.Tensor, dim: int | None) -> tuple[int, int]:
    """(rows, values per row) of ``x`` ordered along ``dim`` (None: all values form one row)."""
    if dim is None or x.dim() == 0:
        return 1, x.numel()
    n = x.shape[dim]
    return (x.numel() // n if n else 0), n


def _dim(call: OpCall, index: int, default: int | None = -1) -> int | None:
    dim = call.kwargs.get("dim", call.args[index] if len(call.args) > index else default)
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else default


@register(aten.sort)
def sort(call: OpCall) -> Cost:
    # sort.default(self, dim=-1, descending=False); sort.stable(self, *, stable, dim=-1, descending=False)
    rows, n = _rows(call.args[0], _dim(call, 1))
    return Cost(rows * comparisons(n, n), 0)


@register(aten.mode)
def mode(call: OpCall) -> Cost:
    rows, n = _rows(call.args[0], _dim(call, 1))
    return Cost(rows * comparisons(n, n), 0)


@register(aten.topk)
def topk(call: OpCall) -> Cost:
    k = int(call.arg(1, "k"))
    rows, n = _rows(call.args[0], _dim(call, 2))
    return Cost(rows * comparisons(n, min(k, n)), 0)


@register(aten.kthvalue)
def kthvalue(call: OpCall) -> Cost:
    k = int(call.arg(1, "k"))
    rows, n = _rows(call.args[0], _dim(call, 2))
    return Cost(rows * comparisons(n, k), 0)


@register(aten.median, aten.nanmedian)
def median(call: OpCall) -> Cost:
    rows, n = _rows(call.args[0], _dim(call, 1, None))  # median.default: all values; median.dim: a dim
    return Cost(rows * comparisons(n, (n + 1) // 2), 0)


@register(aten._unique2, aten._unique)
def unique(call: OpCall) -> Cost:
    n = call.args[0].numel()
    return Cost(comparisons(n, n), 0)


def _slices(x: torch.Tensor, dim: int | None) -> tuple[int, int]:
    """(slices along ``dim``, values per slice); without a dim every value is its own slice."""
    if dim is None or x.dim() == 0:
        return x.numel(), 1
    n = x.shape[dim]
    return n, (x.numel() // n if n else 0)


@register(aten.unique_dim)
def unique_dim(call: OpCall) -> Cost:
    n, m = _slices(call.args[0], _dim(call, 1, None))  # unique_dim(self, dim, sorted, return_inverse, ...)
    return Cost(m * comparisons(n, n), 0)


@register(aten.unique_consecutive)
def unique_consecutive(call: OpCall) -> Cost:
    n, m = _slices(call.args[0], _dim(call, 3, None))  # unique_consecutive(self, inverse, counts, dim=None)
    return Cost(m * comparisons(n, 1), 0)


@register(aten.unique_dim_consecutive)
def unique_dim_consecutive(call: OpCall) -> Cost:
    n, m = _slices(call.args[0], _dim(call, 1, None))  # unique_dim_consecutive(self, dim, inverse, counts)
    return Cost(m * comparisons(n, 1), 0)


needs_values(*(getattr(p, "default", None) for name in ("_unique2", "_unique", "unique_dim", "unique_consecutive",
                                                          "unique_dim_consecutive") for p in maybe(name)),
             what="one value per distinct value")
