"""``score``: a report (or a model and inputs) against a rule set."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from micronet_score.errors import ConventionMismatchError, InputError
from micronet_score.report import Report
from micronet_score.rules import formulas
from micronet_score.rules.ruleset import RuleSet, get


@dataclass(frozen=True)
class Score:
    """``value = param_term + ops_term``; ``passed`` is None when no accuracy was given."""

    value: float
    param_term: float
    ops_term: float
    param_storage: float
    math_ops: float
    param_baseline: float
    ops_baseline: float
    rules: str
    rules_version: str
    convention: str
    threshold: float | None
    accuracy: float | None
    passed: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        from micronet_score.render import score_summary

        return score_summary(self)


def score(
    target: Report | torch.nn.Module,
    inputs: Any = None,
    *,
    rules: str | RuleSet,
    accuracy: float | tuple[int, int] | None = None,
    **count_options: Any,
) -> Score:
    """Score a :class:`Report`, or count ``target`` on ``inputs`` first (``count_options`` go to ``count``).

    >>> import torch, micronet_score as ms
    >>> s = ms.score(torch.nn.Linear(100, 10), (1, 100), rules="micronet-2019-imagenet")
    >>> s.param_storage, s.math_ops  # 1010 params and 1000 mults at 16 bits, 1000 adds at 32 bits
    (505.0, 1500.0)
    >>> round(s.value, 10)  # 505 / 6.9e6 + 1500 / 1.17e9
    7.44705e-05
    """
    ruleset = get(rules)
    if isinstance(target, Report):
        if inputs is not None or count_options:
            raise InputError("score() got a Report and also inputs or count options; pass either a Report, or "
                             "a model with its inputs")
        report = target
        if report.convention != ruleset.counting.name:
            raise ConventionMismatchError(
                f"the report was counted under convention {report.convention!r} but rule set {ruleset.name!r} "
                f"scores under {ruleset.counting.name!r}: call ms.score(model, inputs, rules={ruleset.name!r})"
            )
    elif isinstance(target, torch.nn.Module):
        if inputs is None:
            if ruleset.input_size is None:
                raise InputError(f"score() needs inputs for the model (rule set {ruleset.name!r} has no default "
                                 "input size)")
            inputs = ruleset.input_size
        report = _measure(target, inputs, ruleset, count_options)  # dispatch on the convention
    else:
        raise InputError(f"score() needs a Report or a torch.nn.Module, got {type(target).__name__}")
    storage, ops = formulas.terms(ruleset.counting, report)
    return evaluate(storage, ops, rules=ruleset, accuracy=accuracy)


def _measure(model: torch.nn.Module, inputs: Any, ruleset: RuleSet, options: dict[str, Any]) -> Any:
    """Count ``model`` the way the rule set's convention attributes costs (see rules/formulas.py)."""
    conv = ruleset.counting
    if conv.per_token and not formulas.one_token_per_example(inputs):
        raise InputError(f"rule set {ruleset.name!r} counts per token: step one token at a time (inputs of "
                         "shape (batch, 1), the recurrent state passed as an input)")
    from micronet_score.counting.engine import count  # leaf-module conventions: the course's counter

    return count(model, inputs, convention=conv, **options)


def evaluate(
    param_storage: float,
    math_ops: float,
    *,
    rules: str | RuleSet,
    accuracy: float | tuple[int, int] | None = None,
) -> Score:
    """The score arithmetic alone, for 32-bit-equivalent totals counted elsewhere.

    >>> from micronet_score.rules import evaluate
    >>> round(evaluate(3e6, 500e6, rules="micronet-2019-imagenet").value, 6)  # 3/6.9 + 500/1170
    0.862133
    """
    ruleset = get(rules)
    for label, value in (("param_storage", param_storage), ("math_ops", math_ops)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != value:
            raise InputError(f"{label} must be a non-negative number, got {value!r}")
    param_term = param_storage / ruleset.param_baseline
    ops_term = math_ops / ruleset.ops_baseline
    passed = ruleset.passes(accuracy) if accuracy is not None else None
    acc_value = None
    if accuracy is not None:
        acc_value = accuracy[0] / accuracy[1] if isinstance(accuracy, tuple) else float(accuracy)
    return Score(
        value=param_term + ops_term, param_term=param_term, ops_term=ops_term,
        param_storage=param_storage, math_ops=math_ops,
        param_baseline=ruleset.param_baseline, ops_baseline=ruleset.ops_baseline,
        rules=ruleset.name, rules_version=ruleset.version, convention=ruleset.counting.name,
        threshold=ruleset.threshold, accuracy=acc_value, passed=passed,
    )
