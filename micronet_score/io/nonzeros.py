"""Non-zeros of one piece of a checkpoint tensor, through the counter the engine uses
(:func:`micronet_score.counting.storage.count_nonzero`), extended to the dtypes only files hold.

A value counts as non-zero when it compares unequal to zero: ``-0.0`` is a zero, NaN is not; a quantized value
is zero when it equals its zero point. float8 has no comparison kernel, so it is read through its bit patterns
with the sign bit masked off (the same zeros); unsigned 16/32/64-bit integers are read as their signed twins
(the same zeros).
"""

from __future__ import annotations

import torch

from micronet_score.counting.storage import count_nonzero, integer_values, is_finite

__all__ = ["count_values"]

# Values per step: torch's parallel grain size (at::internal::GRAIN_SIZE), so every step runs on the calling
# thread. Larger steps let intra-op threads split the work, which helps on an idle machine but collapses the
# speed tenfold (OpenMP threads spinning on a barrier) as soon as another process holds a core.
_BLOCK = 32768

_SIGNED = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}
_BITS_AS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_MAGNITUDE = {1: 0x7F, 2: 0x7FFF, 4: 0x7FFFFFFF, 8: 0x7FFFFFFFFFFFFFFF}


def count_values(t: torch.Tensor) -> int:
    """Values of ``t`` that are not zero (see the module docstring).

    >>> count_values(torch.tensor([0.0, -0.0, float("nan"), 2.0]))
    2
    """
    if t.numel() == 0:
        return 0
    if t.is_quantized:
        return int(count_nonzero(integer_values(t)))
    if t.is_floating_point() and t.element_size() == 1:
        if "e8m0" in str(t.dtype):  # exponent-only format: no zero value at all
            return t.numel()
        bits = t.view(_BITS_AS[1]) & _MAGNITUDE[1]
        return int(count_nonzero(bits))
    if t.dtype in _SIGNED:
        t = t.view(_SIGNED[t.dtype])
    if t.is_complex():
        return int(torch.count_nonzero(t))
    flat = t.reshape(-1)  # a view for the contiguous pieces a scan hands over
    return sum(_block(flat[i:i + _BLOCK]) for i in range(0, flat.numel(), _BLOCK))


def _block(t: torch.Tensor) -> int:
    return int(count_nonzero(t, finite=is_finite(t)))
