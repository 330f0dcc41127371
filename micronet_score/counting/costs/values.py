"""Operators whose output *shape* depends on their input's values (``nonzero``, ``masked_select``, ``unique``).

The meta device cannot run them. Each is listed in the shape table with a function that raises
:class:`~micronet_score.errors.ValuesNeededError`, naming the operator, instead of torch's bare
NotImplementedError: the default count then runs the forward again on real values, and under
``shapes_only=True`` the user reads one clear line saying to count with real inputs.
"""

from __future__ import annotations

from typing import Any

from micronet_score.counting import shapes
from micronet_score.errors import ValuesNeededError


def needs_values(*overloads: Any, what: str) -> None:
    """List ``overloads`` (aten overloads, e.g. ``aten.nonzero.default``) in the shape table as operators whose
    output shape depends on values; ``what`` says what the output is, for the message."""

    for overload in overloads:
        if overload is None:
            continue
        name = str(overload.overloadpacket)

        def refuse(*args: Any, _name: str = name, **kwargs: Any) -> Any:
            raise ValuesNeededError(f"operator '{_name}' returns {what}, a shape that depends on the values of "
                                    "its input, which the meta device does not hold: count with real inputs "
                                    "(shapes_only=False)")

        shapes.SHAPES[overload] = refuse
