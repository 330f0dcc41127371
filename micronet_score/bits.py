"""Bit widths: what an n-bit value or operation weighs (n/32), and where a tensor's width comes from."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from micronet_score.errors import InputError

FULL_PRECISION = 32
FREEBIE_BITS = 16

_DTYPE_BITS: dict[torch.dtype, int] = {
    torch.bool: 1,
    torch.uint8: 8,
    torch.int8: 8,
    torch.quint8: 8,
    torch.qint8: 8,
    torch.quint4x2: 4,
    torch.quint2x4: 2,
    torch.int16: 16,
    torch.float16: 16,
    torch.bfloat16: 16,
    torch.int32: 32,
    torch.qint32: 32,
    torch.float32: 32,
    torch.int64: 64,
    torch.float64: 64,
    torch.complex64: 64,
    torch.complex128: 128,
}
for _name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"):
    if hasattr(torch, _name):
        _DTYPE_BITS[getattr(torch, _name)] = 8

# Formats whose every value float32 represents exactly: converting between two of them loses nothing.
_EXACT_IN_FP32 = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.float16, torch.bfloat16, torch.float32}


def dtype_bits(dtype: torch.dtype) -> int:
    """Bits of one element of ``dtype`` (float16 and bfloat16: 16, int8: 8, float32: 32)."""
    bits = _DTYPE_BITS.get(dtype)
    if bits is None:
        try:
            bits = torch.empty((), dtype=dtype).element_size() * 8
        except Exception:  # pragma: no cover - exotic dtypes
            bits = FULL_PRECISION
        _DTYPE_BITS[dtype] = bits
    return bits


def exact_conversion(src: torch.dtype, dst: torch.dtype) -> bool:
    """True when converting ``src`` to ``dst`` is free: both formats are represented exactly by float32."""
    return src == dst or (src in _EXACT_IN_FP32 and dst in _EXACT_IN_FP32)


def range_bits(quant_min: int, quant_max: int) -> int:
    """Bits needed for the integer grid ``quant_min..quant_max``: ceil(log2(quant_max - quant_min + 1))."""
    levels = int(quant_max) - int(quant_min) + 1
    if levels < 2:
        raise InputError(f"a quantization range needs at least 2 levels, got quant_min={quant_min}, "
                         f"quant_max={quant_max}")
    return max(1, math.ceil(math.log2(levels)))


@dataclass(frozen=True)
class Precision:
    """Bit widths a user sets for a module: ``weight`` for the parameters it stores, ``activation`` for the
    input-dependent tensors its operations read. ``None`` leaves the width read from the model.

    >>> Precision(weight=4, activation=8)
    Precision(weight=4, activation=8)
    """

    weight: int | None = None
    activation: int | None = None

    def __post_init__(self) -> None:
        for field, value in (("weight", self.weight), ("activation", self.activation)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not
                                      1 <= value <= 64):
                raise InputError(f"Precision.{field} must be an integer number of bits in 1..64, got {value!r}")

    @classmethod
    def of(cls, value: int | Precision) -> Precision:
        """Coerce an int (both widths) or a Precision."""
        if isinstance(value, Precision):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(weight=value, activation=value)
        raise InputError(f"a bit width must be an int or a Precision, got {value!r}")


def weigh(count: float, bits: int) -> float:
    """32-bit-equivalent weight of ``count`` values or operations of ``bits`` bits: count * bits / 32."""
    return count * bits / FULL_PRECISION
