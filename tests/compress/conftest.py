"""Every test in this folder runs with warnings turned into errors: no PyTorch deprecation or user
warning may leak out of the compress utilities."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

DIGITS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_compress.py"


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture(scope="session")
def digits_example():
    """``examples/digits_compress.py`` as a module: its data split, model and training loop."""
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("digits_compress_example", DIGITS_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
