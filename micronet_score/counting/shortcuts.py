"""Torch-function shortcuts: library calls whose C++ decomposition costs more than the one operator it ends in.

``F.batch_norm`` in inference mode on CPU (or meta) tensors decomposes, in C++, through ``torch.batch_norm`` and
``_batch_norm_impl_index`` into one ``aten.native_batch_norm`` call plus an empty "reserve" tensor that no one
reads. The torch-function mode of a count (:class:`~micronet_score.counting.sdpa.AttentionMode`) sees the
``F.batch_norm`` call first and, when the call is the plain inference form, dispatches that operator itself
with the same arguments: the tracer sees the same operator, so the count is the same, without the extra
function-mode call, the decomposition and the empty tensor's trip through the dispatch mode. Anything unusual
(training statistics, missing running statistics, tensor subclasses, CUDA and other backends whose
decomposition picks another kernel, channel counts that do not match, an empty input, an autocast region)
takes the normal path, which also raises torch's own errors.
"""

from __future__ import annotations

from typing import Any

import torch

ENABLED = True  # tests turn it off to compare against the normal path
_aten_batch_norm = torch.ops.aten.native_batch_norm.default
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_KEYS = frozenset({"weight", "bias", "training", "momentum", "eps"})
_DEVICES = frozenset({"cpu", "meta"})


def autocast_on() -> bool:
    """True inside a ``torch.autocast`` region of any device type."""
    check = getattr(torch._C, "_is_any_autocast_enabled", None)
    if check is not None:
        return bool(check())
    return any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda"))  # pragma: no cover - older torch


def inference_batch_norm(args: tuple, kwargs: dict | None) -> Any:
    """The output of ``F.batch_norm(*args, **kwargs)`` in inference mode, dispatched as the one aten operator it
    decomposes into; None when the call is not the plain form (the caller then runs ``F.batch_norm``).

    ``F.batch_norm`` hands a torch-function mode ``(input, running_mean, running_var)`` and the keywords
    ``weight``, ``bias``, ``training``, ``momentum``, ``eps``."""
    if not ENABLED or len(args) != 3 or not kwargs or kwargs.keys() != _KEYS or kwargs["training"] is not False \
            or autocast_on():  # autocast's casts are decided per operator: leave them to the normal path
        return None
    x, mean, var = args
    weight, bias, eps = kwargs["weight"], kwargs["bias"], kwargs["eps"]
    if type(x) not in _PLAIN or x.dim() < 2 or x.numel() == 0 or x.device.type not in _DEVICES or \
            not isinstance(eps, float) or eps < 0.0:
        return None
    channels = x.shape[1]
    for t in (mean, var, weight, bias):
        if t is None:
            if mean is None or var is None:
                return None
            continue
        if type(t) not in _PLAIN or t.dim() != 1 or t.shape[0] != channels or t.device.type not in _DEVICES:
            return None
    return _aten_batch_norm(x, weight, bias, mean, var, False, kwargs["momentum"], eps)[0]
