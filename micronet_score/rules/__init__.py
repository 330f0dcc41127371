"""Rule sets and the score arithmetic (scoring a model or a report: :func:`micronet_score.api.score`)."""

from micronet_score.rules.ruleset import RuleSet, RuleSetError, accuracy_fraction, get, load, names, register
from micronet_score.rules.score import Score, evaluate

__all__ = ["RuleSet", "RuleSetError", "Score", "accuracy_fraction", "evaluate", "get", "load", "names", "register"]
