"""Loading a submitted checkpoint into a model, safely and with errors that say what does not match."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from micronet_score.errors import CheckpointError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored at ``path`` (a PyTorch file or safetensors), never executing pickled code.

    Accepts a bare state dict or a dict holding one under ``"state_dict"``, ``"model"`` or ``"model_state_dict"``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - optional extra
            raise CheckpointError("reading .safetensors needs the safetensors package: "
                                  "pip install 'micronet-score[safetensors]'") from exc
        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from exc
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses anyway
            warnings.simplefilter("ignore", UserWarning)
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
        raise CheckpointError(
            f"{path}: refused to unpickle it with weights_only=True ({first}). The file holds Python objects "
            "beyond tensors; re-save just the state dict (torch.save(model.state_dict(), path)) or convert it to "
            "safetensors. micronet-score never runs code from a checkpoint"
        ) from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {type(exc).__name__}: {exc}") from exc
    if isinstance(data, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            inner = data.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                data = inner
                break
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a state dict (names -> tensors), found {type(data).__name__}")
    return dict(data)


def load_weights(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load the checkpoint at ``path`` into ``model`` (in place), strictly: every key and shape must match.

    A checkpoint saved from a model pruned with ``torch.nn.utils.prune`` (``weight_orig``/``weight_mask``) is
    folded into plain weights when the model has plain ones.
    """
    state = read_state_dict(path)
    expected = model.state_dict()
    state = _fold_prune_masks(state, expected)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) such as {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) such as {unexpected[:3]}")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatch(es) such as {k}: checkpoint {tuple(state[k].shape)} vs "
                         f"model {tuple(expected[k].shape)}")
        raise CheckpointError(f"{path} does not match the model: {'; '.join(parts)}. Build the model with the "
                              "same architecture and arguments the checkpoint was trained with")
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    return model


def _fold_prune_masks(state: dict[str, torch.Tensor], expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = dict(state)
    for key in list(state):
        if key.endswith("_orig"):
            base = key[: -len("_orig")]
            mask = state.get(base + "_mask")
            if mask is not None and base in expected and key not in expected:
                out[base] = state[key] * mask
                del out[key]
                del out[base + "_mask"]
    return out
