"""Taint tracking: which tensors depend on the inputs and which were computed from weights alone.

Operators on input-dependent tensors are the per-example inference cost. Operators on weights alone (pruning
mask products, weight fake quantization, transposes, tables gathered with constant indices) are free load-time
work: the tracer remembers which stored tensors a weight-only result comes from (:class:`Static`), and whether
it is priced as the stored tensor (an elementwise, shape-keeping result) or is a load-time constant whose
sources are priced whole (counting/loadtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.bits import dtype_bits
from micronet_score.counting.bit_sources import fake_quant_bits
from micronet_score.counting.idmap import IdMap
from micronet_score.counting.loadtime import Part, elementwise, merge_parts, merge_work
from micronet_score.counting.registry import fake_quant, is_dequantize, is_free, keeps_values, op_name
from micronet_score.counting.roles import operand_role
from micronet_score.counting.walk import out_tensors


@dataclass
class Static:
    """Where a weight-only tensor comes from."""

    sources: frozenset[str]  # state_dict names of the stored tensors it is computed from
    bits: int | None  # a width set by fake quantization, if any
    root: torch.Tensor | None = None  # for a view or copy of a stored tensor: that tensor
    parts: tuple[Part, ...] = ()  # stored tensors read by load-time work, priced whole (counting/loadtime.py)
    constant: bool = False  # a load-time constant: stores nothing itself; its sources are priced through parts
    work: tuple[str, ...] = ()  # for a constant: the operators that made it, for Report.load_time


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
        """An operator on weights (or constants) only: free load-time work (counting/loadtime.py); remember where
        outputs come from and whether they are priced as a stored tensor or are a load-time constant."""
        sources: frozenset[str] = frozenset()
        bits = None
        statics: list[tuple[torch.Tensor, Static]] = []
        for t in tensors:
            info = self._static_info(t)
            if info is not None:
                statics.append((t, info))
                sources |= info.sources
                if info.bits is not None:
                    bits = info.bits if bits is None else max(bits, info.bits)
        if not sources:
            self._note_constants(out)  # type: ignore[attr-defined]  (counting.origin)
            return
        fq = fake_quant(func)
        first = self._static_info(tensors[0]) if tensors else None
        made: Static | None = None  # one Static for every output, or None: per output below
        if fq is not None:
            # scale and zero point are the format's metadata: the values stored are the input's
            if first is not None and first.sources:
                self.used_sources.update(sources)
                sources = first.sources
            fq_bits = fake_quant_bits(args, fq)
            if fq_bits is not None:
                bits = fq_bits
            made = _priced_as(first, sources, bits)
        elif is_dequantize(func) and tensors:
            made = _priced_as(first, sources, dtype_bits(tensors[0].dtype))
        for t in out_tensors(out):
            if t in self.dep or id(t) in self.tensor_names:
                continue
            self.static[t] = made or self._derived(func, args, tensors, statics, sources, bits, t)

    def _derived(self, func: Any, args: tuple, tensors: list[torch.Tensor], statics: list[tuple[torch.Tensor, Static]],
                 sources: frozenset[str], bits: int | None, out: torch.Tensor) -> Static:
        """Where the weight-only output ``out`` of ``func`` comes from (spec section 3): a view keeping every
        element, or an elementwise result as large as a stored operand, is priced as the stored tensor; anything
        else is a load-time constant whose stored sources are priced whole."""
        if keeps_values(func) and len(tensors) == 1:
            first = statics[0][1]
            if first.constant:  # a view of a constant
                return Static(sources, bits, None, first.parts, True, first.work)
            if out.numel() == tensors[0].numel():  # a transpose, reshape or copy: the stored tensor itself
                return Static(sources, bits, first.root if first.root is not None else tensors[0], first.parts)
        elif elementwise(func) and any(not i.constant and t.numel() == out.numel() for t, i in statics):
            # the result replaces every source (a deployed model stores it): a mask, weight norm's g and ||v||,
            # spectral norm's sigma cost nothing
            return Static(sources, bits, None)
        # a gather, slice, expansion, concatenation, reduction, or a layer run on constants
        groups: list[tuple[Part, ...]] = []
        for t, info in statics:
            role, why = self._work_role(func, args, t)
            if info.constant:
                groups.append(info.parts if role is None else resolve(info.parts, role, why))
            else:
                groups.append((*info.parts, Part(t, info, role, why)))
        work = merge_work([i.work for _, i in statics], op_name(func))
        return Static(sources, bits, None, merge_parts(groups), True, work)

    @staticmethod
    def _work_role(func: Any, args: tuple, t: torch.Tensor) -> tuple[str | None, str]:
        """What the load-time operator ``func`` makes of ``t``: a weight when it multiplies it or looks rows up in
        it, a vector when a costed operator adds it; None (left to the per-example reader) for a free view or
        concatenation."""
        role, why = operand_role(func, args, t)
        if role == "weight" or why.startswith("the indices") or (
                role is not None and not is_free(func) and not keeps_values(func)):
            return role, f"{why}, at load time"
        return None, ""


def _priced_as(first: Static | None, sources: frozenset[str], bits: int | None) -> Static:
    """A fake-quantized or dequantized weight: priced as its stored tensor, at the new width (a constant stays
    a constant)."""
    if first is not None and first.constant:
        return Static(sources, bits, None, first.parts, True, first.work)
    return Static(sources, bits, None, first.parts if first is not None else ())


def resolve(parts: tuple[Part, ...], role: str, why: str) -> tuple[Part, ...]:
    """``parts`` with the roles left to the reader set to ``role``."""
    if all(p.role is not None for p in parts):
        return parts
    return tuple(p if p.role is not None else Part(p.tensor, p.info, role, why) for p in parts)
