"""Argument validation shared by the builders; every failure is a :class:`ModelArgumentError` (a
``ValueError``) naming the argument."""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence

from .errors import ModelArgumentError


def positive_int(value: object, what: str) -> int:
    """``value`` as an ``int`` >= 1, else ValueError mentioning ``what``."""
    if isinstance(value, bool):
        raise ModelArgumentError(f"{what} must be a positive integer, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ModelArgumentError(f"{what} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ModelArgumentError(f"{what} must be a positive integer, got {number}")
    return number


def positive_float(value: object, what: str) -> float:
    """``value`` as a finite ``float`` > 0, else ValueError mentioning ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ModelArgumentError(f"{what} must be a positive number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ModelArgumentError(f"{what} must be a positive finite number, got {value!r}")
    return number


def probability(value: object, what: str) -> float:
    """``value`` as a ``float`` in [0, 1), else ValueError mentioning ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ModelArgumentError(f"{what} must be a number in [0, 1), got {value!r}")
    number = float(value)
    if not 0.0 <= number < 1.0:
        raise ModelArgumentError(f"{what} must be in [0, 1), got {value!r}")
    return number


def positive_ints(value: object, what: str, length: int | None = None) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (optionally of fixed ``length``) as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ModelArgumentError(f"{what} must be a non-empty sequence of positive integers, got {value!r}")
    if length is not None and len(value) != length:
        raise ModelArgumentError(f"{what} must have {length} entries, got {len(value)}: {value!r}")
    return tuple(positive_int(v, f"{what}[{i}]") for i, v in enumerate(value))


def seed(value: object) -> int | None:
    """``None`` or an ``int`` seed, else ValueError."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ModelArgumentError(f"seed must be an int or None, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ModelArgumentError(f"seed must be an int or None, got {value!r}") from None


def divides(groups: int, channels: int, layer: str, role: str) -> None:
    """ValueError unless ``groups`` divides ``channels`` (the ``role`` channels of ``layer``)."""
    if channels % groups:
        raise ModelArgumentError(
            f"{layer}: groups={groups} does not divide its {role}={channels} "
            f"({channels} = {channels // groups} * {groups} + {channels % groups})"
        )
