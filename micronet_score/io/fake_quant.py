"""Recognising a checkpoint saved from a model fake-quantized by :func:`micronet_score.compress.quantize_`.

``quantize_(model, FakeQuant(...))`` adds ``<layer>.input_fake_quant.min_val``/``max_val`` buffers (the
calibrated activation range) to each quantized layer's state, and each quantizer records its integer grid:
``<layer>.input_fake_quant.quant_min``/``quant_max`` and ``<layer>.weight_fake_quant.quant_min``/``quant_max``/
``per_channel``. When a checkpoint carries these keys and the model does not, the same quantizers are applied to
the fresh model, layer by layer, at the widths the file records (``bits = ceil(log2(quant_max - quant_min +
1))``), so it counts as the model that was saved. Widths are read, never guessed: a checkpoint with activation
ranges but no recorded grid (saved by an older version) is refused unless ``fake_quant=FakeQuant(...)`` (the
CLI's ``--bits``, a manifest entry's ``bits``) states them; a stated width that differs from a recorded one is
refused too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.errors import CheckpointError

__all__ = ["FakeQuantPlan", "apply_fake_quant", "plan_fake_quant"]

_INPUT = ".input_fake_quant."
_WEIGHT = ".weight_fake_quant."
_KEYS = tuple(f"{side}{name}" for side, names in ((_INPUT, ("min_val", "max_val", "quant_min", "quant_max")),
                                                  (_WEIGHT, ("quant_min", "quant_max", "per_channel")))
              for name in names)
_LAYERS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)


@dataclass(frozen=True)
class FakeQuantPlan:
    """Layers to fake-quantize before loading, one config per layer, the checkpoint keys the quantizers add,
    and where the widths came from (``"file"`` or ``"stated"``)."""

    layers: tuple[str, ...]
    configs: dict[str, Any]
    keys: frozenset[str]
    source: str

    @property
    def config(self) -> Any:
        """The first layer's config (all of them when the widths are uniform)."""
        return self.configs[self.layers[0]]

    def describe(self) -> str:
        """One line: how many layers, at which widths, read or stated."""
        w = sorted({c.weight_bits for c in self.configs.values() if c.weight_bits is not None})
        a = sorted({c.act_bits for c in self.configs.values() if c.act_bits is not None})
        w_text = "/".join(map(str, w)) + "-bit weights" if w else "float weights"
        a_text = "/".join(map(str, a)) + "-bit activations" if a else "float activations"
        how = "read from the file" if self.source == "file" else "as stated (fake_quant= / --bits)"
        return f"fake-quantized {len(self.layers)} layer(s) as saved, {w_text} and {a_text}, bit widths {how}"


def _grid(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, bool] | None:
    """(bits, signed) of the grid recorded under ``prefix``; None when not recorded; refused when nonsense."""
    lo, hi = state.get(prefix + "quant_min"), state.get(prefix + "quant_max")
    if lo is None and hi is None:
        return None
    if lo is None or hi is None or lo.numel() != 1 or hi.numel() != 1 or lo.is_floating_point() \
            or hi.is_floating_point():
        raise CheckpointError(f"{prefix}quant_min/quant_max must be two integer scalars")
    qmin, qmax = int(lo.item()), int(hi.item())
    bits = math.ceil(math.log2(qmax - qmin + 1)) if qmax > qmin else 0
    if not 2 <= bits <= 16:
        raise CheckpointError(f"{prefix}quant_min/quant_max = {qmin}/{qmax} is not a 2- to 16-bit grid")
    return bits, qmin < 0


def _layer_of(key: str) -> str | None:
    for tail in _KEYS:
        if key.endswith(tail):
            return key[: -len(tail)]
    return None


def plan_fake_quant(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any],
                    modules: Mapping[str, torch.nn.Module], config: Any = None,
                    name: str = "the checkpoint") -> FakeQuantPlan | None:
    """What to apply to a model (``expected``: its state keys, ``modules``: its named modules) so that it has
    the fake-quant keys of ``state``; None when the checkpoint has none the model lacks. ``config`` (a
    ``FakeQuant``) states the widths of a file that does not record them.

    Raises :class:`~micronet_score.errors.CheckpointError` when the widths can be neither read nor taken from
    ``config``, or when ``config`` contradicts what the file records.
    """
    layers = sorted({layer for key in state if key not in expected
                     for layer in [_layer_of(key)]
                     if layer is not None and isinstance(modules.get(layer), _LAYERS)})
    if not layers:
        return None
    from dataclasses import replace

    from micronet_score.compress import FakeQuant

    configs: dict[str, Any] = {}
    unreadable = []
    for layer in layers:
        act = _grid(state, f"{layer}{_INPUT}")
        weight = _grid(state, f"{layer}{_WEIGHT}")
        has_range = f"{layer}{_INPUT}min_val" in state
        if act is not None and not (has_range and f"{layer}{_INPUT}max_val" in state):
            raise CheckpointError(f"{name}: layer {layer!r} records an activation grid but not its range "
                                  f"({layer + _INPUT}min_val/max_val)")
        if has_range and act is None:
            unreadable.append(layer)
            continue
        if act is None and weight is None:
            unreadable.append(layer)
            continue
        per_channel = state.get(f"{layer}{_WEIGHT}per_channel")
        configs[layer] = FakeQuant(
            weight_bits=weight[0] if weight else None, act_bits=act[0] if act else None,
            symmetric=weight[1] if weight else True, act_symmetric=act[1] if act else False,
            per_channel=bool(per_channel.item()) if per_channel is not None and per_channel.numel() == 1 else True)
    if config is not None:
        for layer, found in configs.items():
            for side in ("weight_bits", "act_bits"):
                if getattr(found, side) is not None and getattr(found, side) != getattr(config, side):
                    raise CheckpointError(
                        f"{name}: layer {layer!r} records {getattr(found, side)}-bit "
                        f"{'weights' if side == 'weight_bits' else 'activations'}, but {side}="
                        f"{getattr(config, side)} was stated (--bits / fake_quant=); drop the statement")
        configs = {layer: replace(config, filter_fn=None) for layer in layers}
        source = "stated"
    elif unreadable:
        raise CheckpointError(
            f"{name}: {len(unreadable)} layer(s) hold fake-quant ranges (e.g. "
            f"{unreadable[0] + _INPUT + 'min_val'!r}) but the file does not record their bit widths; state them "
            "with --bits N (count/eval), bits = N (a manifest entry) or fake_quant=FakeQuant(weight_bits=..., "
            "act_bits=...) (load_weights), or save the model again with micronet_score.save_submission")
    else:
        source = "file"
    keys = frozenset(f"{layer}{tail}" for layer in layers for tail in _KEYS if f"{layer}{tail}" in state)
    wrong = sorted(k for k in keys if tuple(state[k].shape) != ())
    if wrong:  # checked before any quantizer is installed: a refused file leaves the model as it was
        raise CheckpointError(f"{name}: {wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}; a fake quantizer's "
                              "range and grid are scalars; nothing was loaded")
    return FakeQuantPlan(tuple(layers), configs, keys, source)


def apply_fake_quant(model: torch.nn.Module, plan: FakeQuantPlan) -> None:
    """Fake-quantize exactly the planned layers of ``model`` (in place), each with its own config."""
    from micronet_score.compress import quantize_

    quantize_(model, {layer: plan.configs[layer] for layer in plan.layers})
