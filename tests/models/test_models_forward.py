"""Every zoo model runs a batch-1 forward on its documented input size, for real and on the meta device."""

from __future__ import annotations

import pytest
import torch

from micronet_score import models

ALL = list(models.names())
IMAGE = list(models.names(modality="image"))  # the language model's own forward: tests/models/test_lstm_lm.py


@pytest.mark.parametrize("name", IMAGE)
def test_real_forward_at_batch_1(name: str) -> None:
    model = models.build(name).eval()
    num_classes = models.spec(name).default_kwargs["num_classes"]
    x = torch.randn(models.input_size(name), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, num_classes)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL)
def test_real_and_meta_builds_have_the_same_parameters(name: str) -> None:
    real = models.build(name)
    with torch.device("meta"):
        meta = models.build(name)
    real_shapes = {k: tuple(v.shape) for k, v in real.state_dict().items()}
    meta_shapes = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    assert real_shapes == meta_shapes
    assert all(p.device.type == "meta" for p in meta.parameters())


@pytest.mark.parametrize("name", IMAGE)
@pytest.mark.parametrize("train", [False, True])
def test_meta_forward(name: str, train: bool) -> None:
    with torch.device("meta"):
        model = models.build(name, num_classes=7).train(train)
        y = model(torch.empty((2,) + models.input_size(name)[1:]))
    assert y.device.type == "meta"
    assert y.shape == (2, 7)


@pytest.mark.parametrize(
    ("name", "kwargs", "classes"),
    [
        ("resnet18-cifar", {"width": 8, "num_classes": 100}, 100),
        ("resnet50-cifar", {"width": 8}, 10),
        ("preact-resnet18-cifar", {"width": 8}, 10),
        ("densenet-cifar", {"growth_rate": 6, "blocks": (2, 2, 2), "groups": {"conv3x3": 2}}, 10),
        ("wrn", {"depth": 10, "width": 1, "drop_rate": 0.3}, 10),
        ("mobilenetv2", {"width": 0.35, "num_classes": 10}, 10),
        ("efficientnet-b0", {"num_classes": 5}, 5),
    ],
)
def test_options_build_working_models(name: str, kwargs: dict[str, object], classes: int) -> None:
    model = models.build(name, **kwargs).eval()
    with torch.no_grad():
        y = model(torch.randn(models.input_size(name)))
    assert y.shape == (1, classes)


def test_training_mode_backward_on_a_small_model() -> None:
    model = models.build("efficientnet-b0", num_classes=3).train()
    y = model(torch.randn(2, 3, 64, 64))
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_efficientnet_drop_connect_is_identity_in_eval() -> None:
    model = models.build("efficientnet-b0", drop_connect_rate=0.5).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
