"""Errors of the organizer's side: bad test data, submissions that cannot be rebuilt, an unusable device."""

from __future__ import annotations

from micronet_score.errors import MicronetError


class DatasetError(MicronetError, ValueError):
    """Test data that cannot be read (missing files, unknown format, inconsistent arrays)."""


class SubmissionError(MicronetError, ValueError):
    """A submission or manifest that cannot be turned into a model to score (bad recipe, missing keys)."""


class DeviceError(MicronetError, RuntimeError):
    """The device asked for is not available (e.g. ``cuda`` without a GPU)."""
