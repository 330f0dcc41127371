"""Module hooks per thread: torch's global module hooks see every thread's modules, so one process-wide pair
is installed while any count runs and each call goes to the tracer of the thread that runs the module."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

_LOCK = threading.Lock()
_LOCAL = threading.local()
_INSTALLED: list[Any] = [0, None]  # counts running, the two hook handles


def _tracers() -> list[Any]:
    stack = getattr(_LOCAL, "tracers", None)
    if stack is None:
        stack = _LOCAL.tracers = []
    return stack


def _pre_hook(module: torch.nn.Module, args: Any) -> None:
    stack = getattr(_LOCAL, "tracers", None)
    if stack:
        stack[-1].pre_hook(module, args)


def _post_hook(module: torch.nn.Module, args: Any, output: Any) -> None:
    stack = getattr(_LOCAL, "tracers", None)
    if stack:
        stack[-1].post_hook(module, args, output)


@contextlib.contextmanager
def thread_hooks(tracer: Any) -> Iterator[None]:
    """Send the module hooks of this thread to ``tracer`` while the block runs."""
    with _LOCK:
        if _INSTALLED[0] == 0:
            _INSTALLED[1] = (torch.nn.modules.module.register_module_forward_pre_hook(_pre_hook),
                             torch.nn.modules.module.register_module_forward_hook(_post_hook))
        _INSTALLED[0] += 1
    stack = _tracers()
    stack.append(tracer)
    try:
        yield
    finally:
        stack.pop()
        with _LOCK:
            _INSTALLED[0] -= 1
            if _INSTALLED[0] == 0:
                for handle in _INSTALLED[1]:
                    handle.remove()
                _INSTALLED[1] = None
