"""Rule sets and scoring."""

from micronet_score.rules.ruleset import RuleSet, accuracy_fraction, get, load, names, register
from micronet_score.rules.score import Score, evaluate, score

__all__ = ["RuleSet", "Score", "accuracy_fraction", "evaluate", "get", "load", "names", "register", "score"]
