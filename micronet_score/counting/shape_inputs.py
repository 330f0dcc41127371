"""Inputs given as shapes: counted on the meta device (no memory for activations), drawn as real random
values only when the forward needs them, and then only up to a size limit, so a shape such as
(65536, 3, 224, 224) gives a clear error instead of an allocator failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from micronet_score.errors import InputError

#: The most bytes of random data ``count`` draws for inputs given as shapes when the forward needs values.
MAX_RANDOM_INPUT_BYTES = 1 << 30


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} bytes"


def materialize(value: Any, placeholders: list[torch.Tensor], device: torch.device, dtype: torch.dtype,
                reason: str) -> Any:
    """``value`` with each placeholder (a meta tensor standing for a shape) replaced by seeded random values
    (seed 0, float32 drawn then cast, as for any shape input), after checking the total size."""
    ids = {id(p) for p in placeholders}
    shapes = [tuple(p.shape) for p in placeholders]
    per_element = max(torch.empty((), dtype=dtype).element_size(), 4)  # drawn in float32, then cast
    nbytes = sum(p.numel() for p in placeholders) * per_element
    first = shapes[0]
    smaller = (1, *first[1:]) if len(first) > 1 else (1,)
    advice = (f"count a smaller batch such as {smaller} (counts are per example) or pass real tensors "
              "(a batch of real data whose size you control)")
    if nbytes > MAX_RANDOM_INPUT_BYTES:
        raise InputError(f"the forward needs real input values ({reason}) and the input shape(s) "
                         f"{', '.join(map(str, shapes))} would take {_size(nbytes)} of random data, more than "
                         f"the {_size(MAX_RANDOM_INPUT_BYTES)} limit: {advice}")

    def convert(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            if id(v) not in ids:
                return v
            generator = torch.Generator(device="cpu").manual_seed(0)
            try:
                return torch.randn(tuple(v.shape), generator=generator, dtype=torch.float32).to(
                    device=device, dtype=dtype)
            except (RuntimeError, MemoryError) as exc:
                raise InputError(f"the forward needs real input values ({reason}) but {_size(nbytes)} of random "
                                 f"data for shape(s) {', '.join(map(str, shapes))} could not be allocated "
                                 f"({type(exc).__name__}): {advice}") from None
        if isinstance(v, (tuple, list)):
            return type(v)(convert(x) for x in v)
        if isinstance(v, Mapping):
            return {k: convert(x) for k, x in v.items()}
        return v

    return convert(value)
