"""Checks shared by the config dataclasses; every failure is a :class:`ConfigError` naming the field."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

from .errors import ConfigError


def fail(owner: object, field: str, allowed: str, value: Any) -> ConfigError:
    """Build the error every config raises: ``Config.field must be <allowed>, got <value>``."""
    return ConfigError(f"{type(owner).__name__}.{field} must be {allowed}, got {value!r}")


def check_fraction(owner: object, field: str, value: Any, *, allow_one: bool = True) -> float:
    """Accept a real number in [0, 1] (or [0, 1) when ``allow_one`` is false) and return it as float."""
    allowed = "a float in [0.0, 1.0]" if allow_one else "a float in [0.0, 1.0)"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(owner, field, allowed, value)
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (value >= 0.0 and upper_ok):
        raise fail(owner, field, allowed, value)
    return float(value)


def check_int(owner: object, field: str, value: Any, low: int, high: int | None = None) -> int:
    """Accept an int (not a bool) with ``low <= value <= high``."""
    allowed = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(owner, field, allowed, value)
    if value < low or (high is not None and value > high):
        raise fail(owner, field, allowed, value)
    return value


def check_bool(owner: object, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(owner, field, "True or False", value)
    return value


def check_choice(owner: object, field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise fail(owner, field, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def check_layer_types(owner: object, field: str, value: Any, *, allow_none: bool = False) -> Any:
    """Accept a non-empty tuple (or list) of nn.Module subclasses; returns it as a tuple."""
    if value is None and allow_none:
        return None
    allowed = "a non-empty tuple of nn.Module subclasses" + (" or None" if allow_none else "")
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise fail(owner, field, allowed, value)
    if not all(isinstance(t, type) and issubclass(t, nn.Module) for t in value):
        raise fail(owner, field, allowed, value)
    return tuple(value)


def check_filter_fn(owner: object, field: str, value: Any) -> Callable[[nn.Module, str], bool] | None:
    if value is not None and not callable(value):
        raise fail(owner, field, "None or a callable (module, name) -> bool", value)
    return value


def check_exclude(owner: object, field: str, value: Any) -> tuple[Any, ...]:
    """Accept a module name, an nn.Module subclass, or a tuple/list of them; returns a tuple."""
    if isinstance(value, (str, type)):
        value = (value,)
    allowed = "a tuple of module names (str) and nn.Module subclasses"
    if not isinstance(value, (tuple, list)):
        raise fail(owner, field, allowed, value)
    for item in value:
        ok = isinstance(item, str) or (isinstance(item, type) and issubclass(item, nn.Module))
        if not ok:
            raise fail(owner, field, allowed, value)
    return tuple(value)
