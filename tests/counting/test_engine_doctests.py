"""The runnable examples of storage roles, per-count cost overrides, course-rule reports and examples/tokens."""

import doctest
import importlib

import pytest

MODULES = [
    "micronet_score.counting.roles",
    "micronet_score.counting.overrides",
    "micronet_score.counting.leaf_report",
    "micronet_score.counting.examples",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0 and attempted > 0
