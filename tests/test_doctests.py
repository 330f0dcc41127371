"""The runnable examples in the public API's docstrings."""

import doctest
import importlib

import pytest

MODULES = [
    "micronet_score",
    "micronet_score.bits",
    "micronet_score.counting.engine",
    "micronet_score.rules.ruleset",
    "micronet_score.rules.score",
    "micronet_score.models",
    "micronet_score.api",
    "micronet_score.cross_check",
    "micronet_score.convention",
    "micronet_score.counting.storage",
    "micronet_score.counting.leaf_profile",
    "micronet_score.counting.roles",
    "micronet_score.counting.overrides",
    "micronet_score.counting.leaf_report",
    "micronet_score.counting.examples",
    "micronet_score.rules.formulas",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
