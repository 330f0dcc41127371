"""Reading the model's stored tensors once per count: is any value zero, is any NaN or Inf.

Every count must read every weight it prices (a weight may have been pruned since the last count, and writes
through ``.data`` leave no trace a cache could check), so the reads are made as cheap as they can be: the small
float32 CPU tensors of the model (biases, norm vectors, the filters of small layers) are read all together at
the start of the count (one concatenation and two numpy passes with per-tensor sums, instead of several calls
per tensor); the others are read with :func:`~micronet_score.counting.storage.probe` (a few passes at memory
speed, nothing allocated): one by one when an operator first needs them, or, when torch may use several threads
(``torch.get_num_threads()``) and the large float32 weights hold at least :data:`PARALLEL_VALUES` values, all at
the start, split between that many threads (numpy releases the interpreter lock while it reads). A background
thread reading the weights while the forward is traced was tried and measured slower (the tracer waited for
the interpreter lock the reading thread wanted back after each pass): the threads here run before the forward.

The results live for one ``count()`` call: the large weights' probes are remembered here too, so when a
forward that needs activation values fails on the meta device, the count that runs it again on real values
reads no weight twice. A forward that writes into a tensor the tracer does not know to depend on the inputs
(a weight clamped in place, through ``.data`` or not) drops every result read so far: the tensors are then
read again when used, as they are at that moment, and the second attempt reads everything again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import torch
from torch._utils import _flatten_dense_tensors

from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.storage import SMALL, probe  # SMALL: the tensors numpy reads faster together

_NORMS = (torch.nn.modules.batchnorm._NormBase,)

Probe = tuple[bool, bool]  # (no zero, no NaN/Inf)


#: Below this many values in the large float32 weights, starting threads costs more than it saves.
PARALLEL_VALUES = 1 << 21


class WeightReads:
    """(no zero, no NaN/Inf) of a model's stored tensors read at the start of one count: the small ones together;
    the large ones in parallel when torch may use several threads."""

    def __init__(self, tensors: Iterable[torch.Tensor], threads: int = 1) -> None:
        self._results: dict[int, tuple[torch.Tensor, Probe]] = {}
        self.invalidated = False  # a stored tensor was written: nothing here may be used again
        small, large = [], []
        for t in tensors:
            if _readable(t):
                (small if t.numel() <= SMALL else large).append(t)
        if len(small) > 1:
            self._read_together(small)
        if threads > 1 and len(large) > 1 and sum(t.numel() for t in large) >= PARALLEL_VALUES:
            self._read_in_parallel(large, threads)

    @classmethod
    def of_model(cls, index: ModelIndex) -> WeightReads:
        """The reads of the model's tensors that operators price one by one: batch norms' tensors are left out
        (:func:`~micronet_score.counting.batchnorm.fold` measures all norms together)."""
        norms = {id(t) for _, m in index.modules if isinstance(m, _NORMS)
                 for t in (*m._parameters.values(), *m._buffers.values()) if t is not None}
        return cls((t for _, t in index.tensors if id(t) not in norms), torch.get_num_threads())

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

    def _read_in_parallel(self, tensors: list[torch.Tensor], threads: int) -> None:
        """:func:`~micronet_score.counting.storage.probe` of each tensor, the tensors split into ``threads``
        shares of about equal size (largest first), one share read by this thread, the others by new threads."""
        shares: list[list[torch.Tensor]] = [[] for _ in range(min(threads, len(tensors)))]
        loads = [0] * len(shares)
        for t in sorted(tensors, key=lambda t: -t.numel()):
            i = loads.index(min(loads))
            shares[i].append(t)
            loads[i] += t.numel()
        results: list[list[Probe]] = [[] for _ in shares]
        errors: list[BaseException] = []

        def read(i: int) -> None:
            try:
                results[i] = [probe(t) for t in shares[i]]
            except BaseException as exc:  # noqa: BLE001 - handed to the counting thread below
                errors.append(exc)

        workers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(1, len(shares))]
        for w in workers:
            w.start()
        read(0)
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        for share, probes in zip(shares, results):
            for t, result in zip(share, probes):
                self._results[id(t)] = (t, result)


def _readable(t: torch.Tensor) -> bool:
    """Plain float32 CPU tensors (torch copies them into one buffer, conjugate or negative views resolved)."""
    return type(t) in _PLAIN and t.dtype is torch.float32 and t.is_cpu and t.layout is torch.strided


_PLAIN = (torch.Tensor, torch.nn.Parameter)
