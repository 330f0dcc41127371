"""Finding the state dict in what a checkpoint holds, and refusing entries that are not plain tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from micronet_score.errors import CheckpointError
from micronet_score.io.files import clean

__all__ = ["STATE_DICT_KEYS", "check_keys", "unwrap"]

STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict")


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap(name: str, obj: Any) -> tuple[Mapping[Any, torch.Tensor], str | None]:
    """The state dict in ``obj`` (itself, or under ``state_dict``/``model``/``model_state_dict``) and the key
    it was found under (None when ``obj`` is the state dict); its keys are checked to be names."""
    if _is_tensor_dict(obj):
        check_keys(name, obj)
        return obj, None
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if _is_tensor_dict(inner) and inner:
                check_keys(name, inner)
                return inner, key
        found = ", ".join(f"{clean(repr(k))}: {type(v).__name__}" for k, v in list(obj.items())[:8])
        more = ", ..." if len(obj) > 8 else ""
        raise CheckpointError(
            f"{name} holds a dict that is not a state dict ({{{found}{more}}}): a checkpoint is a mapping of "
            "names to tensors, or a dict with one under 'state_dict', 'model' or 'model_state_dict'. Save the "
            "tensors alone (torch.save(model.state_dict(), path))")
    raise CheckpointError(
        f"{name} holds a {type(obj).__name__}, not a state dict: a checkpoint is a mapping of names to tensors, "
        "or a dict with one under 'state_dict', 'model' or 'model_state_dict'. Save the tensors alone "
        "(torch.save(model.state_dict(), path))")


def check_keys(name: str, state: Mapping[Any, torch.Tensor]) -> None:
    """Every key a str, every tensor holding values (not on the meta device)."""
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{name}: key {clean(repr(key))} is a {type(key).__name__}, not a name; a state "
                                  "dict maps parameter names (str) to tensors. Re-save it with "
                                  "torch.save(model.state_dict(), path)")
        if value.is_meta:
            raise CheckpointError(f"{name}: tensor {clean(repr(key))} is a meta tensor (a shape without values), "
                                  "so there is nothing to count or load; save the model's real weights")
