"""Pooling. Average k x k: k^2 - 1 adds + 1 mult per output; max k x k: k^2 - 1 comparisons (booked as mults)
per output; adaptive pooling uses each output's own window; global average pooling arrives as a mean."""

from __future__ import annotations

import math
from collections.abc import Sequence

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register


def _kernel(kernel: int | Sequence[int], dims: int) -> int:
    if isinstance(kernel, int):
        return kernel**dims
    kernel = list(kernel)
    if len(kernel) == 1:
        kernel = kernel * dims
    return math.prod(kernel)


def _out(call: OpCall):
    return call.out[0] if isinstance(call.out, (tuple, list)) else call.out


def _avg(dims: int):
    def cost(call: OpCall) -> Cost:
        k = _kernel(call.args[1], dims)
        n = _out(call).numel()
        return Cost(n, n * (k - 1))

    return cost


def _max(dims: int):
    def cost(call: OpCall) -> Cost:
        k = _kernel(call.args[1], dims)
        return Cost(_out(call).numel() * (k - 1), 0)

    return cost


register(aten.avg_pool1d)(_avg(1))
register(aten.avg_pool2d)(_avg(2))
register(aten.avg_pool3d)(_avg(3))
register(aten.max_pool1d, aten.max_pool1d_with_indices)(_max(1))
register(aten.max_pool2d, aten.max_pool2d_with_indices, *maybe("_mkldnn_max_pool2d"))(_max(2))
register(aten.max_pool3d, aten.max_pool3d_with_indices)(_max(3))


def _window_sizes(size_in: int, size_out: int) -> list[int]:
    """Window lengths of adaptive pooling along one dimension (PyTorch's start/end rule)."""
    sizes = []
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        sizes.append(end - start)
    return sizes


def _adaptive_windows(call: OpCall, dims: int) -> tuple[int, int]:
    """(number of outputs, sum of window sizes over all outputs)."""
    x, out = call.args[0], _out(call)
    lead = out.numel() // max(math.prod(out.shape[-dims:]), 1)
    total_outputs, total_window = lead, lead
    for size_in, size_out in zip(x.shape[-dims:], out.shape[-dims:]):
        windows = _window_sizes(size_in, size_out)
        total_outputs *= size_out
        total_window *= sum(windows)
    return total_outputs, total_window


def _adaptive_avg(dims: int):
    def cost(call: OpCall) -> Cost:
        outputs, window = _adaptive_windows(call, dims)
        return Cost(outputs, window - outputs)

    return cost


def _adaptive_max(dims: int):
    def cost(call: OpCall) -> Cost:
        outputs, window = _adaptive_windows(call, dims)
        return Cost(window - outputs, 0)

    return cost


register(aten.adaptive_avg_pool1d)(_adaptive_avg(1))
register(aten._adaptive_avg_pool2d, aten.adaptive_avg_pool2d)(_adaptive_avg(2))
register(aten._adaptive_avg_pool3d, aten.adaptive_avg_pool3d)(_adaptive_avg(3))
register(aten.adaptive_max_pool1d)(_adaptive_max(1))
register(aten.adaptive_max_pool2d)(_adaptive_max(2))
register(aten.adaptive_max_pool3d)(_adaptive_max(3))


def _interpolate(mults: int, adds: int):
    def cost(call: OpCall) -> Cost:
        n = call.out.numel()
        return Cost(mults * n, adds * n)

    return cost


# Interpolation weights depend only on shapes (precomputed); each output mixes 2^d (linear) or 4^d (cubic)
# neighbours: that many mults and one fewer adds.
register(aten.upsample_linear1d)(_interpolate(2, 1))
register(aten.upsample_bilinear2d, *maybe("_upsample_bilinear2d_aa"))(_interpolate(4, 3))
register(aten.upsample_trilinear3d)(_interpolate(8, 7))
register(aten.upsample_bicubic2d, *maybe("_upsample_bicubic2d_aa"))(_interpolate(16, 15))
