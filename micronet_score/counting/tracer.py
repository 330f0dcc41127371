"""The tracer: a TorchDispatchMode that sees every aten operator of one forward pass, plus module hooks that
attribute each operator to the innermost module running it.

It tells apart tensors that depend on the inputs (their operators are the per-example inference cost) from
tensors computed from weights alone (preprocessing such as pruning-mask products or weight fake-quant, which
is free; the result is what the model stores). It records one :class:`Event` per costed operator and one
:class:`StoredTensor` per distinct stored tensor; the engine turns those into a report.
"""

from __future__ import annotations

import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from micronet_score.bits import Precision, dtype_bits, range_bits
from micronet_score.counting import costs as _costs  # noqa: F401  (fills the registry)
from micronet_score.counting import shapes
from micronet_score.counting.costs.attention import attention_cost
from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.registry import ChannelStats, OpCall, is_free, lookup, op_name
from micronet_score.counting.storage import StorageStats, count_nonzero, integer_values, measure, probe
from micronet_score.errors import CountingError, UnsupportedOpError

aten = torch.ops.aten

# Fake-quantization operators: positions of (quant_min, quant_max) and of the "enabled" flag, if any.
_FAKE_QUANT: dict[Any, tuple[int, int, int | None]] = {}
for _name, _pos in {
    "fake_quantize_per_tensor_affine": (3, 4, None),
    "fake_quantize_per_tensor_affine_cachemask": (3, 4, None),
    "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams": (4, 5, 3),
    "fake_quantize_per_channel_affine": (4, 5, None),
    "fake_quantize_per_channel_affine_cachemask": (4, 5, None),
    "_fake_quantize_learnable_per_tensor_affine": (3, 4, None),
    "_fake_quantize_learnable_per_channel_affine": (4, 5, None),
    "_fused_moving_avg_obs_fq_helper": (8, 9, 2),
}.items():
    if hasattr(aten, _name):
        _FAKE_QUANT[getattr(aten, _name)] = _pos
_DEQUANTIZE = {aten.dequantize}
# Operators whose output holds exactly the values of their (first) input: views, copies, layout changes. A
# stored tensor seen through them is still that tensor (a Linear weight is stored as (out, in), not as its
# transpose).
_SAME_VALUES = {getattr(aten, n) for n in (
    "t", "transpose", "permute", "view", "_unsafe_view", "reshape", "_reshape_alias", "expand", "unsqueeze",
    "squeeze", "alias", "detach", "clone", "contiguous", "as_strided", "lift_fresh", "_to_copy", "flatten",
    # parts of a stored tensor: the tensor is stored whole, once, however it is sliced for use
    "slice", "select", "narrow", "split", "split_with_sizes", "unbind", "chunk", "diagonal",
) if hasattr(aten, n)}


@dataclass
class FoldTarget:
    """What a batch norm folding into this conv/linear output changes: one bias per active channel."""

    channels: int
    per_channel: int
    active: int
    has_bias: bool
    bits: int


@dataclass
class BatchNormUse:
    """A batch norm in inference mode, kept until the engine decides whether it folds."""

    producer: int
    channels: int
    tensors: tuple[torch.Tensor | None, ...]  # weight, bias, running_mean, running_var
    eps: float
    bits: int
    owner: str


@dataclass
class Event:
    """One costed operator call (whole batch)."""

    module: str
    op: str
    mults: int
    adds: int
    mult_bits: int
    fold: FoldTarget | None = None
    batchnorm: BatchNormUse | None = None


@dataclass
class StoredTensor:
    """One distinct tensor the model stores (a parameter or buffer as the forward uses it)."""

    label: str
    module: str
    shape: tuple[int, ...]
    bits: int
    stats: StorageStats


@dataclass
class _Static:
    sources: frozenset[str]
    bits: int | None  # a width set by fake quantization, if any
    root: torch.Tensor | None = None  # for a view or copy of a stored tensor: that tensor


class IdMap:
    """A map keyed by tensor identity that forgets a tensor when it dies (one dict lookup per access, unlike
    WeakIdKeyDictionary, which builds a weak reference on every lookup). Values must not be None."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[int, tuple[weakref.ref, Any]] = {}

    def get(self, t: Any, default: Any = None) -> Any:
        entry = self._d.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        return default

    def __contains__(self, t: Any) -> bool:
        return self.get(t) is not None

    def __getitem__(self, t: Any) -> Any:
        value = self.get(t)
        if value is None:
            raise KeyError(t)
        return value

    def add(self, t: Any) -> None:
        self[t] = True

    def __setitem__(self, t: Any, value: Any) -> None:
        key = id(t)
        entry = self._d.get(key)
        if entry is not None and entry[0]() is t:
            self._d[key] = (entry[0], value)
            return
        table = self._d

        def forget(ref: weakref.ref, key: int = key) -> None:
            current = table.get(key)
            if current is not None and current[0] is ref:
                del table[key]

        table[key] = (weakref.ref(t, forget), value)


class Tracer(TorchDispatchMode):
    """Records costs of one forward pass. Use through :func:`micronet_score.count`."""

    def __init__(
        self,
        index: ModelIndex,
        precision_of: Any,
        strict: bool = False,
        mask_policy: str = "cheaper",
        shapes_only: bool = False,
    ) -> None:
        super().__init__()
        self.shapes_only = shapes_only
        self._meta_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.strict = strict
        self.mask_policy = mask_policy
        self.precision_of = precision_of  # module name -> Precision | None
        self.module_names: dict[int, str] = {}
        self.module_types: dict[str, str] = {}
        for name, module in index.modules:
            self.module_names.setdefault(id(module), name)
            self.module_types.setdefault(name, type(module).__name__)
        self.tensor_names: dict[int, str] = {id(t): name for name, t in index.tensors}
        self._model_tensors = {id(t): t for _, t in index.tensors}
        self.metadata: set[int] = set()  # inner tensors of quantized subclasses that are not the data
        for name, t in index.tensors:
            inner = _inner_tensors(t)
            if not inner:
                continue
            data = max(inner, key=lambda x: x.numel())  # torchao & co: the quantized values; the rest is metadata
            for x in inner:
                self.tensor_names.setdefault(id(x), name)
                self._model_tensors[id(x)] = x
                if x is not data:
                    self.metadata.add(id(x))
        self.stack: list[str] = [""]
        self.calls: Counter[str] = Counter()
        self.dep = IdMap()  # tensor -> (producer event, bits or None)
        self.static = IdMap()  # tensor -> _Static
        self.events: list[Event] = []
        self.consumers: list[int] = []
        self.stored: dict[Any, StoredTensor] = {}
        self.used_sources: set[str] = set()
        self.unsupported: dict[str, Counter[str]] = defaultdict(Counter)
        self.nonzeros_known = True
        self.activation_widths: set[int] = set()
        self.inputs = IdMap()  # the user's input tensors (value: True)
        self.unbatched = False
        self.snapshots: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._stats_cache: dict[Any, ChannelStats] = {}
        self._nonzeros: dict[Any, int] = {}  # stored-tensor key -> non-zeros, learnt from channel stats
        self._finite: dict[Any, bool] = {}
        self._suppress = 0
        self._observing: list[bool] = []
        self._packed: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._packed_objects: list[Any] = []  # keeps ids stable while the forward runs
        self._mutable: dict[Any, tuple[int, ...]] = {}

    # ----------------------------------------------------------------- module attribution
    def pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        name = self.module_names.get(id(module))
        if name is None:  # a module created inside forward: charge its parent
            name = self.stack[-1]
        self.stack.append(name)
        self.calls[name] += 1
        observer = isinstance(module, _observer_types())
        self._observing.append(observer)
        if observer:  # training-time statistics: not inference work
            self._suppress += 1

    def post_hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if len(self.stack) > 1:
            self.stack.pop()
        if self._observing and self._observing.pop():
            self._suppress -= 1

    @property
    def module(self) -> str:
        return self.stack[-1]

    # ----------------------------------------------------------------- inputs
    def mark_input(self, t: torch.Tensor) -> None:
        self.dep[t] = (-1, None)
        self.inputs.add(t)

    # ----------------------------------------------------------------- tensor facts
    def _static_info(self, t: torch.Tensor) -> _Static | None:
        name = self.tensor_names.get(id(t))
        if name is not None and self._model_tensors.get(id(t)) is t:
            return _Static(frozenset((name,)), None)
        return self.static.get(t)

    def _key(self, t: torch.Tensor, info: _Static) -> Any:
        if len(info.sources) == 1 and self.tensor_names.get(id(t)) in info.sources:
            return next(iter(info.sources))
        return (info.sources, tuple(t.shape), t.storage_offset() if not t.is_meta else 0, info.bits)

    def _owner(self, sources: frozenset[str]) -> str:
        owners = {canonical_name(s).rpartition(".")[0] for s in sources}
        if len(owners) == 1:
            return owners.pop()
        return self.module

    def _label(self, t: torch.Tensor, info: _Static) -> str:
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

    def _precision(self, module: str) -> Precision | None:
        return self.precision_of(module)

    def stored_bits(self, t: torch.Tensor, info: _Static, owner: str) -> int:
        user = self._precision(owner)
        if user is not None and user.weight is not None:
            return user.weight
        if info.bits is not None:
            return info.bits
        return dtype_bits(t.dtype)

    def _register_stored(self, t: torch.Tensor, info: _Static) -> StoredTensor | None:
        if info.root is not None:
            root_info = self._static_info(info.root)
            if root_info is not None and (root_info.bits == info.bits or info.bits is None):
                t, info = info.root, root_info
        if id(t) in self.metadata and self._model_tensors.get(id(t)) is t:
            self.used_sources.update(info.sources)  # a quantized weight's scale or zero point
            return None
        key = self._key(t, info)
        entry = self.stored.get(key)
        if entry is None:
            owner = self._owner(info.sources)
            stats = measure(t, self.mask_policy, self._nonzeros.get(key), self._finite.get(key))
            if stats.nonzeros is None:
                self.nonzeros_known = False
            entry = StoredTensor(self._label(t, info), owner, tuple(t.shape),
                                 self.stored_bits(t, info, owner), stats)
            self.stored[key] = entry
        self.used_sources.update(info.sources)
        return entry

    def tensor_bits(self, t: torch.Tensor, module: str) -> int:
        """Width of an operand of an operator running in ``module``."""
        dep = self.dep.get(t)
        if dep is not None:
            user = self._precision(module)
            if user is not None and user.activation is not None:
                return user.activation
            return dep[1] if dep[1] is not None else dtype_bits(t.dtype)
        info = self._static_info(t)
        if info is not None and info.root is not None and info.bits is None:
            root_info = self._static_info(info.root)
            if root_info is not None:
                t, info = info.root, root_info
        if info is not None and info.sources:
            entry = self.stored.get(self._key(t, info))
            return entry.bits if entry is not None else self.stored_bits(t, info, self._owner(info.sources))
        if info is not None and info.bits is not None:
            return info.bits
        return dtype_bits(t.dtype)

    def channel_stats(self, t: torch.Tensor, dim: int) -> ChannelStats:
        """Non-zeros of ``t`` per index along ``dim`` (dense figures when they are unknown or dynamic)."""
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
            zero_free, finite = probe(values)
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
        return cached

    def unpack(self, packed: Any, bits: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) of a torch.ao packed-parameters object, registered as stored tensors of the module
        that runs it (unpacked once per object)."""
        found = self._packed.get(id(packed))
        if found is None:
            weight, bias = packed.unpack()[:2]
            module = self.module
            self.static[weight] = _Static(frozenset((f"{module}.weight" if module else "weight",)), bits)
            if bias is not None:
                self.static[bias] = _Static(frozenset((f"{module}.bias" if module else "bias",)), None)
            found = (weight, bias)
            self._packed[id(packed)] = found
            self._packed_objects.append(packed)
        return found

    def is_static(self, t: torch.Tensor) -> bool:
        if t in self.dep:
            return False
        info = self._static_info(t)
        return info is not None and bool(info.sources)

    # ----------------------------------------------------------------- the dispatch hook
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = _tensors(args, kwargs)
        self._protect_model_tensors(func, args, kwargs)
        if self._suppress:
            if self.shapes_only or (tensors and all(t.is_meta for t in tensors)):
                return self._run_meta(func, self._meta(args), self._meta(kwargs))
            return func(*args, **kwargs)
        if self.shapes_only and any(t in self.dep for t in tensors):
            out = self._run_meta(func, self._meta(args), self._meta(kwargs))
        elif tensors and all(t.is_meta for t in tensors):
            out = self._run_meta(func, args, kwargs)
        else:
            out = func(*args, **kwargs)
        try:
            self._account(func, args, kwargs, tensors, out)
        except UnsupportedOpError:
            raise
        except Exception as exc:  # our own bookkeeping failed: say so, do not blame the model
            raise CountingError(op_name(func), self.module, exc) from exc
        return out

    @staticmethod
    def _run_meta(func, args, kwargs) -> Any:
        """Run ``func`` on meta tensors: from the shape table when it knows the operator, else the meta kernel."""
        if shapes.ENABLED:
            out = shapes.compute(func, args, kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)

    def _meta(self, value: Any) -> Any:
        """``value`` with every tensor on the meta device (weights converted once and cached)."""
        if isinstance(value, torch.Tensor):
            if value.is_meta:
                return value
            cached = self._meta_cache.get(id(value))
            if cached is None or cached[0] is not value:
                cached = (value, value.to("meta"))
                self._meta_cache[id(value)] = cached
            return cached[1]
        if isinstance(value, (list, tuple)):
            if not any(isinstance(v, (torch.Tensor, list, tuple, dict)) for v in value):
                return value  # sizes, strides, flags: nothing to convert
            return type(value)(self._meta(v) for v in value)
        if isinstance(value, dict):
            return {k: self._meta(v) for k, v in value.items()} if value else value
        return value

    def _account(self, func, args, kwargs, tensors, out) -> None:
        dep = self.dep
        infos = [dep.get(t) for t in tensors]
        tainted = [i for i in infos if i is not None]
        if not tainted:
            self._static_op(func, args, tensors, out)
            return
        module = self.stack[-1]
        packet = func.overloadpacket
        entry = lookup(packet)
        fq = _FAKE_QUANT.get(packet)
        if entry is None and fq is None and not is_free(packet):
            name = op_name(func)
            if self.strict:
                raise UnsupportedOpError(name, module)
            self.unsupported[module][name] += 1
        statics = [t for t, i in zip(tensors, infos) if i is None]
        packed = [self.unpack(a, 16 if "fp16" in packet.__name__ else None)
                  for a in args if isinstance(a, torch.ScriptObject) and _is_packed(a)]
        for weight, bias in packed:
            statics.append(weight)
            tensors.append(weight)
            if bias is not None:
                statics.append(bias)
                tensors.append(bias)
        producer = -1
        if entry is not None:
            producer = self._costed(func, entry, args, kwargs, out, tensors, packed, module)
        if fq is not None:
            for t in statics:  # scale, zero point, observer state: the format's metadata, not stored values
                info = self._static_info(t)
                if info is not None:
                    self.used_sources.update(info.sources)
        elif entry is None or entry.kind != "batchnorm":
            for t in statics:
                info = self._static_info(t)
                if info is not None and info.sources:
                    self._register_stored(t, info)
        bits = self._output_bits(packet, tensors, tainted, entry, fq, args)
        producers = {i[0] for i in tainted}
        if packet is aten.unsqueeze and tainted[0][0] == -1 and args[1] == 0 and tensors[0] in self.inputs:
            self.unbatched = True  # the model batches its own input: each input is one example
        if entry is None and len(tainted) == 1:
            producer = tainted[0][0]  # a view or copy keeps pointing at the real producer
        else:
            for p in producers:
                if p >= 0:
                    self.consumers[p] += 1
        self._mark(out, producer, bits)
        if statics and self._mutable.get(func):
            for t in statics:  # in-place writes of input-dependent values into another tensor
                if _written(func, t, args, kwargs, self._mutable):
                    dep[t] = (producer, bits)
                    base = getattr(t, "_base", None)
                    if base is not None:
                        dep[base] = (producer, bits)

    def _static_op(self, func, args, tensors, out) -> None:
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
            return
        packet = func.overloadpacket
        fq = _FAKE_QUANT.get(packet)
        root = None
        if fq is not None:
            # scale and zero point are the format's metadata: the values stored are the input's
            first = self._static_info(tensors[0])
            if first is not None and first.sources:
                self.used_sources.update(sources)
                sources = first.sources
            fq_bits = _fake_quant_bits(args, fq)
            if fq_bits is not None:
                bits = fq_bits
        elif packet in _DEQUANTIZE and tensors:
            bits = dtype_bits(tensors[0].dtype)
        elif packet in _SAME_VALUES and tensors and len(tensors) == 1:
            first = self._static_info(tensors[0])
            if first is not None:
                root = first.root if first.root is not None else tensors[0]
        for t in _out_tensors(out):
            if t in self.dep or id(t) in self.tensor_names:
                continue
            self.static[t] = _Static(sources, bits, root)

    def _costed(self, func, entry, args, kwargs, out, tensors, packed, module) -> int:
        call = OpCall(args, kwargs, out, self.channel_stats, self.is_static, self.unpack)
        cost = entry.fn(call)
        if cost.mult_bits is not None:
            mult_bits = cost.mult_bits
        else:
            if entry.mult_operands is None:
                operands = tensors
            else:
                operands = [args[i] for i in entry.mult_operands
                            if i < len(args) and isinstance(args[i], torch.Tensor)]
            operands = [*operands, *(w for w, _ in packed)]
            mult_bits = max((self.tensor_bits(t, module) for t in operands), default=32)
        self._note_quantized_inputs(tensors, module)
        event = Event(module, op_name(func), int(cost.mults), int(cost.adds), mult_bits)
        if entry.kind in ("conv", "linear"):
            event.fold = self._fold_target(entry.kind, args, out, module)
        elif entry.kind == "batchnorm":
            event.batchnorm = self._batchnorm_use(func, args, kwargs, module)
        self.events.append(event)
        self.consumers.append(0)
        return len(self.events) - 1

    def _note_quantized_inputs(self, tensors, module: str) -> None:
        """Remember the widths of quantized activations (fake-quant ranges, quantized dtypes, user settings):
        any below 16 bits means the model is quantized and the 16-bit freebie is off."""
        user = self._precision(module)
        for t in tensors:
            dep = self.dep.get(t)
            if dep is None:
                continue
            if user is not None and user.activation is not None:
                self.activation_widths.add(user.activation)
            elif dep[1] is not None:
                self.activation_widths.add(dep[1])
            elif t.is_quantized:
                self.activation_widths.add(dtype_bits(t.dtype))

    def _fold_target(self, kind: str, args, out, module) -> FoldTarget | None:
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
        return FoldTarget(channels, out.numel() // channels, stats.active, bias is not None, bits)

    def _batchnorm_use(self, func, args, kwargs, module) -> BatchNormUse | None:
        x = args[0]
        packet = func.overloadpacket
        if packet is aten._native_batch_norm_legit_no_training:
            tensors = tuple(args[1:5])
            eps = args[6] if len(args) > 6 else kwargs.get("eps", 1e-5)
        else:
            if args[5] if len(args) > 5 else kwargs.get("training", False):
                for t in args[1:3]:  # training-mode statistics: only the affine weights are stored
                    if isinstance(t, torch.Tensor) and self.is_static(t):
                        self._register_stored(t, self._static_info(t))
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

    def _output_bits(self, packet, tensors, tainted, entry, fq, args) -> int | None:
        if fq is not None:
            return _fake_quant_bits(args, fq)
        if packet in _DEQUANTIZE and tensors:
            return dtype_bits(tensors[0].dtype)
        if entry is not None:
            return None  # arithmetic produces values in its output dtype
        widths = [i[1] for i in tainted if i[1] is not None]
        return max(widths) if widths else None  # views and copies keep the width they were given

    def _mark(self, out: Any, producer: int, bits: int | None) -> None:
        for t in _out_tensors(out):
            self.dep[t] = (producer, bits)

    def _protect_model_tensors(self, func, args, kwargs) -> None:
        """Before an in-place operator writes into a parameter or buffer, keep a copy to restore afterwards."""
        positions = self._mutable.get(func)
        if positions is None:
            positions = tuple(i for i, a in enumerate(func._schema.arguments)
                              if a.alias_info is not None and a.alias_info.is_write)
            self._mutable[func] = positions
        if not positions:
            return
        schema_args = func._schema.arguments
        for i in positions:
            value = args[i] if i < len(args) else kwargs.get(schema_args[i].name)
            for t in _out_tensors(value):
                owner = self._model_tensors.get(id(t))
                if owner is t and id(t) not in self.snapshots:
                    self.snapshots[id(t)] = (t, t.detach().clone())

    def restore(self) -> None:
        """Put back every parameter or buffer an operator wrote into."""
        with torch.no_grad():
            for t, saved in self.snapshots.values():
                if t.shape != saved.shape:  # an observer resized its buffer
                    t.resize_(saved.shape)
                t.copy_(saved)
        self.snapshots.clear()

    # ----------------------------------------------------------------- SDPA as one unit
    def attention(self, func, args, kwargs) -> Any:
        q = args[0] if args else kwargs["query"]
        k = args[1] if len(args) > 1 else kwargs["key"]
        v = args[2] if len(args) > 2 else kwargs["value"]
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        tensors = [t for t in (q, k, v, mask) if isinstance(t, torch.Tensor)]
        self._suppress += 1
        try:
            if self.shapes_only:
                out = func(*self._meta(args), **self._meta(kwargs))
            else:
                out = func(*args, **kwargs)
        finally:
            self._suppress -= 1
        tainted = [t for t in tensors if t in self.dep]
        if not tainted:
            return out
        module = self.module
        for t in tensors:
            if t not in self.dep:
                info = self._static_info(t)
                if info is not None and info.sources:
                    self._register_stored(t, info)
        is_causal = bool(args[5] if len(args) > 5 else kwargs.get("is_causal", False))
        cost = attention_cost(q, k, v, mask, is_causal)
        bits = max(self.tensor_bits(t, module) for t in tensors)
        self.events.append(Event(module, "aten.scaled_dot_product_attention", cost.mults, cost.adds, bits))
        self.consumers.append(0)
        for t in tainted:
            p = self.dep[t][0]
            if p >= 0:
                self.consumers[p] += 1
        self._mark(out, len(self.events) - 1, None)
        return out


_ATTENTION = {F.scaled_dot_product_attention, torch._C._nn.scaled_dot_product_attention}


class AttentionMode(TorchFunctionMode):
    """Sends scaled_dot_product_attention to the tracer as one unit, whatever kernel the backend runs."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _ATTENTION:
            return self.tracer.attention(func, args, kwargs)
        return func(*args, **kwargs)


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


def _inner_tensors(t: torch.Tensor) -> list[torch.Tensor]:
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
            found.extend(_inner_tensors(inner) or [inner])
    return found


def _observer_types() -> tuple[type, ...]:
    """torch.ao observers: modules that only gather calibration statistics."""
    global _OBSERVERS
    if _OBSERVERS is None:
        try:
            from torch.ao.quantization.observer import ObserverBase

            _OBSERVERS = (ObserverBase,)
        except ImportError:  # pragma: no cover
            _OBSERVERS = ()
    return _OBSERVERS


_OBSERVERS: tuple[type, ...] | None = None


def _is_packed(obj: Any) -> bool:
    try:
        return bool(obj._has_method("unpack"))
    except Exception:  # pragma: no cover - ScriptObjects of other kinds
        return False


def _fake_quant_bits(args, positions: tuple[int, int, int | None]) -> int | None:
    qmin_pos, qmax_pos, enabled_pos = positions
    if enabled_pos is not None and enabled_pos < len(args):
        flag = args[enabled_pos]
        if isinstance(flag, torch.Tensor) and not flag.is_meta and not bool(flag.reshape(-1)[0]):
            return None
    if qmax_pos >= len(args):
        return None
    return range_bits(int(args[qmin_pos]), int(args[qmax_pos]))


def _tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


def _out_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []


def _written(func, t: torch.Tensor, args, kwargs, mutable: dict) -> bool:
    positions = mutable.get(func, ())
    schema_args = func._schema.arguments
    for i in positions:
        value = args[i] if i < len(args) else kwargs.get(schema_args[i].name)
        if value is t or (isinstance(value, (list, tuple)) and any(v is t for v in value)):
            return True
    return False
