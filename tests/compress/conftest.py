"""Every test in this folder runs with warnings turned into errors: no PyTorch deprecation or user
warning may leak out of the compress utilities."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
