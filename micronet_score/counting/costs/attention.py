"""Scaled dot-product attention, counted as one unit whatever kernel the backend picks.

For queries (..., L, E), keys (..., S, E) and values (..., S, Ev): scores Q K^T (L*S*E mults, L*S*(E-1) adds),
scaling (L*S mults), an additive float mask (L*S adds; boolean and causal masks select, they do not add),
softmax over S (2S mults and S-1 adds per row), then P V (L*Ev*S mults, L*Ev*(S-1) adds). Dropout is off at
inference.
"""

from __future__ import annotations

import torch

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def attention_cost(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: object) -> Cost:
    lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2]).numel()
    length, embed = query.shape[-2], query.shape[-1]
    source, embed_v = key.shape[-2], value.shape[-1]
    scores = lead * length * source
    mults = scores * embed + scores + 2 * scores + lead * length * embed_v * source
    adds = scores * (embed - 1) + lead * length * (source - 1) + lead * length * embed_v * (source - 1)
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
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
    return attention_cost(q, k, v, mask)


__all__ = ["attention_cost", "aten"]
