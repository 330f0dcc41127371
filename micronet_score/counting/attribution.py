"""Module attribution: global forward hooks keep a stack of running modules, so each operator is charged to
the innermost module running it. Observers (torch.ao calibration statistics) suppress counting while they run.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from micronet_score.counting.model_index import ModelIndex


class Attribution:
    """Mixin of the tracer: the module stack, calls per module, and the observer suppression depth."""

    module_names: dict[int, str]
    module_types: dict[str, str]
    stack: list[str]
    calls: Counter[str]
    _observing: list[bool]
    _suppress: int

    def _init_attribution(self, index: ModelIndex) -> None:
        self.module_names = {}
        self.module_types = {}
        for name, module in index.modules:
            self.module_names.setdefault(id(module), name)
            self.module_types.setdefault(name, type(module).__name__)
        self.stack = [""]
        self.calls = Counter()
        self._observing = []
        self._suppress = 0

    def pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        name = self.module_names.get(id(module))
        if name is None:  # a module created inside forward: charge its parent
            name = self.stack[-1]
        self.stack.append(name)
        self.calls[name] += 1
        observer = isinstance(module, observer_types())
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
        """The innermost module running now ('' for the root)."""
        return self.stack[-1]


def observer_types() -> tuple[type, ...]:
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
