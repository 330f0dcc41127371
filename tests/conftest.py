"""Shared helpers: wrap a function as a module so any functional call can be counted."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


class Fn(nn.Module):
    """A module whose forward calls ``fn(*inputs, **params)``; extra tensors become parameters."""

    def __init__(self, fn: Callable, **params: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        self.names = list(params)
        for name, value in params.items():
            self.register_parameter(name, nn.Parameter(value, requires_grad=False))

    def forward(self, *inputs):
        return self.fn(*inputs, **{n: getattr(self, n) for n in self.names})


@pytest.fixture
def fn_module():
    return Fn
