"""Packed parameters: torch.ao quantized layers hand their weight and bias to the operator as one opaque
packed object. Unpacking it once per object makes them stored tensors of the module that runs it."""

from __future__ import annotations

from typing import Any

import torch

from micronet_score.counting.taint import Static


class PackedParams:
    """Mixin of the tracer: ``unpack`` (offered to cost functions) and the packed objects of one forward."""

    def _init_packed(self) -> None:
        self._packed: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._packed_objects: list[Any] = []  # keeps ids stable while the forward runs

    def unpack(self, packed: Any, bits: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) of a torch.ao packed-parameters object, registered as stored tensors of the module
        that runs it (unpacked once per object)."""
        found = self._packed.get(id(packed))
        if found is None:
            weight, bias = packed.unpack()[:2]
            module = self.module
            self.static[weight] = Static(frozenset((f"{module}.weight" if module else "weight",)), bits)
            if bias is not None:
                self.static[bias] = Static(frozenset((f"{module}.bias" if module else "bias",)), None)
            found = (weight, bias)
            self._packed[id(packed)] = found
            self._packed_objects.append(packed)
        return found

    def unpack_args(self, func: Any, args: tuple) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(weight, bias) of every packed object among ``args`` (fp16 packed weights are 16 bits wide)."""
        return [self.unpack(a, 16 if "fp16" in func.overloadpacket.__name__ else None)
                for a in args if isinstance(a, torch.ScriptObject) and is_packed(a)]


def is_packed(obj: Any) -> bool:
    """True for a torch.ao packed-parameters object (a ScriptObject with an ``unpack`` method)."""
    try:
        return bool(obj._has_method("unpack"))
    except Exception:  # pragma: no cover - ScriptObjects of other kinds
        return False
