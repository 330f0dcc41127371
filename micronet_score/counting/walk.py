"""The tensors inside an operator's arguments and outputs (flat lists and tuples, as aten passes them)."""

from __future__ import annotations

from typing import Any

import torch


def tensors_in(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """Every tensor among ``args`` and ``kwargs`` values, looking one level into lists and tuples."""
    found: list[torch.Tensor] = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


def out_tensors(out: Any) -> list[torch.Tensor]:
    """The tensors an operator returned (one tensor, or a list or tuple of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []
