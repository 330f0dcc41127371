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

import torch

from micronet_score.organizer.datasets import Dataset, Preprocessing, read_dataset
from micronet_score.organizer.errors import SubmissionError

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
    ``preprocessing`` table (a manifest's; a submission cannot carry one)."""
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

    ``entry`` holds the manifest keys (``name``, ``model``, ``weights`` or ``program``, ``args``, ``bits``,
    ``preprocessing``, ``compress``, ``allow_code``...); ``data`` holds ``path`` (absolute), ``dataset`` and
    optional ``preprocessing``. Optional task keys: ``allow_code``, ``entry_timeout`` (s), ``entry_memory``
    (bytes). Every entry is counted on one example of the test data's shape.
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
    from micronet_score import api
    from micronet_score import rules as rules_mod
    from micronet_score.organizer.evaluation import evaluate

    if entry.get("refused"):
        raise SubmissionError(str(entry["refused"]))
    base = Path(task["base"])
    ruleset = rules_mod.get(task["rules"])
    data = task["data"]
    pre = preprocessing_for(ruleset, data, entry)
    dataset = _cached_dataset(str(data["path"]), data.get("dataset") or ruleset.data_format or None, pre,
                              data.get("sha256"))
    shape = example_shape(dataset)
    given = entry.get("input")
    if given is not None and [int(s) for s in given] != list(shape):
        raise SubmissionError(f"entry {row['name']!r}: input = {list(given)} is not the shape of one example of "
                              f"the test data {list(shape)}, which is what every entry is counted on; drop input")
    task = dict(task)  # load_entry records the local code a child process ran in task["code_files"]
    model, notes, digest, exported = load_entry(entry, base, shape, task)
    if task.get("code_files"):
        row["code_files"] = dict(task["code_files"])
    row["weights_sha256"] = digest
    if notes:
        row["notes"] = "; ".join(notes)
    report = api.count(model, shape, convention=ruleset.counting)
    accuracy = evaluate(Exported(model) if exported else model, dataset,
                        batch_size=int(task.get("batch_size") or 256), device=task.get("device") or "cpu",
                        progress=False)
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


def example_shape(dataset: Dataset) -> tuple[int, ...]:
    """The counting input: the shape of one example of the test data, as the model receives it."""
    return tuple(int(s) for s in dataset.batch(0, 1).shape)


def load_entry(entry: Mapping[str, Any], base: Path, shape: tuple[int, ...], task: Mapping[str, Any] | None = None,
               **load_options: Any) -> tuple[Any, list[str], str, bool]:
    """(model, load notes, SHA-256 of the weights or program, whether it is an exported program's module).

    A zoo model is built here from plain arguments. An entry whose ``model`` is Python code needs ``allow_code``
    (the manifest's, or ``task["allow_code"]``) and is built and exported in a child process
    (:mod:`micronet_score.organizer.entry_code`) with ``entry_timeout`` (s) / ``entry_memory`` (GiB) limits from the
    manifest, else the task's (seconds, bytes); an exported
    program (``program = "x.pt2"``) is loaded. Either way what is evaluated is what is counted.
    """
    from micronet_score.organizer.entry_code import (
        DEFAULT_MEMORY_BYTES,
        DEFAULT_TIMEOUT_S,
        export_in_child,
    )
    from micronet_score.organizer.programs import check_input_shape, load_program
    from micronet_score.organizer.submissions import is_code, rebuild_in_process

    task = task or {}
    if entry.get("program"):
        path = base / str(entry["program"])
        if not path.is_file():
            raise FileNotFoundError(f"exported program {str(entry['program'])!r} does not exist")
        program = load_program(path)
        check_input_shape(program, shape, str(entry["program"]))
        return program.module(), [], sha256_file(path), True
    for key in ("model", "weights"):
        if not entry.get(key):
            raise SubmissionError(f"entry {entry.get('name', '?')!r} has no {key!r}")
    weights = base / str(entry["weights"])
    if not weights.is_file():
        raise FileNotFoundError(f"weights file {str(entry['weights'])!r} does not exist")
    digest = sha256_file(weights)
    spec = str(entry["model"])
    if not is_code(spec):
        model, notes = rebuild_in_process(entry, base, shape, **load_options)
        return model, notes, digest, False
    if not (task.get("allow_code") or entry.get("allow_code")):
        raise SubmissionError(f"model {spec!r} is Python code, which this challenge does not run: the organizer "
                              "allows it with allow_code = true in the manifest (it then runs in a child process "
                              "that only exports the model)")
    recipe = {k: entry[k] for k in ("model", "weights", "args", "compress", "bits") if entry.get(k) is not None}
    # the manifest's entry_timeout (s) / entry_memory (GiB) first, else the command line's (task: s, bytes)
    timeout = float(entry.get("entry_timeout") or task.get("entry_timeout") or DEFAULT_TIMEOUT_S)
    memory = int(float(entry["entry_memory"]) * (1 << 30)) if entry.get("entry_memory") else \
        task.get("entry_memory", DEFAULT_MEMORY_BYTES)  # None: no limit (--entry-memory none)
    program, notes, code_files = export_in_child(recipe, base, shape, timeout=timeout, memory=memory)
    if isinstance(task, dict):  # the code the child ran: a stored row made from other code is scored again
        task.setdefault("code_files", {}).update(code_files)
    return program.module(), list(notes), digest, True


class Exported(torch.nn.Module):
    """An exported program's module for :func:`evaluate`: it was exported in eval mode, and ``train()``/
    ``eval()`` (which exported modules refuse) only set the flag here."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.program = module

    def train(self, mode: bool = True) -> Exported:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> Any:
        return self.program(x)


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).split()) or type(exc).__name__
    from micronet_score.errors import MicronetError

    if not isinstance(exc, (MicronetError, ValueError, FileNotFoundError)):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 500 else text[:499] + "…"
