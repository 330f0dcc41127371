"""Config validation: bad fields raise ValueError naming the field and the allowed range."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from micronet_score.compress import (
    BlockSparse,
    FakeQuant,
    GlobalUnstructured,
    Half,
    LayerUnstructured,
    NMSparse,
    StructuredFilters,
)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: GlobalUnstructured(amount=1.5), r"GlobalUnstructured\.amount must be a float in \[0\.0, 1\.0\], got 1\.5"),
        (lambda: GlobalUnstructured(amount=-0.1), r"GlobalUnstructured\.amount must be a float in \[0\.0, 1\.0\]"),
        (lambda: GlobalUnstructured(amount=float("nan")), r"GlobalUnstructured\.amount"),
        (lambda: GlobalUnstructured(amount=True), r"GlobalUnstructured\.amount"),
        (lambda: GlobalUnstructured(layer_types=()), r"GlobalUnstructured\.layer_types must be a non-empty tuple"),
        (lambda: GlobalUnstructured(layer_types=(int,)), r"GlobalUnstructured\.layer_types"),
        (lambda: GlobalUnstructured(include_bias=1), r"GlobalUnstructured\.include_bias must be True or False"),
        (lambda: GlobalUnstructured(filter_fn=3), r"GlobalUnstructured\.filter_fn must be None or a callable"),
        (lambda: LayerUnstructured(amount={"fc": 2.0}), r"LayerUnstructured\.amount\['fc'\] must be a float in \[0\.0, 1\.0\]"),
        (lambda: LayerUnstructured(amount={}), r"LayerUnstructured\.amount must be .*non-empty mapping"),
        (lambda: LayerUnstructured(amount={1: 0.5}), r"LayerUnstructured\.amount must be a mapping whose keys"),
        (lambda: BlockSparse(block=(0, 4)), r"BlockSparse\.block\[0\] must be an int >= 1, got 0"),
        (lambda: BlockSparse(block=4), r"BlockSparse\.block must be a pair"),
        (lambda: BlockSparse(norm="l3"), r"BlockSparse\.norm must be one of 'l1', 'l2', got 'l3'"),
        (lambda: NMSparse(n=5, m=4), r"NMSparse\.n must be an int in \[1, 4\], got 5"),
        (lambda: NMSparse(n=0, m=4), r"NMSparse\.n must be an int in \[1, 4\], got 0"),
        (lambda: NMSparse(n=2, m=0), r"NMSparse\.m must be an int in \[1, 1024\], got 0"),
        (lambda: StructuredFilters(amount=1.0), r"StructuredFilters\.amount must be a float in \[0\.0, 1\.0\), got 1\.0"),
        (lambda: StructuredFilters(backend="nni"), r"StructuredFilters\.backend must be one of 'torch', 'torch_pruning'"),
        (lambda: StructuredFilters(leaf_modules=(3,)), r"StructuredFilters\.leaf_modules"),
        (lambda: FakeQuant(weight_bits=1), r"FakeQuant\.weight_bits must be an int in \[2, 16\] or None, got 1"),
        (lambda: FakeQuant(act_bits=17), r"FakeQuant\.act_bits must be an int in \[2, 16\] or None, got 17"),
        (lambda: FakeQuant(weight_bits=8.0), r"FakeQuant\.weight_bits"),
        (lambda: FakeQuant(weight_bits=None, act_bits=None), r"both None"),
        (lambda: FakeQuant(per_channel="yes"), r"FakeQuant\.per_channel must be True or False"),
        (lambda: Half(dtype=torch.float32), r"Half\.dtype must be torch\.float16 or torch\.bfloat16"),
        (lambda: Half(cast_io=None), r"Half\.cast_io must be True or False"),
    ],
)
def test_invalid_config_raises_value_error_naming_the_field(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_configs_are_frozen_and_normalised():
    config = BlockSparse(block=[2, 8], layer_types=[nn.Linear])
    assert config.block == (2, 8)
    assert config.layer_types == (nn.Linear,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.amount = 0.1  # type: ignore[misc]
    assert GlobalUnstructured(amount=1) == GlobalUnstructured(amount=1.0)
    assert isinstance(GlobalUnstructured(amount=1).amount, float)
    assert StructuredFilters(leaf_modules=[nn.LSTM]).leaf_modules == (nn.LSTM,)
