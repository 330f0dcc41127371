"""From what the tracer saw to a :class:`~micronet_score.report.Report`: batch norms decided, the freebie
applied, stored tensors priced, events summed per module, counts divided per example."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from micronet_score.bits import FREEBIE_BITS, weigh
from micronet_score.convention import Convention
from micronet_score.counting.batchnorm import fold
from micronet_score.counting.events import Event
from micronet_score.counting.storage import price
from micronet_score.counting.tracer import Tracer
from micronet_score.report import LayerRow, OperatorRow, Report, TensorRow


@dataclass
class _LayerTotals:
    """One module's running totals while the report is built (whole batch; divided per example at the end)."""

    params: int = 0
    nonzero: int = 0
    nonzero_known: bool = True
    mask_bits: int = 0
    storage: float = 0.0
    mults: int = 0
    adds: int = 0
    ops: float = 0.0
    param_bits: set[int] = field(default_factory=set)
    mult_bits: set[int] = field(default_factory=set)
    add_bits: set[int] = field(default_factory=set)


def _role_name(s: Any) -> str:
    """``weight``, ``vector`` or ``mask/index`` (a stored tensor that holds no quantized values)."""
    return s.stats.role if s.value else "mask/index"


def per_example(total: float, batch: int) -> float:
    """``total / batch``, as an int when it is a whole number."""
    value = total / batch
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def build_report(model: torch.nn.Module, tracer: Tracer, conv: Convention, batch: int,
                 inputs: list[torch.Tensor], output: Any) -> Report:
    """The report of one traced forward over ``batch`` examples."""
    warnings: list[str] = []
    folded = fold(tracer, conv, warnings)  # first: a folded frozen norm's tensors leave tracer.stored
    stored = list(tracer.stored.values()) + folded
    events: list[Event] = tracer.events
    # masks and indices (counting/roles.py) are not quantized values: they never switch the freebie off
    widths = {s.bits for s in stored if s.value} | {e.mult_bits for e in events if e.mults} | \
        tracer.activation_widths
    if conv.freebie is None:
        freebie = bool(widths) and min(widths) >= FREEBIE_BITS
    else:
        freebie = conv.freebie

    def eff(b: int) -> int:
        return min(b, FREEBIE_BITS) if freebie else b

    acc = conv.accumulator_bits
    rows: dict[str, _LayerTotals] = {}

    def row(name: str) -> _LayerTotals:
        r = rows.get(name)
        if r is None:
            r = rows[name] = _LayerTotals()
        return r

    tensor_rows: list[TensorRow] = []
    seen_labels: Counter[str] = Counter()
    params_by_bits: Counter[int] = Counter()
    order = {name: i for i, name in enumerate(tracer.module_types)}
    stored.sort(key=lambda s: (order.get(s.module, len(order)), s.label))  # the same whatever path ran
    policy = conv.mask_policy
    zero_weights: list[str] = []
    for s in stored:
        b = eff(s.bits) if s.value else s.bits  # a mask or index is stored at its own width
        priced = price(s.stats, b, policy)
        r = row(s.module)
        r.params += s.stats.numel
        if s.stats.nonzeros is None:
            r.nonzero_known = False
        else:
            r.nonzero += s.stats.nonzeros
        r.mask_bits += priced.mask_bits
        r.storage += priced.storage
        r.param_bits.add(b)
        params_by_bits[b] += s.stats.numel
        if not s.stats.finite:
            warnings.append(f"{s.label} holds NaN or Inf values")
        if s.value and s.stats.role == "weight" and s.stats.nonzeros == 0 and s.stats.numel:
            zero_weights.append(s.label)
        seen_labels[s.label] += 1
        label = s.label if seen_labels[s.label] == 1 else f"{s.label} (derived {seen_labels[s.label]})"
        tensor_rows.append(TensorRow(label, s.module, s.shape, s.stats.numel, s.stats.nonzeros, b,
                                     priced.values, priced.mask_bits, priced.block, priced.storage,
                                     s.stats.finite, _role_name(s), priced.format,
                                     f"{s.why}; {priced.reason}" if s.why else priced.reason))
    if zero_weights:  # spec section 3: counted as removed, and said, so a fresh model is not taken for a trained one
        warnings.append(f"{len(zero_weights)} weight(s) entirely zero, counted as removed (a fresh model's "
                        f"zero-initialised layers, or layers emptied by pruning): {', '.join(zero_weights)}")
    mults_by_bits: Counter[int] = Counter()
    adds_total = 0
    per_op: dict[str, list[int]] = {}  # operator -> [mults, adds, calls]
    cap = FREEBIE_BITS if freebie else None
    for e in events:  # the loop every costed operator call goes through: lookups kept local
        mults, adds = e.mults, e.adds
        op = per_op.get(e.op)
        if op is None:
            op = per_op[e.op] = [0, 0, 0]
        op[0] += mults
        op[1] += adds
        op[2] += 1
        r = rows.get(e.module) or row(e.module)
        r.mults += mults
        r.adds += adds
        mb = e.mult_bits if cap is None or e.mult_bits < cap else cap
        r.ops += weigh(mults, mb) + weigh(adds, acc)
        if mults:
            r.mult_bits.add(mb)
            mults_by_bits[mb] += mults
        if adds:
            r.add_bits.add(acc)
        adds_total += adds
    for module in tracer.unsupported:
        row(module)
    layers = []
    for name in sorted(rows, key=lambda n: order.get(n, len(order))):
        r = rows[name]
        layers.append(LayerRow(
            name=name, type=tracer.module_types.get(name, "?"), calls=tracer.calls.get(name, 0 if name else 1),
            params=r.params, nonzero_params=r.nonzero if r.nonzero_known else None,
            mask_bits=r.mask_bits, param_storage=r.storage, mults=per_example(r.mults, batch),
            adds=per_example(r.adds, batch), math_ops=r.ops / batch, param_bits=tuple(sorted(r.param_bits)),
            mult_bits=tuple(sorted(r.mult_bits)), add_bits=tuple(sorted(r.add_bits)),
            unsupported=dict(tracer.unsupported.get(name, {})),
        ))
    all_sources = set(tracer.tensor_names.values())
    unused = tuple(sorted(all_sources - tracer.used_sources))
    if tracer.unsupported:
        total = sum(sum(c.values()) for c in tracer.unsupported.values())
        names = sorted({op for c in tracer.unsupported.values() for op in c})
        warnings.append(f"{total} operator call(s) have no cost and were not counted: {', '.join(names)}")
    if output is None:
        warnings.append("the forward returned None")
    warnings.extend(tracer.notes)  # counting.origin: input values taken out of torch
    nonzero_known = all(s.stats.nonzeros is not None for s in stored)
    total_mults = sum(e.mults for e in events)
    return Report(
        params=sum(s.stats.numel for s in stored),
        nonzero_params=sum(s.stats.nonzeros for s in stored) if nonzero_known else None,
        mask_bits=sum(t.mask_bits for t in tensor_rows),
        param_storage=math.fsum(t.param_storage for t in tensor_rows),
        mults=per_example(total_mults, batch),
        adds=per_example(adds_total, batch),
        math_ops=math.fsum(weigh(c, b) for b, c in mults_by_bits.items()) / batch + weigh(adds_total, acc) / batch,
        layers=tuple(layers),
        tensors=tuple(tensor_rows),
        unsupported={m: dict(c) for m, c in tracer.unsupported.items()},
        unused=unused,
        params_by_bits=dict(sorted(params_by_bits.items())),
        mults_by_bits={b: per_example(c, batch) for b, c in sorted(mults_by_bits.items())},
        adds_by_bits={acc: per_example(adds_total, batch)} if adds_total else {},
        batch_size=batch,
        input_shapes=tuple(tuple(t.shape) for t in inputs),
        convention=conv.name,
        freebie=freebie,
        accumulator_bits=acc,
        nonzeros_known=nonzero_known and tracer.nonzeros_known,
        warnings=tuple(warnings),
        model=type(model).__name__,
        by_operator={name: OperatorRow(per_example(m, batch), per_example(a, batch), calls)
                     for name, (m, a, calls) in sorted(per_op.items())},
        load_time=tuple(tracer.load_time),
    )
