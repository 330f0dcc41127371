"""Scatter and indexed writes: free when they only copy, one operation per source element when they combine.

A write that puts source values at indexed places (``index_put`` without ``accumulate``, ``scatter`` without
``reduce``, ``put_`` without ``accumulate``) moves values and is free. A write that combines each source element
with the value already there costs one operation per source element (per index, for a scalar source):

- sum/add (``index_put(accumulate=True)``, ``put_(accumulate=True)``, ``scatter(reduce="add")``,
  ``scatter_add``, ``scatter_reduce("sum")``, ``index_add``): 1 add each; ``index_add``'s ``alpha`` other than 1
  adds 1 mult per source element;
- product (``reduce="multiply"``/``"prod"``): 1 mult each;
- max/min (``"amax"``/``"amin"``): 1 comparison each, booked as a mult (spec section 3);
- mean: the sums (1 add each), then 1 mult per element of the output (dividing by the count).

An ``index_put`` source is broadcast to the indexed shape: its cost counts the indexed positions (boolean masks
are counted by their true entries; on the meta device, where they are unknown, by the source's own elements).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register

_ADD, _MULT = {"add", "sum"}, {"multiply", "prod", "amax", "amin"}


def _reduce_cost(reduce: object, sources: int, outputs: int) -> Cost:
    if reduce is None:
        return Cost(0, 0)
    if reduce in _ADD:
        return Cost(0, sources)
    if reduce in _MULT:
        return Cost(sources, 0)
    if reduce == "mean":
        return Cost(outputs, sources)
    raise ValueError(f"unknown scatter reduction {reduce!r} (expected sum/add, prod/multiply, mean, amax, amin)")


def _out(call: OpCall) -> int:
    out = call.out[0] if isinstance(call.out, (tuple, list)) else call.out
    return out.numel() if isinstance(out, torch.Tensor) else call.args[0].numel()


@register(aten.scatter, aten.scatter_, kind="write")
def scatter(call: OpCall) -> Cost:
    """``scatter(self, dim, index, src|value, *, reduce=None)``: free without ``reduce``."""
    reduce = call.arg(4, "reduce")
    return _reduce_cost(reduce, call.args[2].numel(), _out(call))


@register(aten.scatter_add, aten.scatter_add_)
def scatter_add(call: OpCall) -> Cost:
    return Cost(0, call.args[2].numel())


@register(aten.scatter_reduce, aten.scatter_reduce_)
def scatter_reduce(call: OpCall) -> Cost:
    """``scatter_reduce(self, dim, index, src, reduce, *, include_self=True)``."""
    return _reduce_cost(call.arg(4, "reduce"), call.args[2].numel(), _out(call))


@register(aten.index_add, aten.index_add_)
def index_add(call: OpCall) -> Cost:
    """``index_add(self, dim, index, source, *, alpha=1)``."""
    n = call.args[3].numel() if isinstance(call.args[3], torch.Tensor) else call.args[2].numel()
    alpha = call.arg(4, "alpha", 1)
    return Cost(n if alpha != 1 else 0, n)


@register(*maybe("index_reduce"), *maybe("index_reduce_"))
def index_reduce(call: OpCall) -> Cost:
    """``index_reduce(self, dim, index, source, reduce, *, include_self=True)``."""
    return _reduce_cost(call.arg(4, "reduce"), call.args[3].numel(), _out(call))


@register(aten.put, aten.put_, kind="write")
def put(call: OpCall) -> Cost:
    """``put(self, index, source, accumulate=False)``: flat indices, one add per index when accumulating."""
    if not call.arg(3, "accumulate", False):
        return Cost(0, 0)
    return Cost(0, call.args[1].numel())


@register(aten.index_put, aten.index_put_, aten._index_put_impl_, kind="write")
def index_put(call: OpCall) -> Cost:
    """``index_put(self, indices, values, accumulate=False)``: one add per indexed position when accumulating."""
    if not call.arg(3, "accumulate", False):
        return Cost(0, 0)
    positions = _indexed_elements(call.args[0], call.args[1])
    values = call.args[2]
    return Cost(0, max(positions, values.numel()) if positions is not None else values.numel())


def _indexed_elements(target: torch.Tensor, indices: Sequence[torch.Tensor | None]) -> int | None:
    """Elements of ``target[indices]`` (advanced indexing), or None when a boolean mask's values are unknown."""
    shapes: list[tuple[int, ...]] = []
    dim, kept = 0, 1
    for index in indices:
        if index is None:  # a whole dimension
            kept *= target.shape[dim] if dim < target.dim() else 1
            dim += 1
        elif index.dtype in (torch.bool, torch.uint8):
            if index.is_meta:
                return None
            shapes.append((int(index.count_nonzero()),))
            dim += index.dim()
        else:
            shapes.append(tuple(index.shape))
            dim += 1
    picked = torch.broadcast_shapes(*shapes).numel() if shapes else 1
    return picked * kept * torch.Size(target.shape[dim:]).numel()


def _fold_hits(size: int, kernel: int, dilation: int, padding: int, stride: int) -> tuple[int, int]:
    """Along one dimension of ``F.fold``: (block values that land inside the output, output positions reached)."""
    blocks = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    hits = [0] * size
    for block in range(max(blocks, 0)):
        for k in range(kernel):
            position = block * stride + k * dilation - padding
            if 0 <= position < size:
                hits[position] += 1
    return sum(hits), sum(1 for h in hits if h)


@register(aten.col2im)
def col2im(call: OpCall) -> Cost:
    """``F.fold``: sliding blocks summed into the output. An output element that receives c block values costs
    c - 1 adds (a sum of c values; spec section 3); values that fall on the padding are dropped."""
    x = call.args[0]
    sizes, kernel, dilation, padding, stride = (list(call.args[i]) for i in range(1, 6))
    channels = x.shape[-2] // (kernel[0] * kernel[1])
    batch = x.shape[0] if x.dim() == 3 else 1
    (values_h, reached_h), (values_w, reached_w) = (
        _fold_hits(sizes[d], kernel[d], dilation[d], padding[d], stride[d]) for d in (0, 1))
    return Cost(0, batch * channels * (values_h * values_w - reached_h * reached_w))
