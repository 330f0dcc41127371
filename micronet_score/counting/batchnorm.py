"""Batch-norm folding, in one place. While tracing, a conv/linear output remembers what a following norm would
change (:class:`FoldTarget`) and an inference-mode norm remembers its tensors (:class:`BatchNormUse`). After
the forward, :func:`fold` decides each norm: folded into its producer (free; its shift becomes the producer's
bias) or kept as a per-channel affine (a stored scale and shift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from micronet_score.convention import Convention
from micronet_score.counting.registry import aten
from micronet_score.counting.storage import StorageStats, measure
from micronet_score.counting.stored import StoredTensor


@dataclass
class FoldTarget:
    """What a batch norm folding into this conv/linear output changes: one bias per active channel."""

    channels: int
    per_channel: int
    active: int
    has_bias: bool
    bits: int
    kind: str = "conv"  # "conv" (channels on dimension 1) or "linear" (channels on the last dimension)


@dataclass
class ChannelAffine:
    """A per-channel multiply (``shift`` False) or add/subtract (``shift`` True) of an input-dependent value by a
    weight-only tensor of one value per channel: half of a frozen batch norm (DETR's ``FrozenBatchNorm2d``:
    ``x * scale + bias``), kept until :func:`fold` decides whether it folds like ``nn.BatchNorm2d``."""

    producer: int  # the event that made the input-dependent operand
    shift: bool
    channels: int
    dim: int  # the channel dimension of the input-dependent operand
    ndim: int
    tensor: torch.Tensor  # the weight-only operand
    info: Any  # its counting.taint.Static


#: Operators that may be half of a frozen batch norm.
AFFINE_OPS = frozenset((aten.mul, aten.mul_, aten.add, aten.add_, aten.sub, aten.sub_))


@dataclass
class BatchNormUse:
    """A batch norm in inference mode, kept until :func:`fold` decides whether it folds."""

    producer: int
    channels: int
    tensors: tuple[torch.Tensor | None, ...]  # weight, bias, running_mean, running_var
    eps: float
    bits: int
    owner: str


class FoldBookkeeping:
    """Mixin of the tracer: the fold facts of conv/linear outputs and of batch norms."""

    def _fold_target(self, kind: str, args: tuple, out: Any, module: str) -> FoldTarget | None:
        if not isinstance(out, torch.Tensor) or out.dim() < 2:
            return None
        if kind == "conv":
            weight, bias, dim = args[1], args[2], 0
            if bool(args[6]) if len(args) > 6 else False:  # transposed: leave alone
                return None
            channels = out.shape[1]
        else:
            if out.dim() != 2:
                return None
            if len(args) == 3:  # addmm(bias, x, w_t)
                bias, weight = args[0], args[2]
            else:
                bias, weight = None, args[1]
            if weight.dim() != 2 or not self.is_static(weight):
                return None
            dim = 1
            channels = out.shape[1]
        if not self.is_static(weight):
            return None
        stats = self.channel_stats(weight, dim)
        info = self._static_info(weight)
        bits = self.stored_bits(weight, info, self._owner(info.sources)) if info else 32
        return FoldTarget(channels, out.numel() // channels, stats.active, bias is not None, bits, kind)

    def _channel_affine(self, packet: Any, args: tuple, out: Any) -> ChannelAffine | None:
        """``x * s``, ``x + s`` or ``x - s`` with ``x`` input-dependent and ``s`` a weight-only tensor holding one
        value per channel of ``x`` (priced as a stored tensor, not a load-time constant), else None."""
        if len(args) < 2 or not isinstance(args[0], torch.Tensor) or not isinstance(args[1], torch.Tensor):
            return None
        a, b = args[0], args[1]
        dep = self.dep
        if a in dep and b not in dep:
            x, s = a, b
        elif b in dep and a not in dep and packet is not aten.sub and packet is not aten.sub_:
            x, s = b, a
        else:
            return None
        producer = dep[x][0]
        if producer < 0 or not isinstance(out, torch.Tensor) or out.shape != x.shape or s.dim() > x.dim():
            return None
        info = self._static_info(s)
        if info is None or not info.sources or info.constant or info.parts:
            return None
        padded = (1,) * (x.dim() - s.dim()) + tuple(s.shape)
        dims = [k for k, n in enumerate(padded) if n != 1]
        if len(dims) != 1 or x.shape[dims[0]] != s.numel():
            return None
        return ChannelAffine(producer, packet is not aten.mul and packet is not aten.mul_, s.numel(), dims[0],
                             x.dim(), s, info)

    def _batchnorm_use(self, func: Any, args: tuple, kwargs: dict, module: str) -> BatchNormUse | None:
        x = args[0]
        packet = func.overloadpacket
        if packet is aten._native_batch_norm_legit_no_training:
            tensors = tuple(args[1:5])
            eps = args[6] if len(args) > 6 else kwargs.get("eps", 1e-5)
        else:
            if args[5] if len(args) > 5 else kwargs.get("training", False):
                for t in args[1:3]:  # training-mode statistics: only the affine weights are stored
                    if isinstance(t, torch.Tensor) and self.is_static(t):
                        self._register_read(t, self._static_info(t), "vector", "a batch-norm parameter")
                return None
            tensors = tuple(args[1:5])
            eps = args[7] if len(args) > 7 else kwargs.get("eps", 1e-5)
        producer = self.dep[x][0] if x in self.dep else -1
        bits = 32
        sources: set[str] = set()
        for t in tensors:
            if isinstance(t, torch.Tensor):
                info = self._static_info(t)
                if info is not None:
                    sources |= info.sources
        for t in tensors[:2]:
            if isinstance(t, torch.Tensor):
                info = self._static_info(t)
                if info is not None:
                    bits = self.stored_bits(t, info, module)
                    break
        self.used_sources.update(sources)
        return BatchNormUse(producer, x.shape[1], tensors, float(eps), bits, module)


def fold(tracer: Any, conv: Convention, warnings: list[str]) -> list[StoredTensor]:
    """Decide every batch norm the tracer saw: folded into its producer, or a per-channel affine. Returns the
    extra stored tensors (folded biases, affine scale/shift); NaN/Inf in a norm that leaves no tensor of its
    own is added to ``warnings``. Folding zeroes the norm's event and adds the producer's bias additions."""
    extra: list[StoredTensor] = []
    events = tracer.events
    norms = [e for e in events if e.batchnorm is not None]
    measured = _measured([e.batchnorm for e in norms])
    for event, (pair, known) in zip(norms, measured):
        bn = event.batchnorm
        producer = events[bn.producer] if bn.producer >= 0 else None
        target = producer.fold if producer is not None else None
        foldable = (conv.fold_batchnorm and target is not None and tracer.consumers[bn.producer] == 1
                    and target.channels == bn.channels)
        if foldable:
            event.mults = event.adds = 0
            stats = folded_bias(bn, pair, known)
            if not target.has_bias:
                producer.adds += target.per_channel * target.active
                target.has_bias = True
                extra.append(StoredTensor(f"{producer.module}.bias (folded {bn.owner})", producer.module,
                                          (bn.channels,), bn.bits, stats, "a folded batch norm's shift (bias)"))
            elif not stats.finite:  # merged into the producer's own bias: flag the norm itself
                warnings.append(f"{bn.owner} (folded into {producer.module}) holds NaN or Inf values")
            continue
        scale, shift = affine(bn, pair, known)
        extra.append(StoredTensor(f"{bn.owner}.scale", bn.owner, (bn.channels,), bn.bits, scale,
                                  "a batch norm's scale (not folded)"))
        extra.append(StoredTensor(f"{bn.owner}.shift", bn.owner, (bn.channels,), bn.bits, shift,
                                  "a batch norm's shift (not folded)"))
    if conv.fold_batchnorm:
        extra.extend(fold_frozen(tracer))
    return extra


def fold_frozen(tracer: Any) -> list[StoredTensor]:
    """Fold each frozen batch norm: a per-channel multiply by a weight-only tensor of a conv/linear output that
    feeds only it, then a per-channel add (or subtract) of one that feeds only the add (spec sections 2-3). Both
    cost nothing and their tensors are not stored; the producer gains a bias (C values, 1 add per output
    element) if it had none, as for ``nn.BatchNorm2d``. Returns the biases gained."""
    events = tracer.events
    shifts = {e.affine.producer: i for i, e in enumerate(events) if e.affine is not None and e.affine.shift}
    extra: list[StoredTensor] = []
    reads = dict(tracer.stored_reads)
    for i, event in enumerate(events):
        scale = event.affine
        if scale is None or scale.shift or i not in shifts or tracer.consumers[i] != 1:
            continue
        shift = events[shifts[i]].affine
        producer = events[scale.producer]
        target = producer.fold
        if target is None or tracer.consumers[scale.producer] != 1 or target.channels != scale.channels or \
                shift.channels != scale.channels or scale.dim != shift.dim or \
                scale.dim != (1 if target.kind == "conv" else scale.ndim - 1):
            continue
        event.mults = event.adds = 0
        events[shifts[i]].mults = events[shifts[i]].adds = 0
        dropped = [_unstore(tracer, reads, a.tensor, a.info) for a in (scale, shift)]
        if not target.has_bias:
            producer.adds += target.per_channel * target.active
            target.has_bias = True
            entry = dropped[1]
            stats = entry.stats if entry is not None else measure(shift.tensor, "when-zeros", role="vector")
            finite = stats.finite and (dropped[0] is None or dropped[0].stats.finite)
            extra.append(StoredTensor(
                f"{producer.module}.bias (folded {event.module or 'frozen batch norm'})", producer.module,
                (scale.channels,), entry.bits if entry is not None else target.bits,
                StorageStats(scale.channels, stats.nonzeros, stats.options, finite, "vector", False),
                "a folded frozen batch norm's shift (bias)"))
    return extra


def _unstore(tracer: Any, reads: dict[Any, int], t: torch.Tensor, info: Any) -> StoredTensor | None:
    """Forget the stored tensor a folded norm read, unless something else reads it too; returns its entry."""
    key = tracer._stored_key(t, info)
    entry = tracer.stored.get(key)
    if entry is None:
        return None
    reads[key] = reads.get(key, 1) - 1
    if reads[key] <= 0:
        del tracer.stored[key]
    return entry


def scale_shift(bn: BatchNormUse) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A norm's per-channel affine: scale gamma / sqrt(var + eps) and shift beta - mean * scale (None when its
    values are unknown or it has no running statistics)."""
    weight, bias, mean, var = bn.tensors
    if _on_meta(bn) or mean is None or var is None:
        return None
    scale = torch.rsqrt(var.float() + bn.eps)
    if weight is not None:
        scale = scale * weight.float()
    shift = -mean.float() * scale
    if bias is not None:
        shift = shift + bias.float()
    return scale, shift


Pair = tuple[torch.Tensor, torch.Tensor] | None
Known = dict[int, tuple[int, bool]]  # id of a scale or shift -> (non-zeros, finite), measured in one batch
_UNSET: Any = object()


def folded_bias(bn: BatchNormUse, pair: Pair = _UNSET, known: Known | None = None) -> StorageStats:
    """The bias a folded norm leaves (its shift), measured: zeros, and NaN/Inf in either half. ``pair`` and
    ``known``: its :func:`scale_shift` and their measures, when :func:`fold` computed them for all norms."""
    if pair is _UNSET:
        pair = scale_shift(bn)
    if pair is None:
        return StorageStats(bn.channels, None if _on_meta(bn) else bn.channels)
    scale, shift = pair
    known = known or {}
    stats = measure(shift, "when-zeros", *known.get(id(shift), (None, None)), role="vector")
    scale_finite = known[id(scale)][1] if id(scale) in known else bool(torch.isfinite(scale).all())
    finite = stats.finite and scale_finite
    return StorageStats(bn.channels, stats.nonzeros, stats.options, finite, "vector", False)


def affine(bn: BatchNormUse, pair: Pair = _UNSET, known: Known | None = None) -> tuple[StorageStats, StorageStats]:
    """Non-zeros of an unfolded norm's two stored vectors, scale and shift."""
    if pair is _UNSET:
        pair = scale_shift(bn)
    if pair is None:
        return StorageStats(bn.channels, None), StorageStats(bn.channels, None)
    known = known or {}
    return (measure(pair[0], None, *known.get(id(pair[0]), (None, None)), role="vector"),
            measure(pair[1], None, *known.get(id(pair[1]), (None, None)), role="vector"))


def _measured(norms: list[BatchNormUse]) -> list[tuple[Pair, Known]]:
    """Every norm's :func:`scale_shift` and the non-zeros and finiteness of its two vectors. Norms whose tensors
    are all float32 CPU tensors are computed together, in one concatenation (the same elementwise operations,
    so the same values) and measured through numpy, instead of about twenty small kernels per norm."""
    out: list[tuple[Pair, Known]] = [(_UNSET, {})] * len(norms)
    batch = [i for i, bn in enumerate(norms) if _batchable(bn)]
    if len(batch) > 1:
        with torch.no_grad():
            out = _measured_together(norms, batch, out)
    return [(scale_shift(bn), {}) if pair is _UNSET else (pair, known)
            for bn, (pair, known) in zip(norms, out)]


def _measured_together(norms: list[BatchNormUse], batch: list[int],
                       out: list[tuple[Pair, Known]]) -> list[tuple[Pair, Known]]:
    """:func:`_measured` for the norms at positions ``batch`` (float32 CPU vectors), in one concatenation."""
    out = list(out)
    group = [norms[i] for i in batch]
    sizes = [bn.channels for bn in group]
    var = torch.cat([bn.tensors[3] for bn in group])
    mean = torch.cat([bn.tensors[2] for bn in group])
    eps = torch.from_numpy(np.repeat(np.array([bn.eps for bn in group], dtype=np.float32), sizes))
    scale = torch.rsqrt(var + eps)
    weight = torch.cat([bn.tensors[0] if bn.tensors[0] is not None else torch.ones(n)
                        for bn, n in zip(group, sizes)])
    scale = scale * weight
    shift = -mean * scale
    bias = torch.cat([bn.tensors[1] if bn.tensors[1] is not None else torch.zeros(n)
                      for bn, n in zip(group, sizes)])
    shift = shift + bias
    starts = np.cumsum([0, *sizes[:-1]])
    stats = {}
    for name, v in (("scale", scale), ("shift", shift)):
        array = v.numpy()
        stats[name] = (np.add.reduceat(array != 0, starts).tolist(),
                       np.add.reduceat(~np.isfinite(array), starts).tolist())
    scales, shifts = scale.split(sizes), shift.split(sizes)
    for k, i in enumerate(batch):
        sc, sh = scales[k], shifts[k]
        out[i] = ((sc, sh), {id(sc): (stats["scale"][0][k], stats["scale"][1][k] == 0),
                             id(sh): (stats["shift"][0][k], stats["shift"][1][k] == 0)})
    return out


def _batchable(bn: BatchNormUse) -> bool:
    weight, bias, mean, var = bn.tensors
    if mean is None or var is None or bn.channels < 1:
        return False
    for t in bn.tensors:
        if t is not None and (type(t) not in (torch.Tensor, torch.nn.Parameter) or t.dtype != torch.float32
                              or not t.is_cpu or t.dim() != 1 or t.numel() != bn.channels):
            return False
    return True


def _on_meta(bn: BatchNormUse) -> bool:
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in bn.tensors)
