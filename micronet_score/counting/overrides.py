"""Per-count cost overrides: ``ms.count(..., costs={op: fn})`` and a convention's ``costs`` table.

Like ``FlopCounterMode(custom_mapping=...)``: the overrides apply to the one count that receives them (the
tracer of that count holds them), never to the global registry, so another count, in this thread or another,
is unchanged. A convention's cost overrides (from a rule set's TOML file) go through the same table; the
call's ``costs`` win over the convention's.

A key is an aten operator (``torch.ops.aten.relu``, an overload such as ``aten.relu.default``, or the string
``"aten.relu"``). A value is:

- a function of an :class:`~micronet_score.counting.registry.OpCall` returning a
  :class:`~micronet_score.counting.registry.Cost`, a ``(mults, adds)`` pair or a number of mults, for the whole
  batch (as the registry's cost functions do);
- ``"free"`` or ``0``: the operator costs nothing in this count;
- a :class:`~micronet_score.convention.CostOverride` or a table ``{"mults": 1, "adds": 0, "ops": 0, "per":
  "output"}``: per element of the output (or of the first input, ``per = "input"``). Plain ``ops`` are counted
  as additions: always at the accumulator width (32 bits unless the convention says otherwise), never halved
  by the freebie, the full weight that "an operation" has in the rules.

>>> import torch, micronet_score as ms
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
>>> ms.count(model, (1, 4)).mults                      # 16 mults + 4 ReLU
20
>>> ms.count(model, (1, 4), costs={"aten.relu": "free"}).mults
16
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from micronet_score.convention import Convention, CostOverride
from micronet_score.counting.registry import Cost, CostEntry, OpCall, lookup
from micronet_score.counting.walk import out_tensors
from micronet_score.errors import InputError


def operator_key(key: Any) -> Any:
    """The overload packet named by ``key`` (a packet, an overload or a string ``"aten.relu"``)."""
    if isinstance(key, str):
        namespace, _, name = key.partition(".")
        name = name.split(".")[0]
        packet = getattr(getattr(torch.ops, namespace, None), name, None) if name else None
        if packet is None:
            raise InputError(f"costs: {key!r} names no operator; write it as \"aten.relu\" or pass "
                             "torch.ops.aten.relu")
        return packet
    packet = getattr(key, "overloadpacket", key)
    if not isinstance(packet, torch._ops.OpOverloadPacket):
        raise InputError(f"costs: keys are aten operators (torch.ops.aten.relu or \"aten.relu\"), got {key!r}")
    return packet


def _elements(call: OpCall, per: str) -> int:
    if per == "output":
        outs = out_tensors(call.out)
        return outs[0].numel() if outs else 0
    if per == "input":
        first = next((a for a in call.args if isinstance(a, torch.Tensor)), None)
        return first.numel() if first is not None else 0
    raise InputError(f"a cost override of an operator is per \"output\" or \"input\" element, not {per!r}")


def _from_override(override: CostOverride) -> Callable[[OpCall], Cost]:
    def fn(call: OpCall) -> Cost:
        n = _elements(call, override.per)
        return Cost(round(n * override.mults), round(n * (override.adds + override.ops)))
    return fn


def _from_function(key: Any, fn: Callable[[OpCall], Any]) -> Callable[[OpCall], Cost]:
    def wrapped(call: OpCall) -> Cost:
        value = fn(call)
        if isinstance(value, Cost):
            return checked_cost(value, f"costs[{key}]")
        if isinstance(value, tuple) and len(value) == 2:
            return checked_cost(Cost(*value), f"costs[{key}]")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return checked_cost(Cost(value, 0), f"costs[{key}]")
        raise InputError(f"costs[{key}] returned {value!r}: return a Cost, (mults, adds) or a number of mults")
    return wrapped


def checked_cost(cost: Any, who: str) -> Cost:
    """``cost`` with whole counts, or an InputError naming ``who`` (the function that returned it): counts are
    finite whole numbers >= 0 and ``mult_bits`` is None or a width in 1..64."""
    if not isinstance(cost, Cost):
        raise InputError(f"{who} returned {cost!r}: return a micronet_score.counting.registry.Cost")
    counts = []
    for label, value in (("mults", cost.mults), ("adds", cost.adds)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value.item())
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole or (isinstance(value, float) and value.is_integer())) or value < 0:
            raise InputError(f"{who} returned {label}={value!r}: a count of operations is a whole number >= 0")
        counts.append(int(value))
    bits = cost.mult_bits
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 64):
        raise InputError(f"{who} returned mult_bits={bits!r}: a width is a whole number of bits in 1..64 (or "
                         "None to read it from the operands)")
    return Cost(counts[0], counts[1], bits)


def _entry(key: Any, packet: Any, value: Any) -> CostEntry:
    base = lookup(packet)
    kind, operands = (base.kind, base.mult_operands) if base is not None else ("", None)
    if isinstance(value, CostOverride):
        fn = _from_override(value)
    elif callable(value):
        fn = _from_function(key, value)
    elif value == "free" or value == 0 or isinstance(value, Mapping):
        fn = _from_override(CostOverride.parse(str(packet), value))
    else:
        raise InputError(f"costs[{key!r}]: expected a function of OpCall, \"free\" or a table like "
                         f"{{\"mults\": 1, \"adds\": 0}}, got {value!r}")
    return CostEntry(fn, kind, operands)


def cost_table(convention: Convention, costs: Mapping[Any, Any] | None) -> dict[Any, CostEntry]:
    """The overrides one count uses: the convention's (operator attribution), then the call's ``costs``."""
    if costs is not None and not isinstance(costs, Mapping):
        raise InputError(f"costs must be a mapping operator -> cost function, got {type(costs).__name__}")
    table: dict[Any, CostEntry] = {}
    if convention.attribution == "operators":
        for override in convention.costs:
            packet = operator_key(override.target)
            table[packet] = _entry(override.target, packet, override)
    for key, value in (costs or {}).items():
        packet = operator_key(key)
        table[packet] = _entry(key, packet, value)
    return table
