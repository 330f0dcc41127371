"""Scoring one entry end to end (build, load, count, evaluate, score) into a leaderboard row.

:func:`score_entry` takes and returns plain data, so it runs unchanged in this process, in a local process pool
or on a Dask worker. It never raises: a failure becomes the row's one-line ``error``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from micronet_score.organizer.datasets import Dataset, Preprocessing, read_dataset

ROW_FIELDS = ("rank", "name", "model", "correct", "total", "accuracy", "passed", "param_term", "ops_term",
              "score", "error")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def preprocessing_for(rules: Any, data: Mapping[str, Any], entry: Mapping[str, Any]) -> Preprocessing:
    """The rule set's preprocessing, overridden by the manifest's ``[data]`` table, then by the entry's own
    ``preprocessing`` table."""
    pre = Preprocessing.from_rules(rules)
    for table in (data.get("preprocessing") or {}, entry.get("preprocessing") or {}):
        pre = pre.override(**dict(table))
    return pre


_DATASETS: dict[tuple[str, str | None, Preprocessing], Dataset] = {}


def _cached_dataset(path: str, fmt: str | None, pre: Preprocessing, digest: str | None = None) -> Dataset:
    """The test set at ``path``, cached in this process under its contents' digest (never its path alone: data
    rewritten in place is read again). ``digest``: the contents' SHA-256 as the caller just computed it (the
    leaderboard hashes the data once per run; its children need not hash it again)."""
    from micronet_score.organizer.fingerprint import content_digest

    key = (digest or content_digest(path), fmt, pre)
    found = _DATASETS.get(key)
    if found is None:
        found = read_dataset(path, fmt, pre)
        if len(_DATASETS) >= 4:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[key] = found
    return found


def score_entry(task: Mapping[str, Any]) -> dict[str, Any]:
    """Score the ``task`` (keys ``entry``, ``base``, ``rules``, ``data``, ``batch_size``, ``device``) into a row.

    ``entry`` holds the manifest keys (``name``, ``model``, ``weights``, ``args``, ``input``, ``preprocessing``,
    ``compress``); ``data`` holds ``path`` (absolute), ``dataset`` and optional ``preprocessing``.
    """
    entry = dict(task["entry"])
    row: dict[str, Any] = {field: None for field in ROW_FIELDS}
    row.update(name=str(entry.get("name", "?")), model=entry.get("model"), args=entry.get("args") or {},
               weights=entry.get("weights"), weights_sha256=None, published=False)
    try:
        _score_into(row, entry, task)
    except Exception as exc:  # a broken entry gets its row and never stops the others
        row["error"] = _out_of_memory(exc, task.get("memory_limit")) or _one_line(exc)
        for key in ("correct", "total", "accuracy", "passed", "param_term", "ops_term", "score"):
            row[key] = None
    return row


def _score_into(row: dict[str, Any], entry: dict[str, Any], task: Mapping[str, Any]) -> None:
    from micronet_score import api, models
    from micronet_score import rules as rules_mod
    from micronet_score.organizer.evaluation import evaluate
    from micronet_score.organizer.submissions import rebuild

    base = Path(task["base"])
    ruleset = rules_mod.get(task["rules"])
    for key in ("model", "weights"):
        if not entry.get(key):
            raise ValueError(f"entry {row['name']!r} has no {key!r}")
    weights = base / str(entry["weights"])
    if not weights.is_file():
        raise FileNotFoundError(f"weights file {str(weights)!r} does not exist")
    row["weights_sha256"] = sha256_file(weights)
    model = rebuild(entry, base)
    spec = str(entry["model"])
    shape = entry.get("input") or (models.input_size(spec) if spec in models.names() else ruleset.input_size)
    if not shape:
        raise ValueError(f"entry {row['name']!r} needs input = [1, 3, H, W] (rule set {ruleset.name!r} has none)")
    report = api.count(model, tuple(shape), convention=ruleset.counting)
    data = task["data"]
    pre = preprocessing_for(ruleset, data, entry)
    dataset = _cached_dataset(str(data["path"]), data.get("dataset") or ruleset.data_format or None, pre,
                              data.get("sha256"))
    accuracy = evaluate(model, dataset, batch_size=int(task.get("batch_size") or 256),
                        device=task.get("device") or "cpu", progress=False)
    result = api.score(report, rules=ruleset, accuracy=accuracy.as_tuple())
    row.update(correct=accuracy.correct, total=accuracy.total, accuracy=accuracy.fraction, passed=result.passed,
               param_term=result.param_term, ops_term=result.ops_term, score=result.value,
               param_storage=result.param_storage, math_ops=result.math_ops, rules=ruleset.name,
               convention=ruleset.counting.name)
    if task.get("details"):  # the Codabench page's extras: the rule set's numbers and every layer's row (dicts)
        import dataclasses

        row.update(threshold=result.threshold, param_baseline=result.param_baseline,
                   ops_baseline=result.ops_baseline, layers=[dataclasses.asdict(r) for r in report.layers])


def _out_of_memory(exc: BaseException, limit: int | None) -> str | None:
    """``ran out of memory (8 GiB)`` when ``exc`` (or what it wraps) is a failed allocation, else None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, MemoryError) or (isinstance(cause, RuntimeError)
                                              and "can't allocate memory" in str(cause)):
            if limit:
                from micronet_score.organizer.limits import format_memory

                return f"ran out of memory ({format_memory(limit)})"
            return f"ran out of memory: {_one_line(cause)}"
        cause = cause.__cause__ or cause.__context__
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).split()) or type(exc).__name__
    from micronet_score.errors import MicronetError

    if not isinstance(exc, (MicronetError, ValueError, FileNotFoundError)):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 500 else text[:499] + "…"
