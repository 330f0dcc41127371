"""Conventions are data: shipped rule sets are TOML files, and a user's TOML file has the same power."""

from importlib.resources import files

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.convention import ConventionError, CostOverride, get_convention
from micronet_score.errors import MicronetError


def shipped(name: str) -> str:
    return files("micronet_score.rules").joinpath(f"{name}.toml").read_text(encoding="utf-8")


def test_every_shipped_rule_set_is_a_toml_file_with_sources_and_references():
    for name in ms.rules.names():
        text = shipped(name)
        rules = ms.rules.get(name)
        assert f'name = "{name}"' in text
        assert rules.sources and rules.references, name


@pytest.mark.parametrize("name", ["imta-2023", "micronet-2019-imagenet"])
def test_a_users_copy_of_a_shipped_file_scores_the_same(tmp_path, name):
    path = tmp_path / "mine.toml"
    path.write_text(shipped(name).replace(f'name = "{name}"', 'name = "mine"'), encoding="utf-8")
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
    mine = ms.score(model, (1, 3, 8, 8), rules=str(path))
    theirs = ms.score(model, (1, 3, 8, 8), rules=name)
    assert (mine.value, mine.param_storage, mine.math_ops, mine.convention) == \
        (theirs.value, theirs.param_storage, theirs.math_ops, theirs.convention)


def test_a_custom_toml_overrides_a_cost(tmp_path):
    path = tmp_path / "course.toml"
    path.write_text(
        '[rules]\nname = "cheap-norms"\nparam_baseline = 1e6\nops_baseline = 1e8\n\n'
        '[rules.convention]\nbase = "imta-profile"\nname = "imta-cheap-norms"\n\n'
        '[rules.convention.costs]\nBatchNorm2d = { ops = 1, per = "input" }\nReLU = "free"\n',
        encoding="utf-8")
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    base = ms.score(model, (1, 3, 6, 6), rules="imta-2023")
    custom = ms.score(model, (1, 3, 6, 6), rules=str(path))
    # 4 x 4 x 4 = 64 elements: batch norm 3 -> 1 op each (-128), ReLU 1 -> 0 (-64).
    assert base.math_ops - custom.math_ops == 128 + 64
    conv = ms.rules.load(path).counting
    assert conv.cost("ReLU").free and conv.cost("AvgPool2d") == CostOverride("AvgPool2d", ops=1, per="window")


def test_convention_fields_are_validated_with_micronet_errors():
    with pytest.raises(MicronetError, match="sparse_format"):
        get_convention("micronet").with_options(sparse_format="blocks")
    with pytest.raises(ConventionError, match="replaced by sparse_format"):
        get_convention("micronet").with_options(mask_policy="when-zeros")
    with pytest.raises(ConventionError, match="attribution"):
        ms.Convention(name="x", attribution="layers")
    with pytest.raises(ConventionError, match="per must be"):
        CostOverride("aten.relu", mults=1, per="channel")
    with pytest.raises(MicronetError, match="unknown counting convention"):
        get_convention("nope")


def test_convention_is_frozen_and_defaults_are_the_official_ones():
    c = get_convention("micronet")
    with pytest.raises(AttributeError):
        c.sparse_format = "cheapest"
    assert (c.attribution, c.sparse_format, c.sparse_tensors, c.formula, c.per_token) == \
        ("operators", "element", "weights", "micronet", False)
    assert c.storage == c.mask_policy  # what the engine hands to counting/storage.py


def test_count_under_a_block_convention_uses_block_bitmasks():
    layer = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0:4, 0:4] = 1.0  # one 4x4 block of 8 kept
    conv = get_convention("micronet").with_options(name="micronet-block", sparse_format="block")
    (row,) = ms.count(layer, (1, 16), convention=conv).tensors
    assert (row.block, row.mask_bits, row.stored_values) == ((4, 4), 8, 16)


def test_operator_cost_overrides_are_applied_by_the_engine():
    conv = get_convention("micronet").with_options(name="x", costs={"aten.relu": "free"})
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    assert ms.count(model, (1, 4)).mults == 12 + 3  # 4 x 3 linear mults, 3 ReLU
    assert ms.count(model, (1, 4), convention=conv).mults == 12
