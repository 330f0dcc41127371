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
