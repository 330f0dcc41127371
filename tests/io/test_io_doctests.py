"""The runnable examples in micronet_score.io's docstrings."""

import doctest
import importlib

import pytest

MODULES = ["micronet_score.io.scan", "micronet_score.io.loading", "micronet_score.io.limits",
           "micronet_score.io.nonzeros", "micronet_score.checkpoint", "micronet_score.loading"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    failures, _ = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert failures == 0
