"""The SDPA path: ``scaled_dot_product_attention`` is priced as one unit, whatever kernel the backend runs
(flash, memory-efficient, math), from a torch-function mode that sees the call before it is decomposed."""

from __future__ import annotations

import contextlib
from types import BuiltinFunctionType
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from micronet_score.counting.costs.attention import attention_cost
from micronet_score.counting.events import Event
from micronet_score.counting.origin import VALUE_EXPORTS
from micronet_score.counting.shortcuts import LOWERINGS, direct, lower

_ATTENTION = {F.scaled_dot_product_attention, torch._C._nn.scaled_dot_product_attention}


class AttentionPath:
    """Mixin of the tracer: one event per attention call, the kernel's own operators suppressed."""

    def attention(self, func: Any, args: tuple, kwargs: dict) -> Any:
        q = args[0] if args else kwargs["query"]
        k = args[1] if len(args) > 1 else kwargs["key"]
        v = args[2] if len(args) > 2 else kwargs["value"]
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        tensors = [t for t in (q, k, v, mask) if isinstance(t, torch.Tensor)]
        self._suppress += 1
        try:
            if self.shapes_only:
                out = func(*self._meta(args), **self._meta(kwargs))
            else:
                out = func(*args, **kwargs)
        finally:
            self._suppress -= 1
        tainted = [t for t in tensors if t in self.dep]
        if not tainted:
            return out
        module = self.module
        for t in tensors:
            if t not in self.dep:
                info = self._static_info(t)
                if info is not None and info.sources:
                    role = ("vector", "the mask of scaled_dot_product_attention") if t is mask else \
                        ("weight", "a multiplied operand of scaled_dot_product_attention")
                    self._register_read(t, info, *role)
        is_causal = bool(args[5] if len(args) > 5 else kwargs.get("is_causal", False))
        cost = attention_cost(q, k, v, mask, is_causal)
        bits = max(self.tensor_bits(t, module) for t in tensors)
        self.events.append(Event(module, "aten.scaled_dot_product_attention", cost.mults, cost.adds, bits))
        self.consumers.append(0)
        for t in tainted:
            p = self.dep[t][0]
            if p >= 0:
                self.consumers[p] += 1
        self._mark(out, len(self.events) - 1, None)
        return out


class AttentionMode(TorchFunctionMode):
    """Sends scaled_dot_product_attention to the tracer as one unit, whatever kernel the backend runs."""

    def __init__(self, tracer: AttentionPath) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kind = _KINDS.get(func)
        if kind is None:
            kind = _kind(func)
        if kind:
            if kind == _ATTENTION_CALL:
                return self.tracer.attention(func, args, kwargs or {})
            if kind == _LOWERED:  # a plain library call: its aten operator straight to the tracer
                lowered = lower(func, args, kwargs)
                if lowered is not None:
                    return direct(self.tracer, lowered)
            elif kind == _EXPORT:  # input values leaving torch (counting.origin)
                self.tracer.note_export(func, args)
            elif kind == _RECURRENT_CALL:
                for t in _recurrent_state(args):
                    self.tracer.mark_recurrent_state(t)
        return func(*args, **(kwargs or {}))


_ATTENTION_CALL, _EXPORT, _RECURRENT_CALL, _LOWERED = 1, 2, 3, 4
_KINDS: dict[Any, int] = {}  # torch function -> what the mode does with it (0: nothing), decided once


def _kind(func: Any) -> int:
    if func in _ATTENTION:
        kind = _ATTENTION_CALL
    elif func in VALUE_EXPORTS:
        kind = _EXPORT
    elif func in LOWERINGS:
        kind = _LOWERED
    elif getattr(func, "__name__", None) in _RECURRENT and isinstance(func, BuiltinFunctionType):
        kind = _RECURRENT_CALL
    else:
        kind = 0
    with contextlib.suppress(TypeError):  # an unhashable callable: decided on every call
        _KINDS[func] = kind
    return kind


# torch._VF's recurrent functions: their hidden state (hx) is what the previous step computed from the inputs,
# even when nn.GRU/nn.RNN/nn.LSTM create it as zeros inside forward (spec section 3: the recurrent state is an
# input, the steady state rather than an all-zero first step).
_RECURRENT = frozenset({"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
                        "rnn_relu_cell"})


def _recurrent_state(args: tuple) -> list[torch.Tensor]:
    """The hidden-state tensors of a recurrent call: argument 1 (``input`` overloads and cells), or argument 2
    after the integer ``batch_sizes`` of the packed-sequence (``data``) overloads."""
    if len(args) < 2:
        return []
    hx = args[1]
    if isinstance(hx, torch.Tensor) and not hx.is_floating_point() and len(args) > 2:
        hx = args[2]
    items = hx if isinstance(hx, (tuple, list)) else (hx,)
    return [t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point()]
