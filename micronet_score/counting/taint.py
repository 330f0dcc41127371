"""Taint tracking: which tensors depend on the inputs and which were computed from weights alone.

Operators on input-dependent tensors are the per-example inference cost. Operators on weights alone (pruning
mask products, weight fake quantization, transposes) are free preprocessing: the tracer remembers which
stored tensors a weight-only result comes from (:class:`Static`), so the result is priced as what the model
stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.bits import dtype_bits
from micronet_score.counting.bit_sources import fake_quant_bits
from micronet_score.counting.idmap import IdMap
from micronet_score.counting.registry import fake_quant, is_dequantize, keeps_values
from micronet_score.counting.walk import out_tensors


@dataclass
class Static:
    """Where a weight-only tensor comes from."""

    sources: frozenset[str]  # state_dict names of the stored tensors it is computed from
    bits: int | None  # a width set by fake quantization, if any
    root: torch.Tensor | None = None  # for a view or copy of a stored tensor: that tensor


class TaintTracking:
    """Mixin of the tracer: ``dep`` (input-dependent tensor -> (producer event, bits or None)) and ``static``
    (weight-only tensor -> :class:`Static`)."""

    dep: IdMap
    static: IdMap
    inputs: IdMap
    unbatched: bool
    tensor_names: dict[int, str]
    _model_tensors: dict[int, torch.Tensor]
    used_sources: set[str]

    def _init_taint(self) -> None:
        self.dep = IdMap()
        self.static = IdMap()
        self.inputs = IdMap()  # the user's input tensors (value: True)
        self._own_static: dict[str, Static] = {}  # a model tensor's name -> its Static
        self.unbatched = False

    def mark_input(self, t: torch.Tensor) -> None:
        """``t`` is one of the user's inputs: everything computed from it is inference."""
        self.dep[t] = (-1, None)
        self.inputs.add(t)

    def mark_recurrent_state(self, t: torch.Tensor) -> None:
        """``t`` is a recurrent layer's hidden state: an input of each step (spec section 3), unless it is a stored
        model tensor (a learned initial state) or already depends on the inputs."""
        if t in self.dep or id(t) in self.tensor_names:
            return
        self.mark_input(t)

    def _static_info(self, t: torch.Tensor) -> Static | None:
        name = self.tensor_names.get(id(t))
        if name is not None and self._model_tensors.get(id(t)) is t:
            info = self._own_static.get(name)
            if info is None:  # one Static per stored tensor, not one per lookup
                info = self._own_static[name] = Static(frozenset((name,)), None)
            return info
        return self.static.get(t)

    def is_static(self, t: torch.Tensor) -> bool:
        """True for a stored weight or a tensor computed from weights only."""
        if t in self.dep:
            return False
        info = self._static_info(t)
        return info is not None and bool(info.sources)

    def _mark(self, out: Any, producer: int, bits: int | None) -> None:
        for t in out_tensors(out):
            self.dep[t] = (producer, bits)

    def _static_op(self, func: Any, args: tuple, tensors: list[torch.Tensor], out: Any) -> None:
        """An operator on weights (or constants) only: free preprocessing; remember where outputs come from."""
        sources: frozenset[str] = frozenset()
        bits = None
        for t in tensors:
            info = self._static_info(t)
            if info is not None:
                sources |= info.sources
                if info.bits is not None:
                    bits = info.bits if bits is None else max(bits, info.bits)
        if not sources:
            self._note_constants(out)  # type: ignore[attr-defined]  (counting.origin)
            return
        fq = fake_quant(func)
        root = None
        if fq is not None:
            # scale and zero point are the format's metadata: the values stored are the input's
            first = self._static_info(tensors[0])
            if first is not None and first.sources:
                self.used_sources.update(sources)
                sources = first.sources
            fq_bits = fake_quant_bits(args, fq)
            if fq_bits is not None:
                bits = fq_bits
        elif is_dequantize(func) and tensors:
            bits = dtype_bits(tensors[0].dtype)
        elif keeps_values(func) and tensors and len(tensors) == 1:
            first = self._static_info(tensors[0])
            if first is not None:
                root = first.root if first.root is not None else tensors[0]
        for t in out_tensors(out):
            if t in self.dep or id(t) in self.tensor_names:
                continue
            self.static[t] = Static(sources, bits, root)
