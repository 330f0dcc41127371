"""``nn.EmbeddingBag``: rows of a stored table looked up (free, as an embedding lookup) and reduced per bag.

Per bag of s looked-up rows of D values: ``sum`` (s - 1)·D adds; ``mean`` the same adds and D mults (the
division); ``max`` (s - 1)·D comparisons, booked as mults (spec section 3); ``per_sample_weights`` (sum only)
s·D mults more. An empty bag costs nothing. Rows equal to ``padding_idx`` are not in their bag.

The bag sizes are read from the values of the offsets and the indices. On the meta device, where there are
none, the cost raises :class:`~micronet_score.errors.ValuesNeededError`: the default count then runs the
forward again on real values (under ``shapes_only=True`` the error reaches the caller).
"""

from __future__ import annotations

import torch

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register
from micronet_score.errors import ValuesNeededError

_SUM, _MEAN, _MAX = 0, 1, 2


def _bag_sizes(indices: torch.Tensor, offsets: torch.Tensor, include_last: bool, padding_idx: int | None,
               bags: int) -> tuple[int, int]:
    """(rows looked up, non-empty bags)."""
    if indices.is_meta or offsets.is_meta:
        raise ValuesNeededError(f"nn.EmbeddingBag's cost depends on its bag sizes, which are values of its offsets "
                                f"and indices ({bags} bags of {indices.numel()} indices here) that the meta "
                                "device does not hold: count with real inputs (shapes_only=False)")
    bounds = offsets.reshape(-1).to("cpu", torch.int64)
    if not include_last:  # the last bag ends with the indices
        bounds = torch.cat([bounds, torch.tensor([indices.numel()])])
    starts, ends = bounds[:-1], bounds[1:]
    ids = indices.reshape(-1).to("cpu")
    keep = (ids != padding_idx).to(torch.int64) if padding_idx is not None and padding_idx >= 0 \
        else torch.ones(ids.numel(), dtype=torch.int64)
    counts = torch.cat([torch.zeros(1, dtype=torch.int64), keep.cumsum(0)])
    sizes = counts[ends] - counts[starts]
    return int(sizes.sum()), int((sizes > 0).sum())


@register(aten._embedding_bag_forward_only, aten._embedding_bag, *maybe("embedding_bag"), mult_operands=(0, 6))
def embedding_bag(call: OpCall) -> Cost:
    weight, indices, offsets = call.args[0], call.args[1], call.args[2]
    mode = int(call.arg(4, "mode", _SUM))
    per_sample = call.arg(6, "per_sample_weights")
    include_last = bool(call.arg(7, "include_last_offset", False))
    padding_idx = call.arg(8, "padding_idx", None)
    out = call.out[0] if isinstance(call.out, (tuple, list)) else call.out
    bags, dim = out.shape[0], weight.shape[-1]
    rows, nonempty = _bag_sizes(indices, offsets, include_last, padding_idx, bags)
    combined = (rows - nonempty) * dim  # (s - 1)·D per non-empty bag
    if mode == _MAX:
        return Cost(combined, 0)
    mults = nonempty * dim if mode == _MEAN else 0
    if per_sample is not None:
        mults += rows * dim
    return Cost(mults, combined)
