"""Errors of the model zoo's builders."""

from __future__ import annotations

from micronet_score.errors import MicronetError


class ModelArgumentError(MicronetError, ValueError):
    """A builder argument is unknown or has a bad value; the message names it and what is accepted
    (``micronet-score models NAME`` lists a builder's arguments)."""
