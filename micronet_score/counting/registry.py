"""One registry of small pure cost functions keyed by operator, and the explicit set of free operators.

A cost function receives an :class:`OpCall` (the arguments, the outputs and a way to ask how many non-zeros
each output channel of a stored weight has) and returns a :class:`Cost` (multiplications and additions for
that one call, for the whole batch). Operators without a cost function that are not listed as free are
reported by name as unsupported; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch._ops import OpOverload, OpOverloadPacket

from micronet_score.errors import RegistryError

aten = torch.ops.aten


class Cost(NamedTuple):
    """Raw operation counts of one call (all examples of the batch).

    ``mult_bits`` overrides the multiplication width the engine would read from the operands (for kernels
    that quantize their inputs internally, such as dynamically quantized linear layers).
    """

    mults: int = 0
    adds: int = 0
    mult_bits: int | None = None


class ChannelStats(NamedTuple):
    """Non-zeros of a weight grouped by output channel.

    ``nonzeros``: all non-zeros; ``nonzeros_minus_one``: the sum over channels of max(z - 1, 0), i.e. the
    additions one output element of each channel needs; ``active``: channels with at least one non-zero.
    """

    nonzeros: int
    nonzeros_minus_one: int
    active: int


class OpCall(NamedTuple):
    """One operator call as a cost function sees it (immutable; a named tuple, made once per costed call)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    out: Any
    channel_stats: Callable[[torch.Tensor, int], ChannelStats]
    """``channel_stats(t, dim)``: non-zeros of ``t`` per index along ``dim``; dense figures for a tensor that
    depends on the inputs or whose values are unknown (meta)."""
    is_static: Callable[[torch.Tensor], bool]
    """``is_static(t)``: True for a stored weight (or a tensor computed from weights only)."""
    unpack: Callable[[Any], tuple[torch.Tensor, torch.Tensor | None]]
    """``unpack(packed)``: (weight, bias) of a packed quantized-weight object (torch.ao quantized layers)."""

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Argument by position, falling back to keyword, then to ``default``."""
        if index < len(self.args):
            return self.args[index]
        return self.kwargs.get(name, default)


CostFn = Callable[[OpCall], Cost]


@dataclass(frozen=True)
class CostEntry:
    """A registered cost function and what it means for the rest of the engine.

    ``kind``: ``"conv"``/``"linear"`` for ops a following batch norm can fold into, ``"batchnorm"`` for
    batch norms (their parameters are accounted when folding is decided), ``"write"`` for indexed writes
    (a call that costs nothing only moved values, which keep their width, as a copy's do), ``""`` otherwise.
    ``mult_operands``: positions of the arguments that are multiplied (a bias is only added, so its width
    does not set the multiplication's); None: every tensor argument.
    """

    fn: CostFn
    kind: str = ""
    mult_operands: tuple[int, ...] | None = None


_COSTS: dict[Any, CostEntry] = {}
FREE_OPS: set[Any] = set()


def _packet(op: Any) -> Any:
    """The overload packet of ``op`` (an overload or a packet). Cheap for both: ``getattr`` on a packet for a
    name it lacks asks the dispatcher for an overload of that name (tens of microseconds)."""
    if isinstance(op, OpOverload):
        return op.overloadpacket
    if isinstance(op, OpOverloadPacket):
        return op
    return getattr(op, "overloadpacket", op)


def _packets(ops: Iterable[Any]) -> list[Any]:
    return [_packet(op) for op in ops]


def register(
    *ops: Any, kind: str = "", mult_operands: tuple[int, ...] | None = None
) -> Callable[[CostFn], CostFn]:
    """Decorator registering ``fn`` as the cost of every operator in ``ops`` (overload packets or overloads).

    Registering an operator twice, or one that is listed as free, raises
    :class:`~micronet_score.errors.RegistryError` (a ``ValueError``).

    >>> from micronet_score.counting.registry import Cost, register, aten
    >>> @register(aten.erfinv)  # doctest: +SKIP
    ... def erfinv_cost(call):
    ...     return Cost(mults=call.out.numel())
    """

    def deco(fn: CostFn) -> CostFn:
        for packet in _packets(ops):
            if packet in _COSTS or packet in FREE_OPS:
                raise RegistryError(f"operator {packet} already has a cost or is listed as free: register "
                                    "each operator once")
            _COSTS[packet] = CostEntry(fn, kind, mult_operands)
        return fn

    return deco


def register_free(*ops: Any) -> None:
    """List operators that cost nothing (views, copies, padding, creation of constants)."""
    for packet in _packets(ops):
        if packet in _COSTS:
            raise RegistryError(f"operator {packet} has a cost function; it cannot also be free")
        FREE_OPS.add(packet)


def lookup(func: Any) -> CostEntry | None:
    """The cost entry of an overload (``aten.conv2d.default``) or packet, or None."""
    return _COSTS.get(_packet(func))


def is_free(func: Any) -> bool:
    return _packet(func) in FREE_OPS


def registered_ops() -> list[str]:
    """Names of every operator with a cost function, sorted."""
    return sorted(str(p) for p in _COSTS)


def free_ops() -> list[str]:
    """Names of every operator listed as free, sorted."""
    return sorted(str(p) for p in FREE_OPS)


def op_name(func: Any) -> str:
    """Short, stable name of an operator: ``aten.convolution``."""
    name = _NAMES.get(func)
    if name is None:
        name = _NAMES[func] = str(_packet(func))
    return name


_NAMES: dict[Any, str] = {}  # operator -> its name (str() of a packet formats a new string on every call)


def maybe(name: str) -> list[Any]:
    """The aten packet called ``name`` if this torch has it (lets the tables name ops from newer releases)."""
    packet = getattr(aten, name, None)
    return [packet] if packet is not None else []


# ---------------------------------------------------------------------- bit sources
# Operators that set or keep the bit width of values rather than cost anything: three more kinds of entry.
@dataclass(frozen=True)
class FakeQuantEntry:
    """A fake-quantization operator: argument positions of ``quant_min``, ``quant_max`` and of the "enabled"
    flag (None when it has none). Its output holds values of ``range_bits(quant_min, quant_max)`` bits."""

    qmin: int
    qmax: int
    enabled: int | None = None


_FAKE_QUANT: dict[Any, FakeQuantEntry] = {}
_DEQUANTIZE: set[Any] = set()
_SAME_VALUES: set[Any] = set()


def register_fake_quant(op: Any, qmin: int, qmax: int, enabled: int | None = None) -> None:
    """Declare ``op`` a fake-quantization operator (its output width comes from its quant range)."""
    for packet in _packets([op]):
        _FAKE_QUANT[packet] = FakeQuantEntry(qmin, qmax, enabled)


def register_dequantize(*ops: Any) -> None:
    """Declare operators whose output width is the dtype width of their input (``aten.dequantize``)."""
    _DEQUANTIZE.update(_packets(ops))


def register_same_values(*ops: Any) -> None:
    """Declare operators whose output holds exactly values of their first input (views, copies, slices): a
    stored tensor seen through them is still that stored tensor."""
    _SAME_VALUES.update(_packets(ops))


def fake_quant(func: Any) -> FakeQuantEntry | None:
    """The fake-quantization entry of an operator, or None."""
    return _FAKE_QUANT.get(_packet(func))


def is_dequantize(func: Any) -> bool:
    return _packet(func) in _DEQUANTIZE


def keeps_values(func: Any) -> bool:
    """True for operators registered with :func:`register_same_values`."""
    return _packet(func) in _SAME_VALUES
