"""The score arithmetic: two 32-bit-equivalent totals against a rule set's baselines. Scoring a model or a
report (which needs the engine) is :func:`micronet_score.api.score`; this module never imports the engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from micronet_score.errors import InputError
from micronet_score.rules.ruleset import RuleSet, get


@dataclass(frozen=True, repr=False)
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

    def __repr__(self) -> str:
        from micronet_score.render.text import score_repr

        return score_repr(self)

    def _repr_html_(self) -> str:
        from micronet_score.render.html import score_html

        return score_html(self)


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

