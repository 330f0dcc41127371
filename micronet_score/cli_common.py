"""What every verb of the ``micronet-score`` command shares: the usage error, argument parsers, model and
rule-set resolution, the ``--json`` run description. ``cli.py`` and ``cli_organizer.py`` both import it."""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class CliError(Exception):
    """A user mistake on the command line: printed as one line, exit status 2."""


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` (or ``1x3x32x32``) -> (1, 3, 32, 32)."""
    parts = re.split(r"[,x]", text.replace(" ", ""))
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise CliError(f"--input {text!r} is not a shape: write sizes separated by commas, e.g. 1,3,32,32") \
            from None
    if not shape or any(s <= 0 for s in shape):
        raise CliError(f"--input {text!r} needs positive sizes, e.g. 1,3,32,32")
    return shape


def parse_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """``["growth_rate=12", "width=1.4"]`` -> {"growth_rate": 12, "width": 1.4} (Python literals, else str)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CliError(f"--arg {item!r} must look like name=value")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def resolve_model(name: str, kwargs: dict[str, Any]) -> tuple[torch.nn.Module, Any]:
    """A zoo name, ``pkg.module:factory`` or ``path/to/file.py:factory`` -> (model, default inputs: a shape, the
    model's example inputs, or None); the same resolution as a leaderboard entry's ``model``. A model of one's
    own that defines ``example_inputs()`` (token ids, a state: what a shape cannot say) is counted on what it
    returns, as the zoo's language model is."""
    from micronet_score import models
    from micronet_score.organizer.builders import build_model
    from micronet_score.organizer.errors import SubmissionError

    try:
        model = build_model(name, kwargs, Path.cwd())
    except SubmissionError as exc:
        raise CliError(str(exc)) from None
    if name in models.names():
        return model, models.example_inputs(name, model)
    make = getattr(model, "example_inputs", None)
    return model, (make() if callable(make) else None)


def parse_accuracy(text: str) -> float | tuple[int, int]:
    """``"0.9012"`` -> 0.9012; ``"9010/10000"`` -> (9010, 10000)."""
    num, sep, den = text.partition("/")
    try:
        return (int(num.replace(",", "")), int(den.replace(",", ""))) if sep else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an accuracy: write a fraction (0.9012) or "
                                         "correct/total (9010/10000)") from None


def get_rules(name: str | None) -> Any:
    """The rule set ``name`` (None when not given); an unknown name is a usage error (exit 2)."""
    from micronet_score import rules as rules_mod
    from micronet_score.errors import UnknownRuleSetError

    if not name:
        return None
    try:
        return rules_mod.get(name)
    except (UnknownRuleSetError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None


def describe_run(model: str, kwargs: dict[str, Any], weights: str | None, ruleset: Any, report: Any,
                 accuracy: Any) -> dict[str, Any]:
    """What a ``--json`` output records besides the report and score: model, arguments, weights and their
    sha256, rule set, convention, library version and accuracy."""
    from micronet_score._version import __version__
    from micronet_score.organizer.scoring import sha256_file

    if isinstance(accuracy, tuple):
        accuracy = {"correct": accuracy[0], "total": accuracy[1], "fraction": accuracy[0] / accuracy[1]}
    return {
        "model": model, "args": kwargs,
        "weights": None if not weights else {"path": str(Path(weights).resolve()), "sha256": sha256_file(weights)},
        "rules": None if ruleset is None else ruleset.name,
        "convention": report.convention, "version": __version__, "accuracy": accuracy,
    }
