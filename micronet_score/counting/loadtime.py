"""Computations on weights alone are load-time work (spec section 3, "Which tensors are parameters").

An operator that reads no input-dependent value costs nothing, and what the model stores is its *sources*:
the parameters and persistent buffers it reads. Two kinds of weight-only result:

- an elementwise, shape-keeping result of a stored tensor (a mask product, fake quantization,
  dequantization, a cast, a parametrization such as weight norm, and views that keep every element) is priced
  as the stored tensor, by the result's non-zeros and width; whatever else fed it (the mask, a norm's scale)
  costs nothing, since a deployed model stores the result;
- any other one (a table gathered with constant indices, a slice, an expanded, repeated or concatenated
  weight, a reduction, a constant sub-network) is a *load-time constant*: it stores nothing of its own, and
  each stored tensor it was computed from is priced whole, as itself, when a per-example operator reads it
  (:class:`Part`). So a parameter count never depends on the input's size or batch.

Non-persistent buffers (and tensors built from shapes, which have no source at all) are derivable at load
time: free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.counting.registry import aten

# Operators without the pointwise tag whose result keeps an operand's shape, each element mapped with at most
# per-group statistics: copies, and the parametrizations that standardize a weight (weight norm; timm's
# StdConv2d and NFNet's ScaledStdConv2d run batch_norm on the weight).
_ELEMENTWISE = frozenset(getattr(aten, n) for n in (
    "copy", "copy_", "lift_fresh_copy", "_weight_norm_interface", "native_batch_norm", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional", "_batch_norm_with_update",
    "_batch_norm_no_update", "native_layer_norm", "native_group_norm",
) if hasattr(aten, n))

_SHAPE_KEEPING: dict[Any, bool] = {}

#: At most this many operator names describe one load-time constant in the report.
MAX_WORK = 6


@dataclass(frozen=True)
class Part:
    """A stored tensor read by load-time work, priced whole (as itself) when a per-example operator reads the
    constant computed from it. ``tensor`` is a parameter or buffer, or an elementwise, shape-keeping result of
    some (a masked weight: priced by its non-zeros, as always). ``role`` None: the role the per-example
    operator gives the constant (an expanded or sliced weight that is then multiplied is a weight)."""

    tensor: torch.Tensor
    info: Any  # its counting.taint.Static
    role: str | None
    why: str


def elementwise(func: Any) -> bool:
    """True for an operator that maps elements one by one (torch's pointwise tag, a copy, weight norm)."""
    known = _SHAPE_KEEPING.get(func)
    if known is None:
        packet = getattr(func, "overloadpacket", func)
        tags = getattr(func, "tags", ())
        known = _SHAPE_KEEPING[func] = torch.Tag.pointwise in tags or packet in _ELEMENTWISE
    return known


def merge_parts(groups: list[tuple[Part, ...]]) -> tuple[Part, ...]:
    """The parts of ``groups``, each tensor once."""
    seen: set[int] = set()
    out: list[Part] = []
    for parts in groups:
        for p in parts:
            if id(p.tensor) in seen:
                continue
            seen.add(id(p.tensor))
            out.append(p)
    return tuple(out)


def merge_work(groups: list[tuple[str, ...]], name: str | None) -> tuple[str, ...]:
    """Operator names of the load-time work, in order met, each once, at most :data:`MAX_WORK`."""
    out: list[str] = []
    for work in groups:
        for w in work:
            if w not in out:
                out.append(w)
    if name is not None and name not in out:
        out.append(name)
    return tuple(out[:MAX_WORK])


def describe(sources: frozenset[str], work: tuple[str, ...], free: frozenset[str]) -> str:
    """One line of ``Report.load_time``: what was computed at load time, from which stored tensors."""
    stored = sorted(s for s in sources if s not in free)
    derivable = sorted(s for s in sources if s in free)
    text = ", ".join(stored) if stored else "no stored tensor"
    if derivable:
        text += f" (and non-persistent {', '.join(derivable)})"
    how = ", ".join(work) if work else "views"
    return f"{text}: {how}"


def non_persistent(modules: tuple[tuple[str, torch.nn.Module], ...]) -> set[int]:
    """Ids of the buffers that every module holding them registers as non-persistent (not in the state_dict)."""
    kept: set[int] = set()
    dropped: set[int] = set()
    for _, module in modules:
        names = module._non_persistent_buffers_set
        for key, t in module._buffers.items():
            if t is not None:
                (dropped if key in names else kept).add(id(t))
        for t in module._parameters.values():
            if t is not None:
                kept.add(id(t))
    return dropped - kept
