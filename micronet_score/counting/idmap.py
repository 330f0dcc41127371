"""A map keyed by tensor identity that forgets a tensor when it dies: the tracer's bookkeeping of which tensor
depends on the inputs and where weight-only tensors come from."""

from __future__ import annotations

import weakref
from typing import Any


class IdMap:
    """A map keyed by tensor identity that never mistakes a new tensor for a dead one (one dict lookup per
    access, unlike WeakIdKeyDictionary, which builds a weak reference on every lookup). Values must not be None.

    Each entry holds a plain weak reference (the one Python keeps per object, so making it costs almost nothing)
    and is checked on every read: when a dead tensor's id is reused by a new tensor, the entry no longer
    matches and the new tensor is not found. Entries of dead tensors stay until their id is reused or the map
    is dropped: a map lives for one count."""

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
        self._d[id(t)] = (weakref.ref(t), value)
