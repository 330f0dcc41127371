"""Rule sets and score arithmetic (spec section 5)."""

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.rules import RuleSet, evaluate


def test_spec_score_arithmetic():
    # 3M parameters and 500M ops against ImageNet: 3/6.9 + 500/1170 = 0.862133.
    assert round(evaluate(3e6, 500e6, rules="micronet-2019-imagenet").value, 6) == 0.862133
    # MSUNet-V3: 0.09853M parameters, 85.27M ops against CIFAR-100: 0.010828.
    assert round(evaluate(0.09853e6, 85.27e6, rules="micronet-2019-cifar100").value, 6) == 0.010828


def test_baselines_score_two():
    assert evaluate(36.5e6, 10.49e9, rules="micronet-2019-cifar100").value == pytest.approx(2.0)
    assert evaluate(6.9e6, 1170e6, rules="micronet-2019-imagenet").value == pytest.approx(2.0)


def test_thresholds_compare_exactly():
    rules = ms.rules.get("micronet-2019-cifar100")
    assert rules.passes((8000, 10000)) is True  # 80% exactly passes, no rounding
    assert rules.passes((7999, 10000)) is False
    assert rules.passes(0.8) is True
    assert ms.rules.get("micronet-2019-imagenet").passes((37_500, 50_000)) is True
    assert ms.rules.get("micronet-2019-imagenet").passes((37_499, 50_000)) is False
    with pytest.raises(ValueError, match="fraction"):
        rules.passes(80.0)


def test_score_from_model_and_from_report_agree():
    model = nn.Linear(100, 10)
    direct = ms.score(model, (1, 100), rules="micronet-2019-imagenet", accuracy=(9, 10))
    via = ms.score(ms.count(model, (1, 100)), rules="micronet-2019-imagenet", accuracy=(9, 10))
    assert direct == via
    # 1,010 params at 16 bits = 505; 1,000 mults at 16 bits = 500 plus 1,000 adds at 32 bits = 1,500.
    assert direct.param_storage == 505 and direct.math_ops == 1_500
    assert direct.value == pytest.approx(505 / 6.9e6 + 1_500 / 1.17e9)
    assert direct.passed is True


def test_score_refuses_mixed_arguments_and_foreign_conventions():
    report = ms.count(nn.Linear(2, 2), (1, 2))
    with pytest.raises(ms.InputError):
        ms.score(report, (1, 2), rules="micronet-2019-imagenet")
    other = ms.Convention(name="other", accumulator_bits=16)
    rules = RuleSet("uses-other", 1e6, 1e8, convention=other)
    with pytest.raises(ms.ConventionMismatchError, match="ms.score\\(model, inputs"):
        ms.score(report, rules=rules)
    assert ms.score(nn.Linear(2, 2), (1, 2), rules=rules).convention == "other"


def test_unknown_rule_set_lists_known():
    with pytest.raises(ms.UnknownRuleSetError) as info:
        ms.rules.get("micronet-2018")
    assert "micronet-2019-cifar100" in str(info.value)


def test_rule_set_validation():
    with pytest.raises(ValueError, match="param_baseline"):
        RuleSet("x", 0, 1)
    with pytest.raises(ValueError, match="threshold"):
        RuleSet("x", 1, 1, threshold=90)


def test_custom_rules_from_toml(tmp_path):
    path = tmp_path / "course.toml"
    path.write_text(
        '[rules]\nname = "course-2026"\nparam_baseline = 5.6e6\nops_baseline = 2.8e8\nthreshold = 0.9\n'
        'dataset = "CIFAR-10"\ninput_size = [1, 3, 32, 32]\n\n[rules.convention]\nbase = "micronet"\n'
        "accumulator_bits = 16\n"
    )
    rules = ms.rules.load(path)
    assert rules.name == "course-2026" and rules.counting.accumulator_bits == 16
    # counted under the rule set's convention: 1,000 adds at 16 bits = 500.
    result = ms.score(nn.Linear(100, 10), (1, 100), rules=str(path))
    assert result.math_ops == 500 + 500
    bad = tmp_path / "bad.toml"
    bad.write_text('[rules]\nname = "x"\nparam_baseline = 1\nops_baseline = 1\nbaseline = 3\n')
    with pytest.raises(ValueError, match="unknown rule set field"):
        ms.rules.load(bad)
    with pytest.raises(FileNotFoundError):
        ms.rules.load(tmp_path / "missing.toml")


def test_score_uses_rules_input_size_by_default():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))  # materialise the lazy layer
    result = ms.score(model, rules="micronet-2019-cifar100")
    assert result.value > 0
