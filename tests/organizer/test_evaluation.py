"""evaluate: exact counts, equal to a count made independently in the test."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

from micronet_score.organizer import Accuracy, DeviceError, evaluate
from micronet_score.organizer.datasets import Dataset, Preprocessing


def test_accuracy_is_an_exact_count():
    # 103 examples of 5 "channels" (1x1 images); the model is the identity, so it predicts the hottest channel.
    # By construction the first 37 examples put their label on the hot channel and the other 66 do not.
    n, right = 103, 37
    labels = torch.arange(n) % 5
    images = torch.zeros(n, 5, 1, 1)
    for i in range(n):
        hot = labels[i] if i < right else (labels[i] + 1) % 5
        images[i, hot] = 1.0
    data = Dataset(images, labels, Preprocessing(scale=1.0))
    model = torch.nn.Flatten()
    for batch_size in (1, 10, 64, 500):  # uneven last batches must not change the count
        assert evaluate(model, data, batch_size=batch_size) == Accuracy(37, 103)


def test_model_is_left_as_it_was():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(3, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate(model, Dataset(torch.ones(4, 3, 1, 1), torch.zeros(4, dtype=torch.long)))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cuda_when_absent_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        evaluate(torch.nn.Flatten(), Dataset(torch.ones(1, 2, 1, 1), torch.zeros(1, dtype=torch.long)),
                 device="cuda")


def test_str_prints_exact_counts():
    assert str(Accuracy(9010, 10000)) == "9,010 of 10,000 (90.10%)"


@pytest.mark.parametrize("name", ["datasets", "evaluation", "submissions", "field", "store", "executors",
                                  "builders", "ranking"])
def test_docstring_examples(name):
    module = importlib.import_module(f"micronet_score.organizer.{name}")
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
