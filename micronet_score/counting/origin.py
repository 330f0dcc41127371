"""Tensors of unknown origin: a forward that takes input values out of torch (``x.numpy()``, ``x.tolist()``,
``numpy.asarray(x)``) and brings them back (``torch.from_numpy``, ``torch.tensor``) hands the next operator a
tensor the tracer never saw made. Once input values have left torch, such a tensor (not an input, not a stored
tensor, not the output of a traced operator) is taken as input-dependent, so the operators after it are
counted as in the plain model. What the forward computed outside torch cannot be counted: the report says so,
and when the input never came back to a traced operator or weights went unused, ``strict=True`` refuses."""

from __future__ import annotations

from typing import Any

import torch

from micronet_score.counting.idmap import IdMap
from micronet_score.counting.walk import out_tensors

#: Tensor methods that hand a tensor's values to Python or numpy.
VALUE_EXPORTS = {torch.Tensor.numpy: "Tensor.numpy()", torch.Tensor.tolist: "Tensor.tolist()",
                 torch.Tensor.__array__: "numpy.asarray(tensor)"}


class OriginTracking:
    """Mixin of the tracer: which exports of input values happened, and the constants traced operators made."""

    dep: IdMap
    _suppress: int

    def _init_origin(self) -> None:
        self.exported: list[str] = []  # how input-dependent values left torch, in order met
        self.constants = IdMap()  # outputs of traced operators on constants only (not of unknown origin)
        self.adopted = 0  # tensors of unknown origin taken as input-dependent
        self.notes: list[str] = []  # warnings for the report

    def note_export(self, func: Any, args: tuple) -> None:
        """A torch-function call: ``func`` hands the values of ``args[0]`` out of torch."""
        t = args[0] if args else None
        if isinstance(t, torch.Tensor) and t in self.dep and not self._suppress:
            name = VALUE_EXPORTS[func]
            if name not in self.exported:
                self.exported.append(name)

    def _adopt_unknown(self, tensors: list[torch.Tensor]) -> None:
        """After input values left torch, a tensor from nowhere carries them back: input-dependent."""
        for t in tensors:
            if t not in self.dep and t not in self.constants and self._static_info(t) is None:
                self.dep[t] = (-1, None)
                self.adopted += 1

    def _note_constants(self, out: Any) -> None:
        for t in out_tensors(out):
            self.constants.add(t)

    def lost_work(self, unused: list[str]) -> str | None:
        """Why the count may miss work done outside torch, or None when input values never left torch."""
        if not self.exported:
            return None
        how = " and ".join(self.exported)
        if not self.adopted:
            return (f"the forward took input values out of torch with {how} and they never came back to a "
                    "traced operator: the work done on them is not counted; keep the forward in torch operators")
        if unused:
            names = ", ".join(unused[:3]) + (f" and {len(unused) - 3} more" if len(unused) > 3 else "")
            return (f"the forward took input values out of torch with {how} and {len(unused)} stored tensor(s) "
                    f"were never used by a traced operator ({names}): their parameters and operations are not "
                    "counted; keep the forward in torch operators")
        return None

    def export_note(self) -> str | None:
        """The warning every report of a forward that took input values out of torch carries."""
        if not self.exported:
            return None
        return (f"the forward took input values out of torch with {' and '.join(self.exported)}: the operators "
                "after it are counted as input-dependent, what it computed outside torch is not counted")
