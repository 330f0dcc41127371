"""Builders record their recipe, validate their arguments with MicronetErrors, and the DenseNet ``groups``
shorthands; ``micronet-score models NAME``."""

from __future__ import annotations

import copy
import json

import pytest

import micronet_score as ms
from micronet_score.cli import main
from micronet_score.errors import MicronetError
from micronet_score.models import DenseNetGroups, ModelArgumentError


def test_build_records_name_and_every_argument_as_plain_data():
    model = ms.models.build("densenet-cifar", growth_rate=6, blocks=(2, 2), groups={"conv3x3": 2})
    assert model.micronet_build == {
        "model": "densenet-cifar",
        "args": {"num_classes": 10, "growth_rate": 6, "blocks": [2, 2], "reduction": 0.5,
                 "groups": {"conv3x3": 2}, "seed": 0},
    }  # fmt: skip
    json.dumps(model.micronet_build)
    assert not any("micronet" in key for key in model.state_dict())
    assert copy.deepcopy(model).micronet_build == model.micronet_build
    record = model.micronet_build
    again = ms.models.build(record["model"], **record["args"])
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_seed_groups_2_regroups_the_grouped_stages_it_can_split():
    with pytest.warns(UserWarning, match=r"groups=2 cannot split the channels of stem: stem keeps groups=3"):
        model = ms.models.build("densenet-seed", groups=2)
    assert model.groups == DenseNetGroups(stem=3, bottleneck=1, conv3x3=2, transition=2)
    # The transitions' 1x1 convs (48 -> 24, 96 -> 48, 192 -> 96) hold 1,152 + 4,608 + 18,432 = 24,192 / groups
    # weights: 8,064 at groups 3, 12,096 at groups 2; the 3x3 convs keep groups 2. 205,186 + 4,032 = 209,218.
    assert sum(p.numel() for p in model.parameters()) == 209_218
    assert model.micronet_build["args"]["groups"] == 2


def test_seed_groups_mapping_and_string_forms_agree():
    by_string = ms.models.build("densenet-seed", groups="conv3x3:2, transition=3")
    by_mapping = ms.models.build("densenet-seed", groups={"conv3x3": 2, "transition": 3})
    assert by_string.groups == by_mapping.groups == DenseNetGroups(stem=3, bottleneck=1, conv3x3=2, transition=3)
    assert ms.models.build("densenet-seed", groups={"bottleneck": 2}).groups.bottleneck == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": 5}, r"groups=5 divides the channels of none .*'conv3x3': \[2, 3, 6\]"),
        ({"groups": "two"}, r"groups='two' is not understood; groups must be an int"),
        ({"groups": {"head": 2}}, r"groups has unknown key\(s\) \['head'\]"),
        ({"groups": 2.5}, r"groups=2\.5: groups must be an int"),
        ({"num_classes": 0}, r"num_classes must be a positive integer, got 0"),
        ({"width": 4}, r"unexpected keyword argument\(s\) width; .*micronet-score models densenet-seed"),
    ],
)
def test_bad_arguments_are_micronet_errors(kwargs, message):
    with pytest.raises(ModelArgumentError, match=message) as info:
        ms.models.build("densenet-seed", **kwargs)
    assert isinstance(info.value, MicronetError) and isinstance(info.value, ValueError)


def test_densenet_cifar_int_groups_covers_every_kind_it_divides():
    with pytest.warns(UserWarning, match="stem keeps groups=1"):
        model = ms.models.build("densenet-cifar", growth_rate=6, blocks=(2, 2), groups=2)
    assert model.groups == DenseNetGroups(stem=1, bottleneck=2, conv3x3=2, transition=2)


def test_cli_models_name_lists_arguments_and_a_working_example(capsys):
    assert main(["models", "densenet-seed"]) == 0
    out = capsys.readouterr().out
    assert "groups       int | str | Mapping[str, int] | DenseNetGroups | None  None" in out
    assert "num_classes  int" in out and "seed         int | None" in out
    example = out.strip().splitlines()[-1]
    assert example == "example: micronet-score count densenet-seed --arg groups=conv3x3:2,transition:3 --arg num_classes=100"
    argv = example.removeprefix("example: micronet-score ").split()
    assert main(argv) == 0


def test_cli_count_seed_with_groups_2(capsys):
    assert main(["count", "densenet-seed", "--json"]) == 0
    seed = json.loads(capsys.readouterr().out)["report"]
    with pytest.warns(UserWarning, match="stem keeps groups=3"):
        assert main(["count", "densenet-seed", "--arg", "groups=2", "--json"]) == 0
    regrouped = json.loads(capsys.readouterr().out)["report"]
    assert regrouped["params"] - seed["params"] == 4_032  # the transitions' weights, 24,192 / 2 - 24,192 / 3


def test_cli_bad_groups_is_one_line_naming_the_forms(capsys):
    assert main(["count", "densenet-seed", "--arg", "groups=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "groups=5 divides the channels of none" in err
