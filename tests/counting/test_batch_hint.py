"""An input without its batch dimension gets "add the batch dimension", not a BatchNorm or Linear error."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.counting import batch_hint
from micronet_score.errors import ForwardError

HINT = "add the batch dimension (e.g. (1, 3, 32, 32))"


def _conv_bn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())


def _conv_flatten_linear():
    # unbatched, the flatten merges the 4 channels' 30x30 maps per row: "mat1 and mat2 shapes cannot be multiplied"
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 2))


@pytest.mark.parametrize("make", [_conv_bn, _conv_flatten_linear])
@pytest.mark.parametrize("inputs", [(3, 32, 32), torch.zeros(3, 32, 32)], ids=["shape", "tensor"])
def test_missing_batch_dimension_is_named(make, inputs):
    with pytest.raises(ForwardError, match=r"has no batch dimension: " + HINT.replace("(", r"\(").replace(")", r"\)")):
        ms.count(make(), inputs)


def test_missing_batch_dimension_under_a_leaf_module_convention():
    with pytest.raises(ForwardError, match="has no batch dimension"):
        ms.count(_conv_flatten_linear(), (3, 32, 32), rules="imta-2025")


def test_other_shape_errors_keep_their_message():
    # a batched input of the wrong width is not a missing batch dimension
    with pytest.raises(ForwardError) as info:
        ms.count(_conv_flatten_linear(), (1, 3, 16, 16))
    assert "batch dimension" not in str(info.value) and "inputs had shapes (1, 3, 16, 16)" in str(info.value)


def test_docstring_examples():
    assert doctest.testmod(batch_hint).failed == 0
