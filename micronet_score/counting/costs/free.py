"""Operators that cost nothing: they move, view, pad, select or create values without arithmetic.

Operators with an arithmetic variant are not listed here: ``scatter``/``index_put``/``put_`` (their reducing or
accumulating variants, see ``scatter.py``) and ``quantized::cat_relu`` (its ReLU). Every listed operator is
value-preserving (tests/counting/test_free_table.py). ``copy_`` stays free although, written into another dtype,
it converts like ``_to_copy`` below: a costed operator loses the bit width of a fake-quantized activation it
copies (the tracer gives a costed operator's output its dtype's width), and slice assignment (``buf[:, :k] = x``)
is a ``copy_``; a conversion through ``copy_`` is left uncounted (a known limit, listed in the audit test).

Also: dtype conversions between formats that float32 represents exactly (bool, int8, uint8, int16, float16,
bfloat16, float32) are free; any other conversion (to or from float64, int32, int64, float8) rounds or
widens beyond float32 and costs one operation per element. Fake quantization marks a tensor's bit width and is
free (the rules count the arithmetic, not the format change), as in the official counter.
"""

from __future__ import annotations

import torch

from micronet_score.bits import exact_conversion
from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register, register_free

_FREE_NAMES = ["view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "permute", "transpose", "transpose_", "t", "t_", "expand", "expand_as", "squeeze", "squeeze_", "unsqueeze", "unsqueeze_", "flatten", "unflatten", "cat", "concat", "concatenate", "stack", "hstack", "vstack", "slice", "select", "narrow", "split", "split_with_sizes", "unbind", "chunk", "tensor_split", "index_select", "index", "gather", "take", "clone", "contiguous", "detach", "detach_", "alias", "lift_fresh", "lift_fresh_copy", "constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d", "replication_pad3d", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "new_zeros", "new_ones", "new_empty", "new_full", "new_empty_strided", "fill", "fill_", "zero_", "empty", "empty_strided", "zeros", "ones", "full", "arange", "linspace", "scalar_tensor", "masked_fill", "masked_fill_", "where", "repeat", "roll", "flip", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "embedding", "_local_scalar_dense", "unfold", "diagonal", "tril", "triu", "tril_", "triu_", "select_scatter", "slice_scatter", "_unsafe_index", "tile", "movedim", "unfold_copy", "view_as_real", "view_as_complex", "_to_dense", "dropout", "feature_dropout", "alpha_dropout", "_assert_async", "_assert_tensor_metadata", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "is_nonzero", "set_", "resize_", "bernoulli_", "normal_", "uniform_", "random_", "exponential_", "geometric_", "cauchy_", "log_normal_", "randperm", "randint", "rand", "randn", "_empty_affine_quantized", "_empty_per_channel_affine_quantized", "fake_quantize_per_tensor_affine", "fake_quantize_per_tensor_affine_cachemask", "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams", "fake_quantize_per_channel_affine", "fake_quantize_per_channel_affine_cachemask", "_fake_quantize_learnable_per_tensor_affine", "_fake_quantize_learnable_per_channel_affine", "_fused_moving_avg_obs_fq_helper", "quantize_per_tensor", "quantize_per_channel", "dequantize", "int_repr", "q_scale", "q_zero_point", "q_per_channel_scales", "q_per_channel_zero_points", "q_per_channel_axis", "_make_per_tensor_quantized_tensor", "_make_per_channel_quantized_tensor", "_pin_memory", "item", "copy_", "copy", "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk", "index_fill", "index_fill_", "index_copy", "index_copy_", "masked_scatter", "masked_scatter_", "im2col", "as_strided_", "swapaxes", "swapaxes_", "swapdims", "swapdims_"]

register_free(*(p for name in _FREE_NAMES for p in maybe(name)))
# quantized tensors move, concatenate and requantize without arithmetic
register_free(*(getattr(torch.ops.quantized, n) for n in ("cat", "quantize", "dequantize")
                if hasattr(torch.ops.quantized, n)))


@register(*(getattr(torch.ops.quantized, n) for n in ("cat_relu",) if hasattr(torch.ops.quantized, n)))
def cat_relu(call: OpCall) -> Cost:
    """Concatenation is free; the ReLU it applies costs 1 mult (a comparison) per output element."""
    return Cost(call.out.numel(), 0)


@register(aten._to_copy, *maybe("to"), *maybe("_to_dtype"))
def to_copy(call: OpCall) -> Cost:
    src = call.args[0]
    dtype = call.kwargs.get("dtype")
    out = call.out
    dst = getattr(out, "dtype", None) if dtype is None else dtype
    if dst is None or not hasattr(src, "dtype") or exact_conversion(src.dtype, dst):
        return Cost(0, 0)
    return Cost(out.numel(), 0)
