"""Stored tensors and their labels: each distinct tensor the model stores (a parameter or buffer as the forward
uses it, after weight-only preprocessing), named as the user knows it, measured once (non-zeros, finiteness,
non-zeros per output channel for the cost functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.counting.loadtime import describe, non_persistent
from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.reads import WeightReads
from micronet_score.counting.registry import ChannelStats
from micronet_score.counting.roles import is_value
from micronet_score.counting.storage import StorageStats, count_nonzero, integer_values, measure, probe


@dataclass
class StoredTensor:
    """One distinct tensor the model stores (a parameter or buffer as the forward uses it)."""

    label: str
    module: str
    shape: tuple[int, ...]
    bits: int
    stats: StorageStats
    why: str = ""  # how the engine classified it (counting/roles.py): "the multiplied operand of aten.addmm"
    value: bool = True  # False: a mask or indices (bool, or integers not multiplied), never quantized values


class StoredTensors:
    """Mixin of the tracer: the model's tensors by identity, the stored tensors met so far, their statistics."""

    tensor_names: dict[int, str]
    _model_tensors: dict[int, torch.Tensor]
    metadata: set[int]
    stored: dict[Any, StoredTensor]
    used_sources: set[str]
    free_sources: frozenset[str]
    load_time: dict[str, None]
    notes: list[str]
    nonzeros_known: bool
    mask_policy: str

    def _init_stored(self, index: ModelIndex) -> None:
        self.tensor_names = {id(t): name for name, t in index.tensors}
        self._model_tensors = {id(t): t for _, t in index.tensors}
        self.metadata = set()  # inner tensors of quantized subclasses that are not the data
        for name, t in index.tensors:
            inner = inner_tensors(t)
            if not inner:
                continue
            data = max(inner, key=lambda x: x.numel())  # torchao & co: the quantized values; the rest is metadata
            for x in inner:
                self.tensor_names.setdefault(id(x), name)
                self._model_tensors[id(x)] = x
                if x is not data:
                    self.metadata.add(id(x))
        self.stored = {}
        self.stored_reads: dict[Any, int] = {}  # stored-tensor key -> how many operator reads registered it
        self.used_sources = set()
        dropped = non_persistent(index.modules)  # derivable at load time: free (spec section 3)
        self.free_sources = frozenset(name for name, t in index.buffers if id(t) in dropped)
        self.load_time: dict[str, None] = {}  # what load-time work made the constants read (Report.load_time)
        self.nonzeros_known = True
        self._stats_cache: dict[Any, ChannelStats] = {}
        self._model_bits: dict[str, int] = {}  # a parameter or buffer's name -> its width in this count
        self._nonzeros: dict[Any, int] = {}  # stored-tensor key -> non-zeros, learnt from channel stats
        self._finite: dict[Any, bool] = {}
        self._probed: dict[Any, tuple[bool, bool]] = {}  # stored-tensor key -> (no zero, no NaN/Inf)
        self.reads: WeightReads | None = None  # the model's tensors read for this count (counting/reads.py)

    def _key(self, t: torch.Tensor, info: Any) -> Any:
        if len(info.sources) == 1 and self.tensor_names.get(id(t)) in info.sources:
            return next(iter(info.sources))
        return (info.sources, tuple(t.shape), t.storage_offset() if not t.is_meta else 0, info.bits)

    def _owner(self, sources: frozenset[str]) -> str:
        owner = _OWNERS.get(sources)
        if owner is None:  # worked out once per set of sources (a pure function of the names)
            owners = {canonical_name(s).rpartition(".")[0] for s in sources}
            owner = owners.pop() if len(owners) == 1 else False
            if len(_OWNERS) > 100_000:
                _OWNERS.clear()
            _OWNERS[sources] = owner
        return self.module if owner is False else owner

    def _label(self, t: torch.Tensor, info: Any) -> str:
        """The stored tensor's name as a user knows it: ``conv.weight`` for ``conv.weight_orig * mask`` or a
        parametrized ``conv.parametrizations.weight.original``."""
        if len(info.sources) == 1 and self.tensor_names.get(id(t)) in info.sources:
            return next(iter(info.sources))
        names = sorted({canonical_name(s) for s in info.sources})
        if len(names) == 1:
            return names[0]
        owner = self._owner(info.sources)
        leaves = sorted({n.rpartition(".")[2] for n in names})
        return f"{owner}.{'+'.join(leaves)}" if owner else "+".join(leaves)

    def _register_read(self, t: torch.Tensor, info: Any, role: str | None = None, why: str = "") -> None:
        """A per-example operator reads the weight-only tensor ``t`` (``role``, ``why``: what it makes of it,
        counting/roles.py). Store what the model stores (spec section 3): ``t`` itself when it is a stored
        tensor or an elementwise, shape-keeping result of one; for a load-time constant, each stored tensor it
        was computed from, whole (counting/loadtime.py). Non-persistent buffers are free."""
        free = self.free_sources
        if info.constant:
            self.load_time.setdefault(describe(info.sources, info.work, free))
        elif not (free and info.sources <= free):
            self._register_stored(t, info, role, why)
        elif role == "weight" and (t.is_floating_point() or t.is_complex()):
            self._free_weight(info.sources)
        for p in info.parts:
            if free and p.info.sources <= free:
                continue
            if p.role is None:
                self._register_stored(p.tensor, p.info, role, f"{why}, through load-time work" if why else "")
            else:
                self._register_stored(p.tensor, p.info, p.role, p.why)
        self.used_sources.update(info.sources)

    def _free_weight(self, sources: frozenset[str]) -> None:
        """A non-persistent buffer multiplied as a weight by a per-example operator: free by the rule (derivable
        at load time: rotary tables, masks made from shapes), and listed with the report's load-time work
        (``Report.load_time``), since it holds values the forward multiplies."""
        names = ", ".join(sorted(sources))
        self.load_time.setdefault(f"{names}: a non-persistent buffer multiplied as a weight, free (not in the "
                                  "state_dict: derivable at load time; register it persistent if the model "
                                  "stores it)")

    def _register_stored(self, t: torch.Tensor, info: Any, role: str | None = None,
                         why: str = "") -> StoredTensor | None:
        """Record the stored tensor ``t``; ``role`` is what the reading operator makes of it (counting/roles.py),
        None when unknown (then :func:`~micronet_score.counting.storage.infer_role` decides). A tensor read as a
        weight anywhere is a weight; a known role replaces the interim one."""
        value = is_value(t, role)
        t, info = self._stored_as(t, info)
        if id(t) in self.metadata and self._model_tensors.get(id(t)) is t:
            self.used_sources.update(info.sources)  # a quantized weight's scale or zero point
            return None
        key = self._key(t, info)
        self.stored_reads[key] = self.stored_reads.get(key, 0) + 1
        parts = t.is_complex()
        if parts:  # a complex value is stored as its two real parts (spec section 3, complex arithmetic)
            t = torch.view_as_real(t.resolve_conj())
        entry = self.stored.get(key)
        if entry is None:
            owner = self._owner(info.sources)
            # (figures learnt earlier count complex elements: the parts are measured here)
            nonzeros, finite = (None, None) if parts else (self._nonzeros.get(key), self._finite.get(key))
            if nonzeros is None and finite is None and self.reads is not None and not parts:
                read = self.reads.get(t)  # read with the model's other small tensors
                if read is not None:
                    nonzeros, finite = (t.numel() if read[0] else None), read[1]
            stats = measure(t, self.mask_policy, nonzeros, finite, role)
            if stats.nonzeros is None:
                self.nonzeros_known = False
            entry = StoredTensor(self._label(t, info), owner, tuple(t.shape),
                                 self.stored_bits(t, info, owner), stats,
                                 why or f"not classified by the engine: {stats.role} by its {t.dim()} dimension(s)",
                                 value)
            self.stored[key] = entry
        elif role is not None and (not why_known(entry) or (role == "weight" and entry.stats.role != "weight")):
            entry.stats = measure(t, self.mask_policy, entry.stats.nonzeros, entry.stats.finite, role)
            entry.why, entry.value = why, value or entry.value
        self.used_sources.update(info.sources)
        return entry

    def _stored_as(self, t: torch.Tensor, info: Any) -> tuple[torch.Tensor, Any]:
        """A view or copy of a stored tensor is stored as that tensor (unless a fake quant changed its width)."""
        if info.root is not None:
            root_info = self._static_info(info.root)
            if root_info is not None and (root_info.bits == info.bits or info.bits is None):
                return info.root, root_info
        return t, info

    def _stored_key(self, t: torch.Tensor, info: Any) -> Any:
        """The key of ``self.stored`` under which reading ``t`` registers it."""
        return self._key(*self._stored_as(t, info))

    def channel_stats(self, t: torch.Tensor, dim: int) -> ChannelStats:
        """Non-zeros of ``t`` per index along ``dim`` (dense figures when they are unknown or dynamic)."""
        name = self.tensor_names.get(id(t))
        if name is not None and self._model_tensors.get(id(t)) is t:  # a parameter or buffer measured before
            cached = self._stats_cache.get((name, dim))
            if cached is not None and t not in self.dep:
                return cached
        channels = t.shape[dim] if t.dim() else 1
        length = t.numel() // max(channels, 1)
        dense = ChannelStats(channels * length, channels * max(length - 1, 0), channels)
        if t in self.dep:
            return dense
        info = self._static_info(t)
        if info is None or not info.sources:
            return dense
        if t.is_meta:
            self.nonzeros_known = False
            return dense
        tkey = self._key(t, info)
        key = (tkey, dim)
        cached = self._stats_cache.get(key)
        if cached is None:
            values = integer_values(t) if t.is_quantized else t
            probed = self._probed.get(tkey)
            if probed is None:
                read = self.reads.get(values) if self.reads is not None else None
                if read is None and values is t and info.root is not None and self.reads is not None and \
                        same_elements(t, info.root):  # a linear layer's w.t(): the weight read at the start
                    read = self.reads.get(info.root)
                if read is None:
                    read = probe(values)
                    if self.reads is not None and values is t and self._model_tensors.get(id(t)) is t:
                        self.reads.remember(t, read)  # a parameter or buffer: valid for a second attempt
                probed = self._probed[tkey] = read
            zero_free, finite = probed
            self._finite[tkey] = finite
            if zero_free:  # the common case: one read of the weight, no per-channel pass
                cached = dense
            else:
                if values.dim() <= 1:
                    z = (values.reshape(-1) != 0).to(torch.int64)
                else:
                    z = count_nonzero(values, dim % values.dim(), finite=finite)
                total = int(z.sum())
                cached = dense if total == channels * length else \
                    ChannelStats(total, int((z - 1).clamp_min(0).sum()), int((z > 0).sum()))
            self._stats_cache[key] = cached
            self._nonzeros[tkey] = cached.nonzeros
            if info.root is not None and not t.is_quantized:  # a transpose or reshape of a stored tensor
                root_info = self._static_info(info.root)
                if root_info is not None and (root_info.bits == info.bits or info.bits is None) and \
                        same_elements(t, info.root):
                    rkey = self._key(info.root, root_info)
                    self._nonzeros.setdefault(rkey, cached.nonzeros)
                    self._finite.setdefault(rkey, finite)
        return cached


def same_elements(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``a`` and ``b`` cover exactly the same memory elements (a transpose, permutation or reshape of
    one another), so their non-zeros and finiteness are the same."""
    if a.dtype != b.dtype or a.numel() != b.numel() or a.device != b.device or a.is_meta or b.is_meta or \
            a.layout != torch.strided or b.layout != torch.strided:
        return False
    return a.data_ptr() == b.data_ptr() and _dense(a) and _dense(b)


def _dense(t: torch.Tensor) -> bool:
    """No gap and no overlap between the elements of ``t`` (some permutation of its dimensions is contiguous)."""
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


_OWNERS: dict[frozenset[str], str | bool] = {}  # sources -> their one owning module, False when several


def why_known(entry: StoredTensor) -> bool:
    """Whether the entry's role came from an operator the engine knows (not the interim rule)."""
    return not entry.why.startswith("not classified")


def canonical_name(source: str) -> str:
    """``conv.weight_orig``/``conv.weight_mask`` (torch.nn.utils.prune) and
    ``conv.parametrizations.weight.original`` (torch.nn.utils.parametrize) -> ``conv.weight``."""
    if ".parametrizations." in f".{source}":
        head, _, tail = f".{source}".partition(".parametrizations.")
        param = tail.split(".")[0]
        return f"{head[1:]}.{param}" if head[1:] else param
    base, _, leaf = source.rpartition(".")
    for suffix in ("_orig", "_mask"):
        if leaf.endswith(suffix):
            leaf = leaf[: -len(suffix)]
            break
    return f"{base}.{leaf}" if base else leaf


def inner_tensors(t: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors inside a traceable tensor subclass (torchao's quantized weights), recursively."""
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is None or type(t) in (torch.Tensor, torch.nn.Parameter):
        return []
    try:
        names, _ = flatten()
    except Exception:  # pragma: no cover - subclasses that cannot flatten
        return []
    found: list[torch.Tensor] = []
    for name in names:
        inner = getattr(t, name, None)
        if isinstance(inner, torch.Tensor):
            found.extend(inner_tensors(inner) or [inner])
    return found
