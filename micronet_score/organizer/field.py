"""The final MicroNet 2019 leaderboards, as published on the challenge site (shipped as package data).

>>> field = published("micronet-2019-cifar100")
>>> len(field), field[0].team, field[0].score
(30, 'RIAIR', 0.0044)
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

from micronet_score.organizer.errors import SubmissionError

SOURCE_REPO = "https://github.com/micronet-challenge/micronet-challenge.github.io"
SOURCE_COMMIT = "b487872e36b8bcf5067f4d6224fe3eef6aa32c1b"


@dataclass(frozen=True)
class PublishedEntry:
    """One row of a published leaderboard; the site gives the score only (no parameter or ops terms)."""

    leaderboard: str
    rank: int
    team: str
    affiliation: str
    score: float
    met_threshold: bool
    verified: bool
    storage_efficient: bool
    compute_efficient: bool
    code: str
    param_term: float | None = None
    ops_term: float | None = None

    def to_row(self) -> dict[str, Any]:
        """As a leaderboard row, marked published (not re-scored)."""
        return {"rank": None, "name": self.team, "model": None, "correct": None, "total": None, "accuracy": None,
                "passed": self.met_threshold, "param_term": self.param_term, "ops_term": self.ops_term,
                "score": self.score, "error": None, "published": True, "published_rank": self.rank,
                "affiliation": self.affiliation, "verified": self.verified, "code": self.code}


def names() -> list[str]:
    """The published leaderboards available."""
    return sorted({e.leaderboard for e in _all()})


def published(name: str) -> tuple[PublishedEntry, ...]:
    """The published final leaderboard ``name`` (``micronet-2019-cifar100``, ``-imagenet``, ``-wikitext103``)."""
    rows = tuple(e for e in _all() if e.leaderboard == name)
    if not rows:
        raise SubmissionError(f"no published leaderboard {name!r}; known: {', '.join(names())}")
    return rows


def check_against(name: str, rules: Any) -> tuple[PublishedEntry, ...]:
    """The published field ``name`` if a board scored under ``rules`` (a rule set or its name) may be ranked
    among it: the same track (dataset and metric) and the same baselines and threshold as the field's own rule
    set (the shipped rule set of the same name). Otherwise one :class:`SubmissionError` line naming both.

    >>> len(check_against("micronet-2019-cifar100", "micronet-2019-cifar100"))
    30
    """
    from micronet_score import rules as rules_mod

    field = published(name)
    theirs, ours = rules_mod.get(name), rules_mod.get(rules)
    if (_track(ours.dataset), ours.metric, ours.lower_is_better) != (
            _track(theirs.dataset), theirs.metric, theirs.lower_is_better):
        same = [n for n in names() if _track(rules_mod.get(n).dataset) == _track(ours.dataset)]
        hint = f"use --against {same[0]}" if same else "no published field is of that track; leave out --against"
        raise SubmissionError(
            f"--against {name} is the {theirs.dataset} track ({theirs.metric}), but the board's rule set "
            f"{ours.name!r} is {ours.dataset or 'of no named dataset'} ({ours.metric}): their scores cannot be "
            f"ranked together; {hint}")
    for key in ("param_baseline", "ops_baseline", "threshold"):
        mine, field_value = getattr(ours, key), getattr(theirs, key)
        if mine != field_value:
            raise SubmissionError(
                f"--against {name}: the board's rule set {ours.name!r} has {key} = {mine!r} where {name} has "
                f"{field_value!r}: scores under other baselines or another threshold cannot be ranked together; "
                f"score under rules = \"{name}\" or leave out --against")
    return field


def _track(dataset: str) -> str:
    return "".join(ch for ch in str(dataset).casefold() if ch.isalnum())


@functools.lru_cache(maxsize=1)
def _all() -> tuple[PublishedEntry, ...]:
    text = resources.files("micronet_score.organizer").joinpath("data/micronet-2019.csv").read_text("utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    out = []
    for r in csv.DictReader(lines):
        out.append(PublishedEntry(
            leaderboard=r["leaderboard"], rank=int(r["rank"]), team=r["team"], affiliation=r["affiliation"],
            score=float(r["score"]), met_threshold=r["met_threshold"] == "true", verified=r["verified"] == "true",
            storage_efficient=r["storage_efficient"] == "true", compute_efficient=r["compute_efficient"] == "true",
            code=r["code"]))
    return tuple(out)
