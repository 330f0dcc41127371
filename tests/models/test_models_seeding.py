"""Builds are deterministic per seed and never disturb torch's global RNG."""

from __future__ import annotations

import pytest
import torch

from micronet_score import models

# Small variants keep the test fast; the large presets are covered by test_presets_are_deterministic.
SMALL = {
    "resnet18-cifar": {"width": 8},
    "resnet34-cifar": {"width": 8},
    "resnet50-cifar": {"width": 8},
    "preact-resnet18-cifar": {"width": 8},
    "densenet-cifar": {"growth_rate": 6},
    "densenet121-cifar": {},
    "densenet-bc-100-k12-cifar": {},
    "densenet-seed": {},
    "wrn": {"depth": 16, "width": 2},
    "wrn-28-10": {},
    "mobilenetv2": {"width": 0.5},
    "mobilenetv2-1.4": {},
    "efficientnet-b0": {},
    "lstm-lm-wikitext103": {"num_classes": 100, "embed_dim": 8, "hidden_size": 16},
}


def test_small_table_covers_every_model() -> None:
    assert set(SMALL) == set(models.names())


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("name", [n for n in SMALL if n != "wrn-28-10"])
def test_same_seed_same_weights_and_global_rng_untouched(name: str) -> None:
    kwargs = SMALL[name]
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a = models.build(name, seed=3, **kwargs)
    b = models.build(name, seed=3, **kwargs)
    assert torch.equal(torch.get_rng_state(), before)
    assert_same_state(a, b)


def test_wrn_28_10_is_deterministic() -> None:
    before = torch.get_rng_state()
    assert_same_state(models.build("wrn-28-10"), models.build("wrn-28-10", seed=0))
    assert torch.equal(torch.get_rng_state(), before)


def test_different_seeds_differ() -> None:
    a = models.build("resnet18-cifar", width=8, seed=0)
    b = models.build("resnet18-cifar", width=8, seed=1)
    assert not torch.equal(a.conv1.weight, b.conv1.weight)


def test_default_seed_is_zero() -> None:
    assert models.spec("resnet18-cifar").default_kwargs["seed"] == 0
    assert_same_state(models.build("densenet-seed"), models.build("densenet-seed", seed=0))


def test_seed_none_uses_the_global_rng() -> None:
    torch.manual_seed(7)
    a = models.build("resnet18-cifar", width=8, seed=None)
    torch.manual_seed(7)
    b = models.build("resnet18-cifar", width=8, seed=None)
    assert_same_state(a, b)
    before = torch.get_rng_state()
    models.build("resnet18-cifar", width=8, seed=None)
    assert not torch.equal(torch.get_rng_state(), before)


def test_weights_are_initialised_not_zero() -> None:
    model = models.build("resnet18-cifar", width=8)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linear = model.linear
    assert all(c.weight.abs().sum() > 0 for c in convs)
    assert linear.weight.abs().sum() > 0
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in bns)
    assert all(torch.equal(bn.bias, torch.zeros_like(bn.bias)) for bn in bns)


def test_meta_build_leaves_global_rng_untouched() -> None:
    before = torch.get_rng_state()
    with torch.device("meta"):
        models.build("mobilenetv2", seed=5)
    assert torch.equal(torch.get_rng_state(), before)


def test_builder_callable_is_seeded_too() -> None:
    builder = models.spec("densenet-seed").builder
    before = torch.get_rng_state()
    assert_same_state(builder(), builder(seed=0))
    assert torch.equal(torch.get_rng_state(), before)
