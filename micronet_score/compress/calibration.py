"""``calibrate``: static min/max calibration of the activation fake quantizers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .fakequant import ActivationFakeQuantizer


def _default_forward(model: nn.Module, batch: Any) -> Any:
    device = next((p.device for p in model.parameters()), None)

    def move(x: Any) -> Any:
        return x.to(device) if isinstance(x, torch.Tensor) and device is not None else x

    if isinstance(batch, torch.Tensor):
        return model(move(batch))
    if isinstance(batch, (tuple, list)) and batch:
        return model(move(batch[0]))
    if isinstance(batch, Mapping):
        return model(**{k: move(v) for k, v in batch.items()})
    raise TypeError(
        f"calibrate cannot feed a batch of type {type(batch).__name__}; pass tensors, (inputs, targets) "
        "pairs, dicts of keyword inputs, or forward_fn=lambda model, batch: ..."
    )


def calibrate(
    model: nn.Module,
    batches: Iterable[Any],
    num_batches: int | None = None,
    *,
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
) -> dict[str, tuple[float, float]]:
    """Set the activation range of every fake-quantized layer to the min/max of its input over
    ``batches`` (the first ``num_batches`` of them when given), and return the ranges by layer name.

    Earlier ranges are replaced (and kept if calibration fails). The model runs in eval mode under ``torch.no_grad()`` and each
    module's training flag is restored afterwards. A batch may be a tensor, a ``(inputs, targets)``
    tuple/list as a ``DataLoader`` yields (only ``inputs`` is fed), or a dict of keyword inputs;
    ``forward_fn(model, batch)`` overrides how a batch is fed.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import FakeQuant, calibrate, quantize_
    >>> model = quantize_(nn.Sequential(nn.Linear(2, 2)), FakeQuant(act_bits=8))
    >>> calibrate(model, [torch.tensor([[-1.0, 3.0]]), torch.tensor([[0.5, 2.0]])])
    {'0': (-1.0, 3.0)}
    """
    if num_batches is not None and (
        isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1
    ):
        raise ValueError(f"calibrate: num_batches must be None or an int >= 1, got {num_batches!r}")
    quantizers = {name: m for name, m in model.named_modules() if isinstance(m, ActivationFakeQuantizer)}
    if not quantizers:
        raise ValueError(
            "calibrate: the model has no activation fake quantizers; call quantize_(model, FakeQuant(act_bits=...)) first"
        )
    feed = forward_fn or _default_forward
    modes = {m: m.training for m in model.modules()}
    saved = {q: (q.min_val.clone(), q.max_val.clone()) for q in quantizers.values()}
    seen = 0
    try:
        for q in quantizers.values():
            q.reset()
            q.observing = True
        model.eval()
        with torch.no_grad():
            for batch in itertools.islice(batches, num_batches):
                feed(model, batch)
                seen += 1
        if not seen:
            raise ValueError("calibrate: batches was empty, no activation range was observed")
    except BaseException:
        for q, (lo, hi) in saved.items():  # a failed calibration keeps the previous ranges
            q.min_val.copy_(lo)
            q.max_val.copy_(hi)
        raise
    finally:
        for q in quantizers.values():
            q.observing = False
            q.calibrated  # noqa: B018 - remembers the new range for tracing (torch.export reads no buffer values)
        for module, training in modes.items():
            module.training = training
    result = {}
    for name, q in quantizers.items():
        layer = name.rsplit(".", 1)[0] if "." in name else ""
        result[layer] = (float(q.min_val), float(q.max_val))
    return result
