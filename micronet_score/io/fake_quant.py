"""Recognising a checkpoint saved from a model fake-quantized by :func:`micronet_score.compress.quantize_`.

``quantize_(model, FakeQuant(...))`` adds ``<layer>.input_fake_quant.min_val``/``max_val`` buffers (the
calibrated activation range) to each quantized layer's state. When a checkpoint carries these keys and the
model does not, the same quantizers are applied to the fresh model before loading, so it counts as the model
that was saved. Bit widths are read from ``quant_min``/``quant_max`` entries when the file has them
(``bits = ceil(log2(quant_max - quant_min + 1))``); ``quantize_`` does not save them today, so otherwise
:class:`~micronet_score.compress.FakeQuant`'s defaults (8-bit weights and activations) are assumed and the
loader says so. ``fake_quant=FakeQuant(...)`` states the config instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FakeQuantPlan", "apply_fake_quant", "plan_fake_quant"]

_SUFFIX = ".input_fake_quant."
_BUFFERS = ("min_val", "max_val")


@dataclass(frozen=True)
class FakeQuantPlan:
    """Layers to fake-quantize before loading, the config, the keys it adds and whether bits were assumed."""

    layers: tuple[str, ...]
    config: Any
    keys: frozenset[str]
    assumed: bool


def _bits(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, bool] | None:
    lo, hi = state.get(prefix + "quant_min"), state.get(prefix + "quant_max")
    if lo is None or hi is None or lo.numel() != 1 or hi.numel() != 1:
        return None
    qmin, qmax = int(lo.item()), int(hi.item())
    if qmax <= qmin:
        return None
    return math.ceil(math.log2(qmax - qmin + 1)), qmin < 0


def plan_fake_quant(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any],
                    modules: Mapping[str, torch.nn.Module], config: Any = None) -> FakeQuantPlan | None:
    """What to apply to a model (``expected``: its state keys, ``modules``: its named modules) so that it has
    the fake-quant keys of ``state``; None when the checkpoint has none the model lacks."""
    layers = []
    for key in state:
        if key.endswith(_SUFFIX + "min_val") and key not in expected:
            layer = key[: -len(_SUFFIX + "min_val")]
            if layer in modules and isinstance(modules[layer], (torch.nn.Conv1d, torch.nn.Conv2d,
                                                                torch.nn.Conv3d, torch.nn.Linear)):
                layers.append(layer)
    if not layers:
        return None
    from micronet_score.compress import FakeQuant

    assumed = False
    if config is None:
        found = [_bits(state, f"{layer}{_SUFFIX}") for layer in layers]
        weight = [_bits(state, f"{layer}.weight_fake_quant.") for layer in layers]
        act_bits, act_signed = found[0] if found[0] is not None else (8, False)
        weight_bits, symmetric = weight[0] if weight[0] is not None else (8, True)
        assumed = found[0] is None or weight[0] is None
        config = FakeQuant(weight_bits=weight_bits, act_bits=act_bits, symmetric=symmetric,
                           act_symmetric=act_signed)
    keys = frozenset(f"{layer}{_SUFFIX}{b}" for layer in layers for b in _BUFFERS)
    return FakeQuantPlan(tuple(layers), config, keys, assumed)


def apply_fake_quant(model: torch.nn.Module, plan: FakeQuantPlan) -> None:
    """Fake-quantize exactly the planned layers of ``model`` (in place)."""
    from dataclasses import replace

    from micronet_score.compress import quantize_

    chosen = frozenset(plan.layers)
    quantize_(model, replace(plan.config, filter_fn=lambda module, name: name in chosen))
