"""Selecting layers of a model and swapping modules by qualified name."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import nn

#: ``filter_fn(module, qualified_name) -> bool``: True keeps the layer in the selection.
FilterFn = Callable[[nn.Module, str], bool]

#: Layers every config selects unless told otherwise.
DEFAULT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def select_layers(
    model: nn.Module,
    layer_types: tuple[type[nn.Module], ...] | None,
    filter_fn: FilterFn | None,
    *,
    root: str = "",
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(qualified name, module)`` for modules of ``layer_types`` (any module when None) that
    ``filter_fn`` accepts. ``root`` restricts the walk to that submodule; names stay model-qualified."""
    start = model.get_submodule(root) if root else model
    for rel, module in start.named_modules():
        name = f"{root}.{rel}" if root and rel else (root or rel)
        if layer_types is not None and not isinstance(module, layer_types):
            continue
        if filter_fn is not None and not filter_fn(module, name):
            continue
        yield name, module


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at qualified ``name`` (works for Sequential/ModuleList indices too)."""
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, new)


def format_types(types: tuple[type, ...] | None) -> str:
    if types is None:
        return "any module"
    return "(" + ", ".join(t.__name__ for t in types) + ")"
