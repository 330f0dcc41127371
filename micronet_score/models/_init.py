"""Deterministic, seedable construction and weight initialisation of the zoo's models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

from . import _checks

_M = TypeVar("_M", bound=nn.Module)


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the body with torch's RNG seeded by ``seed``, restoring the global RNG state afterwards.

    Only the generator of the current default device is touched (CPU, or the current CUDA device when
    building under ``with torch.device("cuda")``), so the RNG state of other devices is never changed.
    ``seed=None`` uses (and advances) the global RNG, like a plain ``nn.Module`` constructor.
    """
    if seed is None:
        yield
        return
    device = torch.get_default_device()
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan-out, ReLU gain) convs, unit/zero norms, N(0, 0.01) linears, zero biases.

    Data independent, so it also works on the meta device.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_seeded(factory: Callable[[], _M], seed: object) -> _M:
    """Call ``factory`` and initialise the result under :func:`seeded` (``seed`` is validated first)."""
    checked = _checks.seed(seed)
    with seeded(checked):
        model = factory()
        init_weights(model)
    return model
