"""``prune_``: magnitude, block and N:M pruning on top of ``torch.nn.utils.prune``.

Unstructured, block and N:M pruning keep torch's standard representation: the parameter moves to
``<name>_orig``, a ``<name>_mask`` buffer holds the mask, and a forward pre-hook recomputes
``<name> = <name>_orig * <name>_mask``. :func:`finalize_` makes the masks permanent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.nn.utils import prune

from ._layers import format_types, select_layers
from .configs import (
    BlockSparse,
    GlobalUnstructured,
    LayerUnstructured,
    NMSparse,
    PruneConfig,
    StructuredFilters,
)
from .masks import BlockMagnitude, NMMagnitude, block_mask, nm_mask


def prune_(model: nn.Module, config: PruneConfig, *, example_inputs: Any = None) -> nn.Module:
    """Prune ``model`` in place as ``config`` says and return it.

    ``example_inputs`` (a tensor or a tuple of positional inputs) is required by
    :class:`StructuredFilters`, which traces shapes, and rejected by the other configs.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import GlobalUnstructured, finalize_, prune_, sparsity
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    >>> model = prune_(model, GlobalUnstructured(amount=0.5))
    >>> sorted(name for name, _ in model[0].named_buffers())
    ['weight_mask']
    >>> s = sparsity(model)  # half of the 36 + 32 weights, wherever they were smallest
    >>> round(s["0.weight"] * 36 + s["3.weight"] * 32)
    34
    >>> finalize_(model) is model
    True
    """
    if isinstance(config, StructuredFilters):
        from .structured import shrink_

        return shrink_(model, config, example_inputs)
    if example_inputs is not None:
        raise TypeError(f"example_inputs is only used by StructuredFilters, not by {type(config).__name__}")
    if isinstance(config, GlobalUnstructured):
        _global_unstructured(model, config)
    elif isinstance(config, LayerUnstructured):
        _layer_unstructured(model, config)
    elif isinstance(config, BlockSparse):
        _block_sparse(model, config)
    elif isinstance(config, NMSparse):
        _nm_sparse(model, config)
    else:
        raise TypeError(
            "prune_ expects GlobalUnstructured, LayerUnstructured, BlockSparse, NMSparse or "
            f"StructuredFilters, got {type(config).__name__}"
        )
    return model


def _has_tensor(module: nn.Module, name: str) -> bool:
    return getattr(module, name, None) is not None or hasattr(module, name + "_orig")


def _weighted_layers(model: nn.Module, config: Any) -> list[tuple[str, nn.Module]]:
    layers = [
        (n, m)
        for n, m in select_layers(model, config.layer_types, config.filter_fn)
        if _has_tensor(m, "weight")
    ]
    if not layers:
        raise ValueError(
            f"{type(config).__name__}: no layer with a weight matches layer_types="
            f"{format_types(config.layer_types)} and filter_fn"
        )
    return layers


def _targets(module: nn.Module, include_bias: bool) -> list[str]:
    return ["weight"] + (["bias"] if include_bias and _has_tensor(module, "bias") else [])


def _global_unstructured(model: nn.Module, config: GlobalUnstructured) -> None:
    params = [(m, t) for _, m in _weighted_layers(model, config) for t in _targets(m, config.include_bias)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=config.amount)


def _layer_unstructured(model: nn.Module, config: LayerUnstructured) -> None:
    layers = _weighted_layers(model, config)
    if isinstance(config.amount, Mapping):
        selected = dict(layers)
        unknown = [name for name in config.amount if name not in selected]
        if unknown:
            raise ValueError(
                f"LayerUnstructured.amount names {unknown}, which are not selected layers with a weight; "
                f"selected layers: {sorted(selected)}"
            )
        plan = [(selected[name], amount) for name, amount in config.amount.items()]
    else:
        plan = [(module, config.amount) for _, module in layers]
    for module, amount in plan:
        for tensor_name in _targets(module, config.include_bias):
            prune.l1_unstructured(module, tensor_name, amount=amount)


def _effective(module: nn.Module, name: str):
    if hasattr(module, name + "_orig") and hasattr(module, name + "_mask"):
        return getattr(module, name + "_orig") * getattr(module, name + "_mask")
    return getattr(module, name)


def _check_all(layers: list[tuple[str, nn.Module]], config: Any, check) -> None:
    # Validate every layer before masking any, so a bad shape leaves the model untouched.
    for name, module in layers:
        try:
            check(_effective(module, "weight"))
        except ValueError as err:
            raise ValueError(f"{type(config).__name__} cannot prune layer {name!r}: {err}") from None


def _block_sparse(model: nn.Module, config: BlockSparse) -> None:
    layers = _weighted_layers(model, config)
    _check_all(layers, config, lambda w: block_mask(w, config.block, 0.0))
    for _, module in layers:
        BlockMagnitude.apply(module, "weight", block=config.block, amount=config.amount, norm=config.norm)


def _nm_sparse(model: nn.Module, config: NMSparse) -> None:
    layers = _weighted_layers(model, config)
    _check_all(layers, config, lambda w: nm_mask(w, config.n, config.m))
    for _, module in layers:
        NMMagnitude.apply(module, "weight", n=config.n, m=config.m)
