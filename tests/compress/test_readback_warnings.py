"""No PyTorch deprecation or user warning may reach a user of the compress utilities or of ``ms.count`` on
the models they make.

Each pipeline runs twice: once recording every warning (``simplefilter("always")``, so a warning swallowed by
an ``except`` elsewhere is still seen) and once with ``simplefilter("error")``, so a warning that only some
code path raises fails where it happens.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.compress import (
    BlockSparse,
    FakeQuant,
    GlobalUnstructured,
    Half,
    LayerUnstructured,
    NMSparse,
    StructuredFilters,
    calibrate,
    finalize_,
    prune_,
    quantize_,
    shrink_,
    sparsity,
)


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 16),
    )


X = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(0))


def unstructured():
    model = prune_(net(), GlobalUnstructured(amount=0.5, exclude=()))
    ms.count(model, (1, 4, 8, 8))
    sparsity(model)
    prune_(model, LayerUnstructured(amount={"7": 0.2}))  # a second round on top of the first
    ms.count(finalize_(model), (1, 4, 8, 8))


def block_and_nm():
    model = prune_(net(), BlockSparse(block=(4, 4), amount=0.5))
    prune_(model, NMSparse(n=2, m=4))
    ms.count(model, (1, 4, 8, 8))
    ms.count(finalize_(model), (1, 4, 8, 8))


def structured():
    model = prune_(net(), StructuredFilters(amount=0.25), example_inputs=X[:1])
    ms.count(model, (1, 4, 8, 8))
    shrink_(model, StructuredFilters(amount=0.5, norm="l2"), X[:1])
    ms.count(model, (1, 4, 8, 8))


def quantize_calibrate_train():
    model = prune_(net(), GlobalUnstructured(amount=0.5, exclude=()))
    quantize_(model, {"": FakeQuant(weight_bits=8, act_bits=8), "7": FakeQuant(weight_bits=4, act_bits=6,
                                                                                  per_channel=False)})
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, torch.zeros(8)), batch_size=4)
    calibrate(model, loader)
    ms.count(model, (1, 4, 8, 8))
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model(X).sum().backward()  # straight-through gradients into weight_orig
    optimizer.step()
    # torch's pruning hook leaves a grad-tracking `weight` attribute after a training forward, which deepcopy
    # refuses; one forward without grad refreshes it (or finalize_ first)
    with torch.no_grad():
        model.eval()(X)
    ms.count(copy.deepcopy(model), (1, 4, 8, 8))
    ms.count(finalize_(model), (1, 4, 8, 8))


def half():
    model = quantize_(net(), Half(torch.float16))
    ms.count(model, X[:1].half())
    mixed = quantize_(net(), {"4": Half(torch.bfloat16, cast_io=True), "7": FakeQuant(act_bits=None)})
    ms.count(mixed, (1, 4, 8, 8))


PIPELINES = [unstructured, block_and_nm, structured, quantize_calibrate_train, half]


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda f: f.__name__)
def test_no_warning_is_emitted(pipeline):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline()
    assert [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline()
