"""A map keyed by tensor identity that forgets a tensor when it dies: the tracer's bookkeeping of which tensor
depends on the inputs and where weight-only tensors come from."""

from __future__ import annotations

import weakref
from typing import Any


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
