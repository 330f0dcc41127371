"""``shrink_``: structured filter/channel pruning that physically removes channels."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn

from ._layers import format_types, select_layers, set_submodule
from .base import register_pruner
from .channel_graph import (
    BATCHNORM_TYPES,
    CONV_TYPES,
    ChannelGraph,
    Flow,
    analyze,
    as_args,
    shape_tree,
)
from .configs import StructuredFilters
from .errors import CompressionError, ConfigTypeError
from .history import apply_


def shrink_(model: nn.Module, config: StructuredFilters, example_inputs: Any) -> nn.Module:
    """Remove the weakest output channels of the selected conv/linear layers, in place, and return
    ``model`` (``prune_(model, StructuredFilters(...), example_inputs=...)`` does the same).

    The model is traced with ``torch.fx.symbolic_trace`` semantics and run once on
    ``example_inputs`` (a tensor or tuple of positional inputs; eval mode, no grad) to learn the
    channel layout of every activation. Layers are then replaced by new, smaller ``nn.Conv1d/2d/3d``,
    ``nn.Linear``, ``nn.BatchNorm1d/2d/3d`` and ``nn.PReLU`` modules at the same names; the model's
    own class and ``forward`` are kept. Channels are ranked by the L1 (or L2) norm of their filters;
    in each set of coupled layers ``round(amount * channels)`` are removed, never all of them.

    Handled:

    * chains of conv / linear / batch norm / activations / pooling / dropout, flattening into a
      linear layer (``torch.flatten``, ``nn.Flatten``, ``x.view(x.size(0), -1)``), spatial
      ``mean``/``sum``/``amax``;
    * residual adds (and other element-wise ops between activations): all layers feeding the same
      add are pruned *consistently* - the same channel indices are removed from each, ranked by the
      summed norm - so the add stays aligned;
    * ``torch.cat`` along channels (DenseNet): each input keeps its own ranking and consumers are
      sliced at the shifted positions;
    * grouped convolutions: depthwise convs follow their input channels; other grouped convs keep
      every group and remove the same number of channels from each group, on both their input and
      output side.

    Left alone (never pruned, so the result stays correct): channels that reach the model output,
    an op the analysis does not know (slicing, ``view`` with literal sizes, attention, custom leaf
    modules, ``GroupNorm``/``LayerNorm``...), a module called twice, sharing parameters or carrying
    hooks, layers not selected by ``layer_types``/``filter_fn``, and grouped-conv inputs fed by
    several unrelated layers. Layers that are not exactly a torch conv/linear/batch-norm type are
    treated as unknown ops.

    Refused with an error: models ``torch.fx`` cannot trace (:class:`UntraceableModelError` names the
    ways out), and layers that still carry pruning masks or parametrizations (call
    :func:`finalize_` first). Prune structurally *before* :func:`quantize_`.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import StructuredFilters, shrink_
    >>> model = nn.Sequential(
    ...     nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2), nn.ReLU(),
    ...     nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    >>> _ = shrink_(model, StructuredFilters(amount=0.5), torch.randn(1, 3, 8, 8))
    >>> [model[0].out_channels, model[1].num_features, model[3].out_channels, model[6].in_features]
    [4, 4, 4, 64]
    >>> model(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 10])
    """
    if not isinstance(config, StructuredFilters):
        raise ConfigTypeError(f"shrink_ expects a StructuredFilters config, got {type(config).__name__}")
    if example_inputs is None:
        raise CompressionError(
            "StructuredFilters needs example_inputs (a tensor or tuple the model accepts, e.g. "
            "torch.randn(1, 3, 32, 32)) to trace channel shapes: prune_(model, config, example_inputs=x)"
        )
    return apply_(model, config, example_inputs=example_inputs)


@register_pruner(StructuredFilters, needs_example_inputs=True)
def _shrink(model: nn.Module, config: StructuredFilters, example_inputs: Any) -> None:
    if config.backend == "torch_pruning":
        from ._torch_pruning import shrink_with_torch_pruning

        shrink_with_torch_pruning(model, config, example_inputs)
        return
    selected = {name for name, _ in select_layers(model, config.layer_types, config.filter_fn)}
    if not selected:
        raise CompressionError(
            f"StructuredFilters: no layer matches layer_types={format_types(config.layer_types)} and filter_fn"
        )
    graph = analyze(model, example_inputs, selected, config.leaf_modules)
    removed = choose_removed(graph, config, dict(model.named_modules()))
    if not removed:
        return
    replacements = _rebuild(graph, removed, dict(model.named_modules()))
    _swap_and_verify(model, replacements, example_inputs, graph.output_shapes)


# ------------------------------------------------------------------------------------------ choosing


def _filter_norms(module: nn.Module, norm: str) -> torch.Tensor:
    w = module.weight.detach().float().reshape(module.weight.shape[0], -1)
    return w.abs().sum(dim=1) if norm == "l1" else w.pow(2).sum(dim=1).sqrt()


def choose_removed(graph: ChannelGraph, config: StructuredFilters, modules: dict[str, nn.Module]) -> set[int]:
    """Class roots (see :class:`~.channel_graph.DisjointSets`) to remove."""
    sets = graph.sets
    members: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for name, atoms in graph.producers.items():
        for index, atom in enumerate(atoms):
            members[sets.find(atom)].append((name, index))
    # Classes coupled to the same set of layers are ranked against each other.
    key_of = {root: frozenset(name for name, _ in mem) for root, mem in members.items()}
    groups: dict[frozenset[str], list[int]] = defaultdict(list)
    for root in sorted(members, key=lambda r: members[r][0]):
        groups[key_of[root]].append(root)
    partitions = _partitions(graph, key_of, groups)

    norms = {name: _filter_norms(modules[name], config.norm) for name in graph.producers}
    score = {root: sum(float(norms[name][i]) for name, i in mem) for root, mem in members.items()}
    order = {root: k for k, root in enumerate(sorted(members, key=lambda r: members[r][0]))}

    def weakest(roots: list[int], k: int) -> list[int]:
        live = [r for r in roots if not sets.frozen[r]]
        return sorted(live, key=lambda r: (score[r], order[r]))[:k]

    removed: set[int] = set()
    for key, roots in groups.items():
        if key in partitions:
            buckets = partitions[key]
            size = len(buckets[0])
            k = min(round(config.amount * size), size - 1)
            k = min([k] + [sum(not sets.frozen[r] for r in b) for b in buckets])
            for bucket in buckets:
                removed.update(weakest(bucket, k))
        else:
            k = min(round(config.amount * len(roots)), len(roots) - 1)
            removed.update(weakest(roots, k))
    return removed


def _partitions(graph: ChannelGraph, key_of: dict, groups: dict) -> dict[frozenset[str], list[list[int]]]:
    """Grouped-conv constraints as bucket lists per coupled-layer set; constraints that cannot be
    honoured freeze the classes they touch."""
    sets = graph.sets
    result: dict[frozenset[str], list[list[int]]] = {}
    blocked: set[frozenset[str]] = set()
    for buckets in graph.constraints:
        roots = [[sets.find(a) for a in bucket] for bucket in buckets]
        flat = [r for bucket in roots for r in bucket]
        keys = {key_of.get(r) for r in flat}
        key = next(iter(keys))
        ok = (
            len(keys) == 1
            and key is not None
            and len(flat) == len(set(flat))
            and set(flat) == set(groups[key])
            and len({len(b) for b in roots}) == 1
        )
        if not ok:
            for r in flat:
                sets.frozen[r] = True
            continue
        canonical = sorted(sorted(b) for b in roots)
        if key in result and sorted(sorted(b) for b in result[key]) != canonical:
            blocked.add(key)
        result.setdefault(key, roots)
    for key in blocked:
        for r in groups[key]:
            sets.frozen[r] = True
        del result[key]
    return result


# ----------------------------------------------------------------------------------------- rebuilding


def _positions(graph: ChannelGraph, flow: Flow, removed: set[int]) -> list[int]:
    find = graph.sets.find
    return [p for p in range(flow.size) if find(flow.atoms[p // flow.span]) not in removed]


def _rebuild(graph: ChannelGraph, removed: set[int], modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
    new: dict[str, nn.Module] = {}
    for name, flow in graph.channelwise.items():
        keep = _positions(graph, flow, removed)
        if len(keep) < flow.size:
            new[name] = _slice_channelwise(modules[name], keep)
    for name, atoms in graph.producers.items():
        module = modules[name]
        keep_out = [i for i, a in enumerate(atoms) if graph.sets.find(a) not in removed]
        flow = graph.consumers.get(name)
        keep_in = _positions(graph, flow, removed) if flow is not None else None
        in_count = module.in_features if isinstance(module, nn.Linear) else module.in_channels
        if len(keep_out) == len(atoms) and (keep_in is None or len(keep_in) == in_count):
            continue
        keep_in = keep_in if keep_in is not None else list(range(in_count))
        if isinstance(module, nn.Linear):
            new[name] = _slice_linear(module, keep_in, keep_out)
        else:
            new[name] = _slice_conv(module, keep_in, keep_out)
    return new


def _finish(new: nn.Module, old: nn.Module, tensors: dict[str, torch.Tensor | None]) -> nn.Module:
    with torch.no_grad():
        for name, value in tensors.items():
            target = getattr(new, name)
            if value is None or target is None:
                continue
            target.copy_(value)
            old_tensor = getattr(old, name)
            if isinstance(target, nn.Parameter):
                target.requires_grad_(old_tensor.requires_grad)
    new.train(old.training)
    return new


def _slice_linear(old: nn.Linear, keep_in: list[int], keep_out: list[int]) -> nn.Linear:
    w = old.weight.detach()
    new = nn.Linear(len(keep_in), len(keep_out), bias=old.bias is not None, device=w.device, dtype=w.dtype)
    bias = old.bias.detach()[keep_out] if old.bias is not None else None
    return _finish(new, old, {"weight": w[keep_out][:, keep_in], "bias": bias})


def _new_conv(old: nn.Module, in_channels: int, out_channels: int, groups: int) -> nn.Module:
    w = old.weight
    return type(old)(
        in_channels,
        out_channels,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        groups=groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
        device=w.device,
        dtype=w.dtype,
    )


def _slice_conv(old: nn.Module, keep_in: list[int], keep_out: list[int]) -> nn.Module:
    w = old.weight.detach()
    groups = old.groups
    if groups == 1:
        weight = w[keep_out][:, keep_in]
    else:
        in_g, out_g = old.in_channels // groups, old.out_channels // groups
        local = [[p - g * in_g for p in keep_in if p // in_g == g] for g in range(groups)]
        outs = [sum(1 for o in keep_out if o // out_g == g) for g in range(groups)]
        if len({len(cols) for cols in local}) != 1 or len(set(outs)) != 1:
            raise RuntimeError(f"internal error: unbalanced groups while slicing {old}")
        weight = torch.stack([w[o, local[o // out_g]] for o in keep_out])
    new = _new_conv(old, len(keep_in), len(keep_out), groups)
    bias = old.bias.detach()[keep_out] if old.bias is not None else None
    return _finish(new, old, {"weight": weight, "bias": bias})


def _slice_channelwise(old: nn.Module, keep: list[int]) -> nn.Module:
    if isinstance(old, CONV_TYPES):  # depthwise
        new = _new_conv(old, len(keep), len(keep), len(keep))
        bias = old.bias.detach()[keep] if old.bias is not None else None
        return _finish(new, old, {"weight": old.weight.detach()[keep], "bias": bias})
    if isinstance(old, nn.PReLU):
        new = nn.PReLU(len(keep), device=old.weight.device, dtype=old.weight.dtype)
        return _finish(new, old, {"weight": old.weight.detach()[keep]})
    if isinstance(old, BATCHNORM_TYPES):
        ref = old.weight if old.weight is not None else old.running_mean
        new = type(old)(
            len(keep),
            eps=old.eps,
            momentum=old.momentum,
            affine=old.affine,
            track_running_stats=old.track_running_stats,
            device=ref.device if ref is not None else None,
            dtype=ref.dtype if ref is not None else None,
        )
        tensors: dict[str, torch.Tensor | None] = {}
        for name in ("weight", "bias", "running_mean", "running_var"):
            value = getattr(old, name)
            tensors[name] = value.detach()[keep] if value is not None else None
        tensors["num_batches_tracked"] = old.num_batches_tracked
        return _finish(new, old, tensors)
    raise RuntimeError(f"internal error: cannot slice {type(old).__name__}")


def _swap_and_verify(
    model: nn.Module, replacements: dict[str, nn.Module], example_inputs: Any, expected: Any
) -> None:
    originals = {name: model.get_submodule(name) for name in replacements}
    for name, module in replacements.items():
        set_submodule(model, name, module)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            got = shape_tree(model(*as_args(example_inputs)))
        if got != expected:
            raise RuntimeError(f"output shapes changed from {expected} to {got}")
    except Exception as err:
        for name, module in originals.items():
            set_submodule(model, name, module)
        raise RuntimeError(
            f"structured pruning produced a model that does not run on example_inputs ({err}); the "
            "original layers were put back. Exclude the offending layers with filter_fn or report this."
        ) from err
    finally:
        for module, training in modes.items():
            module.training = training
