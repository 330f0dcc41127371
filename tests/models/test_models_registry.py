"""Registry API: names, spec, input_size, build errors and argument validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from micronet_score import models
from micronet_score.models import DenseNetGroups, ModelSpec, UnknownModelError

EXPECTED = {
    "resnet18-cifar": (1, 3, 32, 32),
    "resnet34-cifar": (1, 3, 32, 32),
    "resnet50-cifar": (1, 3, 32, 32),
    "preact-resnet18-cifar": (1, 3, 32, 32),
    "densenet-cifar": (1, 3, 32, 32),
    "densenet121-cifar": (1, 3, 32, 32),
    "densenet-bc-100-k12-cifar": (1, 3, 32, 32),
    "densenet-seed": (1, 3, 32, 32),
    "wrn": (1, 3, 32, 32),
    "wrn-28-10": (1, 3, 32, 32),
    "mobilenetv2": (1, 3, 224, 224),
    "mobilenetv2-1.4": (1, 3, 224, 224),
    "efficientnet-b0": (1, 3, 224, 224),
    "lstm-lm-wikitext103": (1, 1),  # one token id per sequence (plus the state: example_inputs())
}


def test_names_lists_every_model_with_a_one_line_description() -> None:
    names = models.names()
    assert set(names) == set(EXPECTED)
    for description in names.values():
        assert isinstance(description, str) and description and "\n" not in description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_and_input_size(name: str) -> None:
    s = models.spec(name)
    assert isinstance(s, ModelSpec)
    assert s.name == name
    assert s.input_size == EXPECTED[name] == models.input_size(name)
    assert s.description == models.names()[name]
    assert s.source
    assert callable(s.builder)
    assert {"num_classes", "seed"} <= set(s.default_kwargs)
    assert s.default_kwargs["seed"] == 0
    assert s.builder.__doc__ and str(EXPECTED[name]) in s.builder.__doc__


def test_spec_is_frozen() -> None:
    s = models.spec("resnet18-cifar")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.default_kwargs["width"] = 8  # type: ignore[index]


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        models.build("resnet19")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    message = str(err)
    assert "resnet19" in message
    assert all(name in message for name in EXPECTED)
    for call in (models.spec, models.input_size):
        with pytest.raises(UnknownModelError):
            call("nope")
    with pytest.raises(KeyError):
        models.spec("nope")


def test_unknown_kwarg_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="widht") as info:
        models.build("resnet18-cifar", widht=32)
    assert "width" in str(info.value)  # the accepted names are listed
    assert not isinstance(info.value, UnknownModelError)


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("resnet18-cifar", {"num_classes": 0}, "num_classes"),
        ("resnet18-cifar", {"num_classes": 2.5}, "num_classes"),
        ("resnet18-cifar", {"num_classes": True}, "num_classes"),
        ("resnet50-cifar", {"width": -1}, "width"),
        ("resnet18-cifar", {"seed": "x"}, "seed"),
        ("resnet18-cifar", {"seed": 1.5}, "seed"),
        ("wrn", {"depth": 27}, "depth"),
        ("wrn", {"depth": 4}, "depth"),
        ("wrn", {"drop_rate": 1.0}, "drop_rate"),
        ("mobilenetv2", {"width": 0}, "width"),
        ("mobilenetv2", {"width": float("nan")}, "width"),
        ("mobilenetv2", {"dropout": -0.1}, "dropout"),
        ("efficientnet-b0", {"drop_connect_rate": 2}, "drop_connect_rate"),
        ("densenet-cifar", {"growth_rate": 0}, "growth_rate"),
        ("densenet-cifar", {"blocks": ()}, "blocks"),
        ("densenet-cifar", {"blocks": (6, 0)}, "blocks"),
        ("densenet-cifar", {"reduction": 1.5}, "reduction"),
        ("densenet-cifar", {"groups": {"stem": 0}}, "groups.stem"),
        ("densenet-cifar", {"groups": {"sten": 3}}, "sten"),
        ("densenet-cifar", {"groups": [3]}, "groups"),  # an int is a shorthand (test_models_build_args)
    ],
)
def test_bad_values_raise_value_errors_naming_the_argument(
    name: str, kwargs: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        models.build(name, **kwargs)


@pytest.mark.parametrize(
    ("groups", "layer", "numbers"),
    [
        # stem: 3 -> 2k = 24 channels; groups 2 does not divide 3 inputs
        ({"stem": 2}, "stem 3x3 conv", "in_channels=3"),
        # 3x3 conv: 4k = 48 -> k = 12; groups 5 divides neither, in_channels checked first
        ({"conv3x3": 5}, "dense block 1 layer 1 3x3 conv", "in_channels=48"),
        # 3x3 conv with groups 8: 48 ok, 12 not
        ({"conv3x3": 8}, "dense block 1 layer 1 3x3 conv", "out_channels=12"),
        # bottleneck 1x1: first layer has 24 inputs, 48 outputs; 9 divides neither
        ({"bottleneck": 9}, "dense block 1 layer 1 1x1 bottleneck conv", "in_channels=24"),
        # transition 1: 24 + 6*12 = 96 -> 48 channels; groups 5 does not divide 96
        ({"transition": 5}, "transition 1 1x1 conv", "in_channels=96"),
    ],
)
def test_non_dividing_groups_name_the_layer_and_numbers(
    groups: dict[str, int], layer: str, numbers: str
) -> None:
    with pytest.raises(ValueError) as info:
        models.build("densenet-cifar", groups=groups)
    message = str(info.value)
    assert layer in message
    assert numbers in message
    assert f"groups={next(iter(groups.values()))}" in message


def test_groups_accept_the_dataclass() -> None:
    groups = DenseNetGroups(stem=3, conv3x3=2, transition=3)
    with torch.device("meta"):
        a = models.build("densenet-cifar", growth_rate=6, groups=groups)
        b = models.build("densenet-seed")
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert a.features.conv1.groups == 3


def test_densenet_seed_growth_must_suit_its_groups() -> None:
    # growth 4: stem 3 -> 8 channels with groups 3 cannot work.
    with pytest.raises(ValueError, match="stem 3x3 conv"):
        models.build("densenet-seed", growth_rate=4)
    # growth 9: the 3x3 conv 36 -> 9 with groups 2: 9 is odd.
    with pytest.raises(ValueError, match="out_channels=9"):
        models.build("densenet-seed", growth_rate=9)


def test_spec_build_matches_module_build() -> None:
    with torch.device("meta"):
        model = models.spec("wrn").build(depth=10, width=1, num_classes=3)
    assert model.fc.out_features == 3
