"""``prune_``: magnitude, block and N:M pruning on top of ``torch.nn.utils.prune``.

Unstructured, block and N:M pruning keep torch's standard representation: the parameter moves to
``<name>_orig``, a ``<name>_mask`` buffer holds the mask, and a forward pre-hook recomputes
``<name> = <name>_orig * <name>_mask``. :func:`finalize_` makes the masks permanent.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from ._layers import format_types, select_layers
from .base import CompressionConfig, handler_for, register_pruner
from .configs import (
    LAST_CLASSIFIER,
    BlockSparse,
    GlobalUnstructured,
    LayerUnstructured,
    NMSparse,
)
from .errors import CompressionError, LayerEmptiedWarning, LayersSkippedWarning
from .history import apply_
from .masks import BlockMagnitude, NMMagnitude, block_mask, nm_mask


def prune_(model: nn.Module, config: CompressionConfig, *, example_inputs: Any = None) -> nn.Module:
    """Prune ``model`` in place as ``config`` says, record ``config`` (see :func:`applied`) and return
    ``model``.

    ``config`` is a :class:`GlobalUnstructured`, :class:`LayerUnstructured`, :class:`BlockSparse`,
    :class:`NMSparse`, :class:`StructuredFilters` or any config registered with
    :func:`register_pruner`; anything else raises :class:`ConfigTypeError` naming the accepted types.
    ``example_inputs`` (a tensor or a tuple of positional inputs) is required by
    :class:`StructuredFilters`, which traces shapes, and rejected by the other configs.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import GlobalUnstructured, finalize_, prune_, sparsity
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    >>> model = prune_(model, GlobalUnstructured(amount=0.5, exclude=()))
    >>> sorted(name for name, _ in model[0].named_buffers())
    ['weight_mask']
    >>> s = sparsity(model)  # half of the 36 + 32 weights, wherever they were smallest
    >>> round(s["0.weight"] * 36 + s["3.weight"] * 32)
    34
    >>> finalize_(model) is model
    True
    """
    handler_for(config, "prune")
    return apply_(model, config, example_inputs=example_inputs)


def _has_tensor(module: nn.Module, name: str) -> bool:
    return getattr(module, name, None) is not None or hasattr(module, name + "_orig")


def _weighted_layers(model: nn.Module, config: Any) -> list[tuple[str, nn.Module]]:
    layers = [
        (n, m)
        for n, m in select_layers(model, config.layer_types, config.filter_fn)
        if _has_tensor(m, "weight")
    ]
    if not layers:
        raise CompressionError(
            f"{type(config).__name__}: no layer with a weight matches layer_types="
            f"{format_types(config.layer_types)} and filter_fn"
        )
    kept = _apply_exclude(layers, config, dict(model.named_modules()))
    if not kept:
        raise CompressionError(
            f"{type(config).__name__}: every selected layer ({', '.join(n for n, _ in layers)}) is excluded by "
            f"exclude={config.exclude!r}; the last classifier is excluded by default, pass exclude=() to prune it"
        )
    return kept


def _apply_exclude(
    layers: list[tuple[str, nn.Module]], config: Any, modules: dict[str, nn.Module]
) -> list[tuple[str, nn.Module]]:
    names = [e for e in config.exclude if isinstance(e, str) and e != LAST_CLASSIFIER]
    types = tuple(e for e in config.exclude if isinstance(e, type))
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise CompressionError(
            f"{type(config).__name__}.exclude names {unknown}, which are not modules of the model; "
            f"module names look like {sorted(modules)[1:9]}"
        )
    last = layers[-1][0] if LAST_CLASSIFIER in config.exclude else None

    def excluded(name: str, module: nn.Module) -> bool:
        if name == last or (types and isinstance(module, types)):
            return True
        return any(name == n or name.startswith(n + ".") or n == "" for n in names)

    return [(n, m) for n, m in layers if not excluded(n, m)]


def _targets(module: nn.Module, include_bias: bool) -> list[str]:
    return ["weight"] + (["bias"] if include_bias and _has_tensor(module, "bias") else [])


def _warn_emptied(layers: list[tuple[str, nn.Module]], config: Any) -> None:
    emptied = []
    with torch.no_grad():
        for name, module in layers:
            mask = getattr(module, "weight_mask", None)
            weight = mask if mask is not None else getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.numel() and not bool(weight.any()):
                emptied.append(f"{name!r} ({weight.numel():,} weights)")
    if emptied:
        warnings.warn(
            f"{type(config).__name__} pruned every weight of layer(s) {', '.join(emptied)}: they no longer pass any "
            "signal; keep them out with exclude=(name, ...) or lower amount",
            LayerEmptiedWarning,
            stacklevel=5,
        )


@register_pruner(GlobalUnstructured)
def _global_unstructured(model: nn.Module, config: GlobalUnstructured) -> None:
    layers = _weighted_layers(model, config)
    params = [(m, t) for _, m in layers for t in _targets(m, config.include_bias)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=config.amount)
    _warn_emptied(layers, config)


@register_pruner(LayerUnstructured)
def _layer_unstructured(model: nn.Module, config: LayerUnstructured) -> None:
    layers = _weighted_layers(model, config)
    if isinstance(config.amount, Mapping):
        selected = dict(layers)
        unknown = [name for name in config.amount if name not in selected]
        if unknown:
            raise CompressionError(
                f"LayerUnstructured.amount names {unknown}, which are not selected layers with a weight; "
                f"selected layers: {sorted(selected)}"
            )
        plan = [(name, selected[name], amount) for name, amount in config.amount.items()]
    else:
        plan = [(name, module, config.amount) for name, module in layers]
    for _, module, amount in plan:
        for tensor_name in _targets(module, config.include_bias):
            prune.l1_unstructured(module, tensor_name, amount=amount)
    _warn_emptied([(name, module) for name, module, _ in plan], config)


def _effective(module: nn.Module, name: str):
    if hasattr(module, name + "_orig") and hasattr(module, name + "_mask"):
        return getattr(module, name + "_orig") * getattr(module, name + "_mask")
    return getattr(module, name)


def _compatible(
    layers: list[tuple[str, nn.Module]], config: Any, check: Callable[[torch.Tensor], Any]
) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """Split the layers into those ``check`` accepts and the names of the others; every layer is checked
    before any is masked, so an error leaves the model untouched."""
    good, bad, reasons = [], [], []
    for name, module in layers:
        try:
            check(_effective(module, "weight"))
        except ValueError as err:
            bad.append(name)
            reasons.append(f"{name!r} ({err})")
        else:
            good.append((name, module))
    what = type(config).__name__
    if bad and config.on_incompatible == "error":
        raise CompressionError(
            f"{what} cannot prune layer(s) {'; '.join(reasons)}; pass on_incompatible='skip' to leave them "
            "dense, or keep them out with exclude=(name, ...)"
        )
    if bad and not good:
        raise CompressionError(f"{what} cannot prune any selected layer: {'; '.join(reasons)}")
    if bad:
        warnings.warn(
            f"{what} skipped {len(bad)} layer(s) it cannot tile (left dense): {'; '.join(reasons)}",
            LayersSkippedWarning,
            stacklevel=5,
        )
    return good, bad


@register_pruner(BlockSparse)
def _block_sparse(model: nn.Module, config: BlockSparse) -> list[str]:
    layers, skipped = _compatible(_weighted_layers(model, config), config, lambda w: block_mask(w, config.block, 0.0))
    for _, module in layers:
        BlockMagnitude.apply(module, "weight", block=config.block, amount=config.amount, norm=config.norm)
    return skipped


@register_pruner(NMSparse)
def _nm_sparse(model: nn.Module, config: NMSparse) -> list[str]:
    layers, skipped = _compatible(_weighted_layers(model, config), config, lambda w: nm_mask(w, config.n, config.m))
    for _, module in layers:
        NMMagnitude.apply(module, "weight", n=config.n, m=config.m)
    return skipped
