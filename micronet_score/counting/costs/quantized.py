"""Operators of torch.ao quantized models (eager or FX converted, dynamic): their weights arrive packed.

The packed object is unpacked once (``call.unpack``); the weight is stored at its quantized width (qint8: 8
bits) with its true non-zeros, and the operation counts as the floating-point one would (a quantized conv is
a conv). Requantizing outputs is a format change and free, as fake quantization is. Dynamically quantized
linear layers quantize their input inside the kernel: the multiplication's width is the weight's (8 bits for
qint8, 16 for float16 packed weights).
"""

from __future__ import annotations

import math

import torch

from micronet_score.bits import dtype_bits
from micronet_score.counting.registry import Cost, OpCall, register

quantized = torch.ops.quantized


def _ops(*names: str) -> list:
    return [getattr(quantized, n) for n in names if hasattr(quantized, n)]


def _packed(call: OpCall) -> tuple[torch.Tensor, torch.Tensor | None]:
    for arg in call.args:
        if isinstance(arg, torch.ScriptObject):
            return call.unpack(arg)
    raise ValueError("a quantized operator without packed parameters")


def _out(call: OpCall) -> torch.Tensor:
    return call.out[0] if isinstance(call.out, (tuple, list)) else call.out


def _conv(relu: bool):
    def cost(call: OpCall) -> Cost:
        weight, bias = _packed(call)
        out = _out(call)
        per_channel = out.shape[0] * math.prod(out.shape[2:])
        stats = call.channel_stats(weight, 0)
        adds = per_channel * stats.nonzeros_minus_one + (per_channel * stats.active if bias is not None else 0)
        return Cost(per_channel * stats.nonzeros + (out.numel() if relu else 0), adds)

    return cost


# only the input (position 0) and the packed weight are multiplied; the bias is added
register(*_ops("conv1d", "conv2d", "conv3d"), mult_operands=(0,))(_conv(False))
register(*_ops("conv1d_relu", "conv2d_relu", "conv3d_relu"), mult_operands=(0,))(_conv(True))


def _linear(relu: bool, dynamic: bool, packed_bits: int | None = None):
    """``dynamic``: the kernel quantizes its input itself, so the multiply runs at the weight's width
    (``packed_bits`` when the packed format says it, e.g. 16 for float16 packed weights)."""

    def cost(call: OpCall) -> Cost:
        weight, bias = _packed(call)
        x = call.args[0]
        rows = x.numel() // max(x.shape[-1], 1)
        stats = call.channel_stats(weight, 0)
        adds = rows * stats.nonzeros_minus_one + (rows * stats.active if bias is not None else 0)
        mults = rows * stats.nonzeros + (_out(call).numel() if relu else 0)
        bits = (packed_bits or dtype_bits(weight.dtype)) if dynamic else None
        return Cost(mults, adds, bits)

    return cost


register(*_ops("linear"), mult_operands=(0,))(_linear(False, False))
register(*_ops("linear_relu"), mult_operands=(0,))(_linear(True, False))
register(*_ops("linear_dynamic"))(_linear(False, True))
register(*_ops("linear_relu_dynamic"))(_linear(True, True))
register(*_ops("linear_dynamic_fp16"))(_linear(False, True, 16))
register(*_ops("linear_relu_dynamic_fp16"))(_linear(True, True, 16))


def _elementwise(mults: int, adds: int):
    def cost(call: OpCall) -> Cost:
        n = _out(call).numel()
        return Cost(mults * n, adds * n)

    return cost


register(*_ops("add", "add_scalar", "add_out", "add_scalar_out"))(_elementwise(0, 1))
register(*_ops("add_relu", "add_scalar_relu"))(_elementwise(1, 1))
register(*_ops("mul", "mul_scalar"))(_elementwise(1, 0))
register(*_ops("mul_relu", "mul_scalar_relu"))(_elementwise(2, 0))
register(*_ops("batch_norm1d", "batch_norm2d", "batch_norm3d"))(_elementwise(1, 1))
register(*_ops("batch_norm2d_relu", "batch_norm3d_relu"))(_elementwise(2, 1))
register(*_ops("hardswish"))(_elementwise(4, 1))
register(*_ops("sigmoid"))(_elementwise(2, 1))
register(*_ops("leaky_relu"))(_elementwise(2, 0))
register(*_ops("relu6"))(_elementwise(2, 0))
