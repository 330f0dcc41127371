"""Meta execution: input-dependent operators run on the meta device (shapes only, no arithmetic) while weights
stay real, so their non-zeros can still be read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from micronet_score.counting import shapes


def to_meta(value: Any, memo: dict[int, torch.Tensor] | None = None) -> Any:
    """``value`` with every tensor on the meta device; one tensor passed twice stays one tensor (a model may
    test ``query is key``)."""
    memo = {} if memo is None else memo
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = value.to("meta")
        return memo[id(value)]
    if isinstance(value, (list, tuple)):
        return type(value)(to_meta(v, memo) for v in value)
    if isinstance(value, Mapping):
        return {k: to_meta(v, memo) for k, v in value.items()}
    return value


def run_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run ``func`` on meta tensors: from the shape table when it knows the operator, else the meta kernel;
    operand dtypes the real kernel refuses raise as it would (meta kernels do not check them)."""
    shapes.check_dtypes(func, args)
    if shapes.ENABLED:
        out = shapes.compute(func, args, kwargs)
        if out is not NotImplemented:
            return out
    return func(*args, **kwargs)


class MetaExecution:
    """Mixin of the tracer: operator arguments converted to meta, each weight converted once per forward."""

    def _init_meta(self, shapes_only: bool) -> None:
        self.shapes_only = shapes_only
        self._meta_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    _run_meta = staticmethod(run_meta)

    def _run_shapes(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """``func`` on the meta device. An operator of the shape table that reads only shapes and dtypes takes
        its arguments as they are (no weight converted); any other gets meta copies."""
        fn = shapes.pure(func)
        if fn is not None:
            shapes.check_dtypes(func, args)
            return fn(*args, **kwargs)
        return run_meta(func, self._meta(args), self._meta(kwargs))

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
