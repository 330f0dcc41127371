"""``sparsity``: fraction of exact zeros per weight, reading effective (masked) weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


def effective_tensors(module: nn.Module) -> dict[str, Tensor]:
    """The module's own tensors as its forward sees them: ``x_orig * x_mask`` for tensors pruned
    with ``torch.nn.utils.prune``, the parametrized value for parametrized ones, else the parameter."""
    out: dict[str, Tensor] = {}
    for name, param in module.named_parameters(recurse=False):
        if name.endswith("_orig") and hasattr(module, name[: -len("_orig")] + "_mask"):
            base = name[: -len("_orig")]
            out[base] = param * getattr(module, base + "_mask")
        else:
            out[name] = param
    if parametrize.is_parametrized(module):
        for name in module.parametrizations:
            out[name] = getattr(module, name)
    return out


def sparsity(model: nn.Module, *, include_bias: bool = False) -> dict[str, float]:
    """Fraction of exactly-zero entries of every ``weight`` (and ``bias`` if ``include_bias``),
    keyed by qualified name such as ``"features.0.weight"``. Pruned tensors are read as
    ``weight_orig * weight_mask``, so the result is right before and after :func:`finalize_`.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import sparsity
    >>> layer = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    >>> sparsity(nn.Sequential(layer))
    {'0.weight': 0.75}
    """
    wanted = ("weight", "bias") if include_bias else ("weight",)
    result: dict[str, float] = {}
    with torch.no_grad():
        for prefix, module in model.named_modules():
            for name, tensor in effective_tensors(module).items():
                if name in wanted and tensor.numel():
                    key = f"{prefix}.{name}" if prefix else name
                    result[key] = float((tensor == 0).sum().item()) / tensor.numel()
    return result
