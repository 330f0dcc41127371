"""One walk over a model's module tree, shared by everything ``count`` needs to know about it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelIndex:
    """Modules, parameters and buffers by their state_dict names (each object once, first name wins, as
    ``named_parameters``/``named_buffers`` order them), plus where the model lives."""

    modules: tuple[tuple[str, torch.nn.Module], ...]
    parameters: tuple[tuple[str, torch.Tensor], ...]
    buffers: tuple[tuple[str, torch.Tensor], ...]

    @classmethod
    def of(cls, model: torch.nn.Module) -> ModelIndex:
        """The index of ``model``: the order and names of ``named_modules``, ``named_parameters`` and
        ``named_buffers`` (each object once, first name wins), from one walk over the ``_modules`` tables."""
        modules: list[tuple[str, torch.nn.Module]] = []
        seen_modules: set[int] = set()
        stack: list[tuple[str, torch.nn.Module]] = [("", model)]
        while stack:  # depth first, children in registration order, as named_modules
            prefix, module = stack.pop()
            if id(module) in seen_modules:
                continue
            seen_modules.add(id(module))
            modules.append((prefix, module))
            children = [(f"{prefix}.{name}" if prefix else name, child)
                        for name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))
        seen: set[int] = set()
        params: list[tuple[str, torch.Tensor]] = []
        buffers: list[tuple[str, torch.Tensor]] = []
        for prefix, module in modules:
            for table, out in ((module._parameters, params), (module._buffers, buffers)):
                for key, t in table.items():
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    out.append((f"{prefix}.{key}" if prefix else key, t))
        return cls(tuple(modules), tuple(params), tuple(buffers))

    @property
    def tensors(self) -> tuple[tuple[str, torch.Tensor], ...]:
        return self.parameters + self.buffers

    def device_dtype(self) -> tuple[torch.device, torch.dtype]:
        """Device of the first parameter or buffer (cpu if none) and the first floating dtype (float32 if none)."""
        tensors = [t for _, t in self.tensors]
        device = tensors[0].device if tensors else torch.device("cpu")
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
        return device, dtype
