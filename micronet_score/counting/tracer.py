"""The tracer: a TorchDispatchMode that sees every aten operator of one forward pass and records one
:class:`Event` per costed operator and one :class:`StoredTensor` per distinct stored tensor; the engine turns
those into a report.

Each concern lives in its own file and joins the tracer as a mixin: module attribution (``attribution``),
taint tracking (``taint``), stored tensors (``stored``), bit sources (``bit_sources``), packed parameters
(``packed``), meta execution (``meta``), in-place protection (``inplace``), batch-norm fold bookkeeping
(``batchnorm``) and the SDPA path (``sdpa``). This file holds only the dispatch hook that ties them together.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, NamedTuple, NoReturn

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from micronet_score.counting import costs as _costs  # noqa: F401  (fills the registry)
from micronet_score.counting.attribution import Attribution
from micronet_score.counting.batchnorm import AFFINE_OPS, BatchNormUse, FoldBookkeeping, FoldTarget
from micronet_score.counting.bit_sources import BitSources
from micronet_score.counting.complex_values import complex_cost, has_complex_price, part_bits
from micronet_score.counting.events import Event
from micronet_score.counting.idmap import IdMap
from micronet_score.counting.inplace import InPlaceGuard
from micronet_score.counting.meta import MetaExecution
from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.origin import OriginTracking
from micronet_score.counting.packed import PackedParams
from micronet_score.counting.registry import (
    CostEntry,
    FakeQuantEntry,
    OpCall,
    aten,
    fake_quant,
    is_dequantize,
    is_free,
    lookup,
    op_name,
)
from micronet_score.counting.roles import operand_role, packed_role
from micronet_score.counting.sdpa import AttentionMode, AttentionPath
from micronet_score.counting.stored import StoredTensor, StoredTensors, canonical_name
from micronet_score.counting.taint import TaintTracking
from micronet_score.counting.walk import out_tensors, tensors_in
from micronet_score.errors import (
    ComplexTensorError,
    CountingError,
    InputError,
    MicronetError,
    UnsupportedOpError,
)

__all__ = ["AttentionMode", "BatchNormUse", "Event", "FoldTarget", "IdMap", "StoredTensor", "Tracer",
           "canonical_name"]


_INF = float("inf")
_OVERWRITES = frozenset(getattr(aten, name) for name in ("copy_", "fill_", "zero_"))


def _complex(tensors: list[torch.Tensor]) -> bool:
    for t in tensors:  # noqa: SIM110 - a plain loop: no generator object per operator call
        if t.is_complex():
            return True
    return False


def _may_be_packed(schema_type: str) -> bool:
    """True for an argument type that can hold a torch.ao packed-parameters object."""
    return "torch.classes" in schema_type or schema_type in ("Any", "AnyClassType")


class OpInfo(NamedTuple):
    """What the tracer needs to know about one operator overload, looked up once per count."""

    packet: Any
    name: str
    entry: CostEntry | None  # this count's cost (overrides first), None when it has none
    fake_quant: FakeQuantEntry | None
    free: bool
    writes: tuple[int, ...]  # positions of the arguments it writes into (in-place and out= operators)
    overwrites: bool  # it replaces every value of what it writes (out=, copy_, fill_, zero_); else a part may stay
    packed: bool  # it may take torch.ao packed parameters (an argument of a script-object or Any type)
    output_bits: bool  # its outputs' width needs working out (fake quant, dequantize, no cost)


class Tracer(Attribution, TaintTracking, StoredTensors, BitSources, PackedParams, MetaExecution, InPlaceGuard,
             FoldBookkeeping, AttentionPath, OriginTracking, TorchDispatchMode):
    """Records costs of one forward pass. Use through :func:`micronet_score.count`."""

    cost_table: dict[Any, CostEntry] = {}  # this count's cost overrides (counting/overrides.py); never mutated

    def __init__(
        self,
        index: ModelIndex,
        precision_of: Any,
        strict: bool = False,
        mask_policy: str = "cheaper",
        shapes_only: bool = False,
    ) -> None:
        TorchDispatchMode.__init__(self)
        self.strict = strict
        self.mask_policy = mask_policy
        self.precision_of = precision_of  # module name -> Precision | None
        self.user_bits = getattr(precision_of, "__name__", "") != "no_bits"
        self._init_meta(shapes_only)
        self._init_attribution(index)
        self._init_stored(index)
        self._init_taint()
        self._init_packed()
        self._init_inplace()
        self._init_origin()
        self.events: list[Event] = []
        self.consumers: list[int] = []  # per event: how many costed operators read its output
        self.unsupported: dict[str, Counter[str]] = defaultdict(Counter)
        self.activation_widths: set[int] = set()
        self._ops: dict[Any, OpInfo] = {}

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # torch would wrap __torch_dispatch__ in torch._disable_dynamo: two frames per operator

    def _op_info(self, func: Any) -> OpInfo:
        packet = func.overloadpacket
        writes = tuple(i for i, a in enumerate(func._schema.arguments)
                       if a.alias_info is not None and a.alias_info.is_write)
        self._mutable[func] = writes
        entry, fq = self.cost_table.get(packet) or lookup(packet), fake_quant(packet)
        packed = any(_may_be_packed(str(a.type)) for a in func._schema.arguments)
        overwrites = packet in _OVERWRITES or all(func._schema.arguments[i].kwarg_only for i in writes)
        info = OpInfo(packet, op_name(func), entry, fq, is_free(packet), writes, overwrites, packed,
                      entry is None or fq is not None or is_dequantize(packet) or entry.kind == "write")
        self._ops[func] = info
        return info

    # ----------------------------------------------------------------- the dispatch hook
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = self._ops.get(func) or self._op_info(func)
        tensors = tensors_in(args, kwargs)
        if op.writes:
            self._protect_model_tensors(func, args, kwargs)
        if self._suppress:
            if self.shapes_only or (tensors and all(t.is_meta for t in tensors)):
                return self._run_shapes(func, args, kwargs)
            return func(*args, **kwargs)
        get = self.dep.get
        infos = [get(t) for t in tensors]  # per tensor: (producer, bits) when it depends on the inputs
        if self.shapes_only and any(i is not None for i in infos):
            out = self._run_shapes(func, args, kwargs)
        elif tensors and all(t.is_meta for t in tensors):
            out = self._run_meta(func, args, kwargs)
        else:
            out = func(*args, **kwargs)
        try:
            self._account(func, op, args, kwargs, tensors, infos, out)
        except MicronetError:
            raise
        except Exception as exc:  # our own bookkeeping failed: say so, do not blame the model
            raise CountingError(op.name, self.module, exc) from exc
        return out

    def _account(self, func, op: OpInfo, args, kwargs, tensors, infos, out) -> None:
        dep = self.dep
        if self.exported:  # input values left torch: a tensor from nowhere brings them back
            self._adopt_unknown(tensors)
            infos = [dep.get(t) for t in tensors]
        tainted = [i for i in infos if i is not None]
        if not tainted:
            self._static_op(func, args, tensors, out)
            return
        module = self.stack[-1]
        entry, fq = op.entry, op.fake_quant
        if entry is None and fq is None and not op.free:
            if self.strict:
                raise UnsupportedOpError(op.name, module)
            self.unsupported[module][op.name] += 1
        statics = [t for t, i in zip(tensors, infos) if i is None] if len(tainted) < len(infos) else []
        packed = self.unpack_args(func, args) if op.packed and self._has_packed(args) else ()
        for weight, bias in packed:
            statics.append(weight)
            tensors.append(weight)
            if bias is not None:
                statics.append(bias)
                tensors.append(bias)
        producer = -1
        if entry is not None:
            producer = self._costed(func, op, entry, args, kwargs, out, tensors, packed, module)
        if fq is not None:
            for t in statics:  # scale, zero point, observer state: the format's metadata, not stored values
                info = self._static_info(t)
                if info is not None:
                    self.used_sources.update(info.sources)
        elif entry is None or entry.kind != "batchnorm":
            for t in statics:
                info = self._static_info(t)
                if info is not None and info.sources:
                    self._register_read(t, info, *self._role(func, args, t, packed))
        if op.output_bits:
            moved = entry is None or (producer >= 0 and not self.events[producer].mults
                                      and not self.events[producer].adds)  # an indexed write that only moved
            # the destination's own values count unless every one of them is replaced (spec section 2)
            written = (lambda t: self._written(func, t, args, kwargs)) if op.writes and op.overwrites else None
            bits = self._output_bits(op.packet, tensors, infos, entry, fq, args, out, moved, written)
        else:
            bits = None
        if op.packet is aten.unsqueeze and tainted[0][0] == -1 and args[1] == 0 and tensors[0] in self.inputs:
            self.unbatched = True  # the model batches its own input: each input is one example
        if entry is None and len(tainted) == 1:
            producer = tainted[0][0]  # a view or copy keeps pointing at the real producer
        else:
            consumers = self.consumers
            for p in {i[0] for i in tainted}:
                if p >= 0:
                    consumers[p] += 1
        if isinstance(out, torch.Tensor):
            dep[out] = (producer, bits)
        else:
            self._mark(out, producer, bits)
        if statics and op.writes:
            for t in statics:  # in-place writes of input-dependent values into another tensor
                if self._written(func, t, args, kwargs):
                    base = getattr(t, "_base", None)
                    if base is not None:  # the values of the base outside the view keep their width
                        dep[base] = (producer, bits if bits is None or base.numel() == t.numel()
                                     else self._kept_bits(bits, base))
                    dep[t] = (producer, bits)

    @staticmethod
    def _has_packed(args: tuple) -> bool:
        """True when an argument is a ScriptObject (torch.ao packed parameters among them)."""
        for a in args:  # noqa: SIM110 - a plain loop: no generator object per operator call
            if isinstance(a, torch.ScriptObject):
                return True
        return False

    @staticmethod
    def _role(func, args, t, packed) -> tuple[str | None, str]:
        """What ``t`` is to ``func`` (counting/roles.py): weight, vector, or None when the engine cannot tell."""
        for weight, bias in packed:
            if t is weight or t is bias:
                return packed_role(t is weight)
        return operand_role(func, args, t)

    def _refuse_complex(self, op: OpInfo, module: str) -> NoReturn:
        kind = self.module_types.get(module, "?")
        where = f"module '{module}' ({kind})" if module else "the root module"
        raise ComplexTensorError(
            f"operator '{op.name}' in {where} computes on complex tensors, and micronet-score has no complex "
            "price for it (priced: add, sub, mul, div, abs, exp, polar, powers 1-4, matrix products, sums, FFTs); count a "
            "real-valued version of that step (real and imaginary parts as separate channels)", module=module)

    def _costed(self, func, op: OpInfo, entry: CostEntry, args, kwargs, out, tensors, packed, module: str) -> int:
        complex_values = _complex(tensors) or (
            out.is_complex() if isinstance(out, torch.Tensor) else _complex(out_tensors(out)))
        if complex_values and not has_complex_price(op.packet):
            self._refuse_complex(op, module)
        call = OpCall(args, kwargs, out, self.channel_stats, self.is_static, self.unpack)
        cost = entry.fn(call)
        if complex_values:  # spec section 3: complex arithmetic in real operations (counting/complex_values.py)
            priced = complex_cost(op.packet, entry, call, cost)
            if priced is None:
                self._refuse_complex(op, module)
            cost = priced
        if not (0 <= cost.mults < _INF and 0 <= cost.adds < _INF) or (
                cost.mult_bits is not None and not (type(cost.mult_bits) is int and 1 <= cost.mult_bits <= 64)):
            raise InputError(f"the cost function of operator '{op.name}' ({getattr(entry.fn, '__qualname__', '?')}) "
                             f"returned {cost!r}: counts are finite numbers >= 0 and mult_bits None or a width in "
                             "1..64")
        if cost.mult_bits is not None:
            mult_bits = cost.mult_bits
        else:
            if entry.mult_operands is None:
                operands = tensors
            else:
                operands = [args[i] for i in entry.mult_operands
                            if i < len(args) and isinstance(args[i], torch.Tensor)]
            if packed:
                operands = [*operands, *(w for w, _ in packed)]
            mult_bits = 0
            for t in operands:
                b = self.tensor_bits(t, module)
                if complex_values:
                    b = part_bits(t, b)  # a complex multiply multiplies its parts
                if b > mult_bits:
                    mult_bits = b
            mult_bits = mult_bits or 32
        self._note_quantized_inputs(tensors, module)
        event = Event(module, op.name, int(cost.mults), int(cost.adds), mult_bits)
        if entry.kind in ("conv", "linear"):
            event.fold = self._fold_target(entry.kind, args, out, module)
        elif entry.kind == "batchnorm":
            event.batchnorm = self._batchnorm_use(func, args, kwargs, module)
        elif op.packet in AFFINE_OPS:
            event.affine = self._channel_affine(op.packet, args, out)
        self.events.append(event)
        self.consumers.append(0)
        return len(self.events) - 1
