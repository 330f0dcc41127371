"""The runnable examples in the public docstrings must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "micronet_score.compress",
    "micronet_score.compress.configs",
    "micronet_score.compress.pruning",
    "micronet_score.compress.masks",
    "micronet_score.compress.finalize",
    "micronet_score.compress.sparsity",
    "micronet_score.compress.structured",
    "micronet_score.compress.fakequant",
    "micronet_score.compress.quantization",
    "micronet_score.compress.calibration",
    "micronet_score.compress.base",
    "micronet_score.compress.history",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
