"""Scaled dot-product attention, counted as one unit whatever kernel the backend picks.

The unit is priced as the reference (math) implementation computes it, so that a fused kernel (CPU flash, CUDA
efficient/flash) and the decomposition PyTorch runs elsewhere (the meta device, nested calls) give the same
count. For queries (..., L, E), keys (..., S, E) and values (..., S, Ev), per batch and head: q and k scaled by
sqrt(scale) each (L*E + S*E mults), scores Q K^T (L*S*E mults, L*S*(E-1) adds), a mask (causal, boolean or
float: L*S adds), softmax over S (2S mults and S-1 adds per row), then P V (L*Ev*S mults, L*Ev*(S-1) adds). A
causal mask's zeros are not exploited: the full L x S square is counted. Dropout is off at inference.
Grouped-query attention (fewer key/value heads than query heads, ``enable_gqa``) is priced per query head,
as if K and V had been repeated; the repeat itself is free.
"""

from __future__ import annotations

import torch

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def _heads_as_query(kv: torch.Tensor, query: torch.Tensor) -> torch.Size:
    """The leading (batch, heads) shape of a key or value, its heads repeated to the query's when fewer key/value
    heads serve groups of query heads (grouped-query attention: the repeat is free, spec section 3)."""
    lead = kv.shape[:-2]
    if kv.dim() >= 3 and query.dim() >= 3:
        heads, query_heads = kv.shape[-3], query.shape[-3]
        if 0 < heads < query_heads and query_heads % heads == 0:
            return torch.Size((*kv.shape[:-3], query_heads))
    return lead


def attention_cost(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: object,
                   is_causal: bool = False) -> Cost:
    lead = torch.broadcast_shapes(query.shape[:-2], _heads_as_query(key, query),
                                  _heads_as_query(value, query)).numel()
    length, embed = query.shape[-2], query.shape[-1]
    source, embed_v = key.shape[-2], value.shape[-1]
    scores = lead * length * source
    scaling = lead * (length + source) * embed
    mults = scaling + scores * embed + 2 * scores + lead * length * embed_v * source
    adds = scores * (embed - 1) + lead * length * (source - 1) + lead * length * embed_v * (source - 1)
    if isinstance(mask, torch.Tensor) or is_causal:
        adds += scores
    return Cost(mults, adds)


@register(
    *maybe("_scaled_dot_product_flash_attention_for_cpu"),
    *maybe("_scaled_dot_product_flash_attention"),
    *maybe("_scaled_dot_product_efficient_attention"),
    *maybe("_scaled_dot_product_cudnn_attention"),
    *maybe("_scaled_dot_product_fused_attention_overrideable"),
)
def fused_attention(call: OpCall) -> Cost:
    q, k, v = call.args[0], call.args[1], call.args[2]
    mask = call.kwargs.get("attn_mask", call.kwargs.get("attn_bias"))
    for arg in call.args[3:]:
        if isinstance(arg, torch.Tensor):
            mask = arg
    causal = bool(call.kwargs.get("is_causal", False))
    for position in (4, 5):  # flash/efficient/cpu variants carry is_causal at one of these positions
        if position < len(call.args) and isinstance(call.args[position], bool):
            causal = causal or call.args[position]
    return attention_cost(q, k, v, mask, causal)


__all__ = ["attention_cost", "aten"]
