"""Turning what the user passes as ``inputs`` into forward arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from micronet_score.counting.model_index import ModelIndex
from micronet_score.errors import InputError

InputsLike = Any  # Tensor | tuple[Tensor, ...] | dict[str, Tensor] | Sequence[int] | torch.Size


def _is_shape(value: Any) -> bool:
    return isinstance(value, (torch.Size, tuple, list)) and len(value) > 0 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


def model_device_dtype(model: torch.nn.Module | ModelIndex) -> tuple[torch.device, torch.dtype]:
    """Device of the first parameter or buffer, and the first floating dtype (float32 if none)."""
    index = model if isinstance(model, ModelIndex) else ModelIndex.of(model)
    return index.device_dtype()


def prepare_inputs(model: torch.nn.Module | ModelIndex, inputs: InputsLike,
                   placeholders: list[torch.Tensor] | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments for ``model``.

    A shape (tuple/list of ints, torch.Size) becomes a random tensor of the model's floating dtype on its
    device (values drawn from a fixed seed without touching the global RNG); a tensor is one positional input;
    a tuple/list of tensors (or nested shapes) is the positional inputs; a dict is keyword inputs. Real inputs
    given to a model on the meta device are moved to meta. With ``placeholders`` (a list), a shape becomes a
    meta tensor appended to it instead, drawn later only if needed (``counting.shape_inputs.materialize``).
    """
    device, dtype = model_device_dtype(model)
    copies: dict[int, torch.Tensor] = {}  # inference tensors copied, once each (a model may test `q is k`)

    def convert(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            if device.type == "meta" and value.device.type != "meta":
                return value.to("meta")
            if value.is_inference():  # made under torch.inference_mode: a plain copy (counting/engine.py)
                if id(value) not in copies:
                    copies[id(value)] = value.clone()
                return copies[id(value)]
            return value
        if _is_shape(value):
            if any(v <= 0 for v in value):
                raise InputError(f"{where}: a shape needs positive sizes, got {tuple(value)}")
            if device.type == "meta":
                return torch.empty(tuple(value), dtype=dtype, device=device)
            if placeholders is not None:  # counted on shapes; real values drawn only if the forward needs them
                placeholders.append(torch.empty(tuple(value), dtype=dtype, device="meta"))
                return placeholders[-1]
            generator = torch.Generator(device="cpu").manual_seed(0)
            return torch.randn(tuple(value), generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
        if isinstance(value, (int, float, bool, str)) or value is None:
            return value
        if isinstance(value, (tuple, list)):
            return type(value)(convert(v, f"{where}[{i}]") for i, v in enumerate(value))
        if isinstance(value, Mapping):
            return {k: convert(v, f"{where}[{k!r}]") for k, v in value.items()}
        return value

    if isinstance(inputs, Mapping):
        return (), {str(k): convert(v, f"inputs[{k!r}]") for k, v in inputs.items()}
    if isinstance(inputs, torch.Tensor) or _is_shape(inputs):
        return (convert(inputs, "inputs"),), {}
    if isinstance(inputs, Sequence) and not isinstance(inputs, str):
        if len(inputs) == 0:
            raise InputError("inputs is empty: pass a tensor, a tuple of tensors, a dict or a shape such as "
                             "(1, 3, 32, 32)")
        return tuple(convert(v, f"inputs[{i}]") for i, v in enumerate(inputs)), {}
    raise InputError(
        f"inputs must be a tensor, a tuple of tensors, a dict of keyword tensors or a shape such as (1, 3, 32, 32); "
        f"got {type(inputs).__name__}"
    )


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor inside nested tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in flat_tensors(v)]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in flat_tensors(v)]
    return []


def check_devices(model: torch.nn.Module | ModelIndex, tensors: list[torch.Tensor]) -> None:
    """Refuse inputs on another device than the model's parameters, naming both and the fix."""
    index = model if isinstance(model, ModelIndex) else ModelIndex.of(model)
    if not index.tensors:
        return  # a model without tensors runs wherever its inputs are
    device, _ = index.device_dtype()
    for t in tensors:
        if t.device.type != device.type:
            raise InputError(
                f"an input is on {t.device} but the model's parameters are on {device}: move the inputs with "
                f".to('{device}') (or the model with model.to('{t.device}'))"
            )
