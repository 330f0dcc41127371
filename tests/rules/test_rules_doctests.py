"""The runnable examples in the docstrings of conventions, storage pricing, formulas and leaf counting."""

import doctest
import importlib

import pytest

MODULES = [
    "micronet_score.convention",
    "micronet_score.counting.storage",
    "micronet_score.counting.leaf_profile",
    "micronet_score.rules.formulas",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0 and attempted > 0
