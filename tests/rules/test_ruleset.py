"""Issue 20: a rule set that cannot give a true score is refused when it is loaded, naming the key.

Each case is one line of an otherwise valid TOML file (TOML writes infinity ``inf`` and not-a-number ``nan``), or
the same field given to :class:`RuleSet` in Python.
"""

from __future__ import annotations

import pytest

import micronet_score as ms
from micronet_score.cli import main
from micronet_score.convention import ConventionError
from micronet_score.rules import RuleSet, RuleSetError

_BASE = {"name": '"course-2026"', "param_baseline": "5.6e6", "ops_baseline": "2.8e8", "threshold": "0.9"}


def _toml(tmp_path, convention: str = "", **fields: str):
    table = {**_BASE, **fields}
    text = "[rules]\n" + "".join(f"{k} = {v}\n" for k, v in table.items() if v is not None) + convention
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


REFUSED = {
    "param_baseline = inf": ({"param_baseline": "inf"}, "param_baseline"),
    "ops_baseline = inf": ({"ops_baseline": "inf"}, "ops_baseline"),
    "ops_baseline = nan": ({"ops_baseline": "nan"}, "ops_baseline"),
    "threshold = inf, lower_is_better": ({"threshold": "inf", "lower_is_better": "true"}, "threshold"),
    "threshold = nan, lower_is_better": ({"threshold": "nan", "lower_is_better": "true"}, "threshold"),
    "threshold a string": ({"threshold": '"0.9"'}, "threshold"),
    "lower_is_better a string": ({"lower_is_better": '"yes"'}, "lower_is_better"),
    "input_size negative": ({"input_size": "[1, -3, 32, 32]"}, "input_size"),
    "input_size empty": ({"input_size": "[]"}, "input_size"),
    "input_size fractional": ({"input_size": "[1, 3, 32.5, 32]"}, "input_size"),
    "input_size a string": ({"input_size": '"1x3x32x32"'}, "input_size"),
    "input_size a number": ({"input_size": "32"}, "input_size"),
    "data_format unknown": ({"data_format": '"jpeg"'}, "data_format"),
    "data_scale zero": ({"data_scale": "0"}, "data_scale"),
    "data_scale nan": ({"data_scale": "nan"}, "data_scale"),
    "data_scale a string": ({"data_scale": '"1/255"'}, "data_scale"),
    "data_mean inf": ({"data_mean": "[0.5, inf, 0.5]"}, "data_mean"),
    "data_mean strings": ({"data_mean": '["a", "b", "c"]'}, "data_mean"),
    "data_std zero": ({"data_std": "[0.2, 0.0, 0.2]"}, "data_std"),
    "data_std nan": ({"data_std": "[0.2, nan, 0.2]"}, "data_std"),
    "data_mean and data_std lengths": ({"data_mean": "[0.5, 0.5, 0.5]", "data_std": "[0.2, 0.2]"}, "data_std"),
    "data_resize negative": ({"data_resize": "-3"}, "data_resize"),
    "data_crop zero": ({"data_crop": "0"}, "data_crop"),
    "data_crop fractional": ({"data_crop": "31.5"}, "data_crop"),
    "data_crop boolean": ({"data_crop": "true"}, "data_crop"),
    "sources a number": ({"sources": "7"}, "sources"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_field_that_cannot_score_is_refused_naming_the_key(tmp_path, capsys, case):
    fields, key = REFUSED[case]
    path = _toml(tmp_path, **fields)
    with pytest.raises(RuleSetError, match=key) as caught:
        ms.rules.load(path)
    assert "\n" not in str(caught.value) and isinstance(caught.value, ms.MicronetError)
    assert main(["count", "torch.nn:Linear", "--arg", "in_features=2", "--arg", "out_features=1", "--input",
                 "1,2", "--rules", str(path)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and key in err


@pytest.mark.parametrize(("value", "shown"), [("nan", "nan"), ("inf", "inf"), ("-1", "-1")])
def test_a_cost_override_of_nan_or_inf_is_refused_naming_the_target(tmp_path, value, shown):
    convention = f'\n[rules.convention]\nbase = "imta-profile"\n\n[rules.convention.costs]\nBatchNorm2d = {{ ops = {value}, per = "input" }}\n'
    with pytest.raises(ConventionError, match=f"'BatchNorm2d': ops must be a finite number >= 0, got {shown}"):
        ms.rules.load(_toml(tmp_path, convention))
    with pytest.raises(ConventionError, match="'aten.relu': mults"):
        ms.convention.get_convention("micronet").with_options(name="x", costs={"aten.relu": {"mults": float(value)}})


@pytest.mark.parametrize("kwargs", [{"param_baseline": float("inf")}, {"ops_baseline": float("inf")},
                                    {"threshold": float("inf"), "lower_is_better": True},
                                    {"threshold": float("nan"), "lower_is_better": True},
                                    {"threshold": float("nan")}, {"input_size": (1, 0, 32, 32)},
                                    {"data_std": (0.0,)}, {"data_format": "CIFAR10"}])
def test_the_same_fields_are_refused_in_python(kwargs):
    base = {"name": "x", "param_baseline": 1.0, "ops_baseline": 1.0, **kwargs}
    with pytest.raises(RuleSetError, match=next(k for k in kwargs if k != "lower_is_better")):
        RuleSet(**base)


def test_an_infinite_baseline_would_have_scored_zero():
    # The reason for the refusal: storage / inf = 0, so every model's parameters would be free.
    with pytest.raises(RuleSetError):
        ms.rules.evaluate(1e6, 1e8, rules=RuleSet("x", float("inf"), 2.8e8))


def test_a_user_file_taking_a_shipped_name_is_refused_and_a_renamed_one_loads(tmp_path, capsys):
    shipped = ms.rules.get("micronet-2019-cifar100")
    path = _toml(tmp_path, name='"micronet-2019-cifar100"', param_baseline="1e3", ops_baseline="1e3",
                 threshold="0.1")
    with pytest.raises(RuleSetError, match="micronet-2019-cifar100.*rename it") as caught:
        ms.rules.load(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(RuleSetError, match="rename it"):
        ms.rules.get(str(path))
    assert main(["count", "torch.nn:Linear", "--arg", "in_features=2", "--arg", "out_features=1", "--input",
                 "1,2", "--rules", str(path)]) != 0
    assert "rename it" in capsys.readouterr().err
    with pytest.raises(RuleSetError, match="another name"):
        ms.score(ms.count(ms.models.build("resnet18-cifar", width=8), (1, 3, 32, 32)),
                 rules=RuleSet("micronet-2019-cifar100", 1e3, 1e3))
    assert ms.rules.get("micronet-2019-cifar100") is shipped  # the registry still holds the shipped one
    renamed = ms.rules.load(_toml(tmp_path, name='"micronet-2019-cifar100-custom"', param_baseline="1e3",
                                  ops_baseline="1e3", threshold="0.1"))
    assert renamed.param_baseline == 1e3


def test_a_verbatim_copy_of_a_shipped_file_loads_as_that_rule_set(tmp_path):
    from importlib.resources import files

    copy = tmp_path / "copy.toml"
    copy.write_text((files("micronet_score.rules") / "imta-2025.toml").read_text())
    assert ms.rules.load(copy) == ms.rules.get("imta-2025")


def test_every_shipped_rule_set_passes_the_checks():
    for name in ms.rules.names():
        rules = ms.rules.get(name)
        assert rules.param_baseline > 0 and rules.ops_baseline > 0


def test_an_infinite_metric_fails_a_lower_is_better_threshold_and_nan_is_refused():
    rules = ms.rules.get("micronet-2019-wikitext103")
    assert rules.lower_is_better and rules.passes(float("inf")) is False  # before: ValueError from Fraction('inf')
    assert rules.passes(rules.threshold) is True
    with pytest.raises(ValueError, match="non-negative"):
        rules.passes(float("nan"))
