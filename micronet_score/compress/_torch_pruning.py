"""Optional backend: structured pruning through the ``torch-pruning`` package (imported lazily)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._layers import select_layers
from .channel_graph import as_args


def _output_layers(model: nn.Module, args: tuple[Any, ...]) -> list[nn.Module]:
    """Layers whose output tensor is returned by the model as is (their channels must stay)."""
    produced: dict[int, nn.Module] = {}

    def record(module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            produced[id(output)] = module

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    handles = [m.register_forward_hook(record) for m in layers]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            out = model(*args)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [produced[id(o)] for o in outs if isinstance(o, torch.Tensor) and id(o) in produced]


def shrink_with_torch_pruning(model: nn.Module, config: Any, example_inputs: Any) -> nn.Module:
    """Structured pruning by ``torch_pruning.pruner.MagnitudePruner`` (L1/L2 group magnitude).

    Layers not selected by the config, and layers whose output is the model output, are ignored.
    Requires ``pip install torch-pruning``.
    """
    try:
        import torch_pruning as tp
    except ImportError as err:
        raise ImportError(
            "StructuredFilters(backend='torch_pruning') needs the optional torch-pruning package: "
            "pip install torch-pruning (or use the default backend='torch')"
        ) from err
    args = as_args(example_inputs)
    selected = {id(m) for _, m in select_layers(model, config.layer_types, config.filter_fn)}
    ignored = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    ignored = [m for m in ignored if id(m) not in selected] + _output_layers(model, args)
    importance = tp.importance.MagnitudeImportance(p=1 if config.norm == "l1" else 2)
    pruner = tp.pruner.MagnitudePruner(
        model,
        example_inputs=args[0] if len(args) == 1 else args,
        importance=importance,
        pruning_ratio=config.amount,
        ignored_layers=ignored,
    )
    pruner.step()
    return model
