"""Reading the model's stored tensors once per count: is any value zero, is any NaN or Inf.

Every count must read every weight it prices (a weight may have been pruned since the last count, and writes
through ``.data`` leave no trace a cache could check), so the reads are made as cheap as they can be: the small
float32 CPU tensors of the model (biases, norm vectors, the filters of small layers) are read all together at
the start of the count (one concatenation and two numpy passes with per-tensor sums, instead of several calls
per tensor); the others are read one by one when an operator first needs them, with
:func:`~micronet_score.counting.storage.probe` (a few passes at memory speed, nothing allocated).

A background thread reading the large weights while the forward is traced was tried and measured slower at 2
threads on a 2-core machine (the tracer waited for the interpreter lock the reading thread wanted back after
each pass), so there is none.

The results live for one ``count()`` call: the large weights' probes are remembered here too, so when a
forward that needs activation values fails on the meta device, the count that runs it again on real values
reads no weight twice. A forward that writes into a tensor the tracer does not know to depend on the inputs
(a weight clamped in place, through ``.data`` or not) drops every result read so far: the tensors are then
read again when used, as they are at that moment, and the second attempt reads everything again.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch._utils import _flatten_dense_tensors

from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.storage import SMALL  # the tensors read together: those numpy reads faster

_NORMS = (torch.nn.modules.batchnorm._NormBase,)

Probe = tuple[bool, bool]  # (no zero, no NaN/Inf)


class WeightReads:
    """(no zero, no NaN/Inf) of a model's small stored tensors, read together for one count."""

    def __init__(self, tensors: Iterable[torch.Tensor]) -> None:
        self._results: dict[int, tuple[torch.Tensor, Probe]] = {}
        self.invalidated = False  # a stored tensor was written: nothing here may be used again
        small = [t for t in tensors if t.numel() <= SMALL and _readable(t)]
        if len(small) > 1:
            self._read_together(small)

    @classmethod
    def of_model(cls, index: ModelIndex) -> WeightReads:
        """The reads of the model's tensors that operators price one by one: batch norms' tensors are left out
        (:func:`~micronet_score.counting.batchnorm.fold` measures all norms together)."""
        norms = {id(t) for _, m in index.modules if isinstance(m, _NORMS)
                 for t in (*m._parameters.values(), *m._buffers.values()) if t is not None}
        return cls(t for _, t in index.tensors if id(t) not in norms)

    def get(self, t: torch.Tensor) -> Probe | None:
        """The result for the stored tensor ``t``, or None when it was not read here (the caller reads it)."""
        found = self._results.get(id(t))
        if found is not None and found[0] is t:
            return found[1]
        return None

    def remember(self, t: torch.Tensor, probe: Probe) -> None:
        """Keep the probe of the stored tensor ``t``, read one by one, for the rest of the ``count()`` call."""
        if not self.invalidated:
            self._results[id(t)] = (t, probe)

    def invalidate(self) -> None:
        """A stored tensor may have been written: forget every result (tensors are read again when used)."""
        self._results.clear()
        self.invalidated = True

    def _read_together(self, tensors: list[torch.Tensor]) -> None:
        """One concatenation of small float32 tensors, then per-tensor sums of (x == 0) and of non-finite x."""
        with torch.no_grad():
            flat = _flatten_dense_tensors(tensors).numpy()  # one copy of all of them, made in one call
        sizes = [t.numel() for t in tensors]
        keep = [i for i, n in enumerate(sizes) if n]
        starts = np.cumsum([0, *sizes[:-1]])[keep]
        zeros = np.add.reduceat(flat == 0, starts) if keep else []
        bad = np.add.reduceat(~np.isfinite(flat), starts) if keep else []
        for i, z, b in zip(keep, list(zeros), list(bad)):
            t = tensors[i]
            self._results[id(t)] = (t, (int(z) == 0, int(b) == 0))
        for i, n in enumerate(sizes):
            if not n:
                self._results[id(tensors[i])] = (tensors[i], (True, True))


def _readable(t: torch.Tensor) -> bool:
    """Plain float32 CPU tensors (torch copies them into one buffer, conjugate or negative views resolved)."""
    return type(t) in _PLAIN and t.dtype is torch.float32 and t.is_cpu and t.layout is torch.strided


_PLAIN = (torch.Tensor, torch.nn.Parameter)
