"""Errors and warnings of :mod:`micronet_score.compress`; every error is a :class:`MicronetError`."""

from __future__ import annotations

from micronet_score.errors import MicronetError


class ConfigError(MicronetError, ValueError):
    """A config field has a bad value (raised at construction or by ``from_dict``)."""


class ConfigTypeError(MicronetError, TypeError):
    """A verb was handed something that is not one of the configs it accepts; the message lists them."""


class CompressionError(MicronetError, ValueError):
    """A config cannot be applied to this model (no layer selected, a layer it cannot handle...)."""


class LayerEmptiedWarning(UserWarning):
    """Pruning set every weight of a layer to zero (the layer no longer passes any signal)."""


class LayersSkippedWarning(UserWarning):
    """A config with ``on_incompatible="skip"`` left some selected layers unpruned."""
