"""In-place protection: before an operator writes into a parameter or buffer, keep a copy, and put every such
tensor back after the forward (scoring never changes the model). Also tells which arguments an in-place
operator writes, for taint tracking."""

from __future__ import annotations

from typing import Any

import torch

from micronet_score.counting.walk import out_tensors


class InPlaceGuard:
    """Mixin of the tracer: snapshots of model tensors an operator writes into, and their restoration."""

    _model_tensors: dict[int, torch.Tensor]
    reads: Any  # counting.reads.WeightReads | None
    dep: Any

    def _init_inplace(self) -> None:
        self.snapshots: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.session: Any = None  # a counting.session.ModelSession: shared snapshots, restored by the last count
        self._mutable: dict[Any, tuple[int, ...]] = {}  # operator -> positions of the arguments it writes

    def _protect_model_tensors(self, func: Any, args: tuple, kwargs: dict) -> None:
        """Before an in-place operator writes into a parameter or buffer, keep a copy to restore afterwards."""
        positions = self._mutable.get(func)
        if positions is None:
            positions = tuple(i for i, a in enumerate(func._schema.arguments)
                              if a.alias_info is not None and a.alias_info.is_write)
            self._mutable[func] = positions
        if not positions:
            return
        schema_args = func._schema.arguments
        session = self.session
        for i in positions:
            value = args[i] if i < len(args) else kwargs.get(schema_args[i].name)
            for t in out_tensors(value):
                if self.reads is not None and t not in self.dep:  # a weight may change: read it again when used
                    self.reads.invalidate()
                if session is not None:  # also a write through an alias (weight.data.clamp_())
                    session.before_write(t, self._model_tensors)
                    continue
                owner = self._model_tensors.get(id(t))
                if owner is t and id(t) not in self.snapshots:
                    self.snapshots[id(t)] = (t, t.detach().clone())

    def _written(self, func: Any, t: torch.Tensor, args: tuple, kwargs: dict) -> bool:
        """True when ``func`` writes into ``t`` (one of its arguments)."""
        positions = self._mutable.get(func, ())
        schema_args = func._schema.arguments
        for i in positions:
            value = args[i] if i < len(args) else kwargs.get(schema_args[i].name)
            if value is t or (isinstance(value, (list, tuple)) and any(v is t for v in value)):
                return True
        return False

    def restore(self) -> None:
        """Put back every parameter or buffer an operator wrote into."""
        with torch.no_grad():
            for t, saved in self.snapshots.values():
                if t.shape != saved.shape:  # an observer resized its buffer
                    t.resize_(saved.shape)
                t.copy_(saved)
        self.snapshots.clear()
