"""Fast Fourier transforms (spec section 3): ``torch.fft.fft``/``ifft``/``fftn``/``fft2``/``rfft``/``irfft``/
``rfftn``/``irfftn``/``hfft``/``ihfft`` all dispatch to the three aten kernels priced here.

An n-point transform costs 2·n·⌈log₂n⌉ mults and 3·n·⌈log₂n⌉ adds per transformed row, for each transformed
dimension; the real-input (``rfft``, one-sided ``_fft_r2c``) and real-output (``irfft``, ``_fft_c2r``, where n is
the *output* length) dimension costs half of that (adds rounded up per row). The other dimensions of an
``rfftn``/``irfftn`` are complex transforms of the half spectrum, at full price. ``torch.fft.fft`` of a real
input (``_fft_r2c`` with a two-sided output) is an ``fft`` and costs the full price. A normalization that
scales (``ifft``'s default 1/n, ``"ortho"``, ``"forward"``) costs 1 mult per real output value: 2 per complex
output element (a real scale times a complex value), 1 per real one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from micronet_score.counting.registry import Cost, OpCall, aten, register


def _log2(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def _full(numel: int, n: int) -> tuple[int, int]:
    """Full price of transforming every length-``n`` row of a ``numel``-element tensor."""
    rows = numel // max(n, 1)
    return rows * 2 * n * _log2(n), rows * 3 * n * _log2(n)


def _half(numel: int, n: int) -> tuple[int, int]:
    """Half price (real input or output) of every length-``n`` row of a ``numel``-element tensor."""
    rows = numel // max(n, 1)
    return rows * n * _log2(n), rows * math.ceil(3 * n * _log2(n) / 2)


def _dims(x: torch.Tensor, dims: Sequence[int]) -> list[int]:
    return [d % x.dim() for d in dims] if x.dim() else []


def _scaling(call: OpCall, normalization: int) -> int:
    """1 mult per real output value when the transform scales (normalization mode 1: 1/sqrt(n), 2: 1/n)."""
    out = call.out
    if not normalization:
        return 0
    return out.numel() * (2 if out.is_complex() else 1)


@register(aten._fft_c2c)
def fft_c2c(call: OpCall) -> Cost:
    x, dims, normalization = call.args[0], call.arg(1, "dim"), call.arg(2, "normalization")
    mults = adds = 0
    for d in _dims(x, dims):
        m, a = _full(x.numel(), x.shape[d])
        mults, adds = mults + m, adds + a
    return Cost(mults + _scaling(call, normalization), adds)


@register(aten._fft_r2c)
def fft_r2c(call: OpCall) -> Cost:
    x, dims, normalization = call.args[0], call.arg(1, "dim"), call.arg(2, "normalization")
    onesided, out = call.arg(3, "onesided"), call.out
    dims = _dims(x, dims)
    if not dims:
        return Cost(_scaling(call, normalization), 0)
    last = dims[-1]
    mults, adds = (_half if onesided else _full)(x.numel(), x.shape[last])
    for d in dims[:-1]:  # complex transforms of the (half) spectrum
        m, a = _full(out.numel(), out.shape[d])
        mults, adds = mults + m, adds + a
    return Cost(mults + _scaling(call, normalization), adds)


@register(aten._fft_c2r)
def fft_c2r(call: OpCall) -> Cost:
    x, dims, normalization, out = call.args[0], call.arg(1, "dim"), call.arg(2, "normalization"), call.out
    dims = _dims(x, dims)
    if not dims:
        return Cost(_scaling(call, normalization), 0)
    last = dims[-1]
    mults, adds = _half(out.numel(), out.shape[last])  # n is the output length
    for d in dims[:-1]:  # complex transforms of the half spectrum, before the last one
        m, a = _full(x.numel(), x.shape[d])
        mults, adds = mults + m, adds + a
    return Cost(mults + _scaling(call, normalization), adds)
