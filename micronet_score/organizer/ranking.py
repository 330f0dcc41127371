"""``leaderboard``: score every entry of a manifest and rank them.

```toml
rules = "micronet-2019-cifar100"      # a rule set name or a path to a TOML rule set
[data]
path = "cifar-100-python"             # relative to the manifest
dataset = "cifar100"
[[entry]]
name = "alice"
model = "densenet-seed"               # zoo name, file.py:factory or pkg.module:factory (relative to the manifest)
weights = "subs/alice.pt"
args = { num_classes = 100 }          # optional builder arguments
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micronet_score.organizer.errors import SubmissionError
from micronet_score.organizer.scoring import score_entry, sha256_file
from micronet_score.organizer.store import ResultStore
from micronet_score.organizer.submissions import read_toml

ENTRY_KEYS = {"name", "model", "weights", "args", "input", "preprocessing", "compress"}


@dataclass(frozen=True)
class Leaderboard:
    """Ranked rows (dicts with ``rank``, ``name``, ``correct``, ``total``, ``accuracy``, ``passed``,
    ``param_term``, ``ops_term``, ``score``, ``error``, ``published``); ``scored`` counts the entries scored in
    this run (the others came from the result store). ``manifest_dir`` and ``data_path`` are the organizer's
    absolute paths, which published files replace by relative ones (see :mod:`micronet_score.organizer.redact`);
    ``ruleset`` is the :class:`~micronet_score.rules.RuleSet` scored under (its threshold is drawn on the plot)."""

    rules: str
    rows: tuple[dict[str, Any], ...]
    scored: int = 0
    against: str | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    manifest_dir: str | None = None
    data_path: str | None = None
    ruleset: Any = None

    def to_json(self) -> str:
        return json.dumps(list(self.rows), indent=2)

    def markdown(self) -> str:
        from micronet_score.render.leaderboard import to_markdown

        return to_markdown(self)

    def __str__(self) -> str:
        from micronet_score.render.leaderboard import to_text

        return to_text(self)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest at ``path``, checked: ``rules``, ``[data]`` with ``path``, and ``[[entry]]`` tables."""
    path = Path(path)
    manifest = read_toml(path)
    if "rules" not in manifest:
        raise SubmissionError(f"{path}: the manifest needs rules = \"<rule set name or .toml path>\"")
    data = manifest.get("data")
    if not isinstance(data, dict) or "path" not in data:
        raise SubmissionError(f"{path}: the manifest needs a [data] table with path = \"<test set>\"")
    entries = manifest.get("entry")
    if not isinstance(entries, list) or not entries:
        raise SubmissionError(f"{path}: the manifest has no [[entry]] tables")
    seen = set()
    for i, entry in enumerate(entries):
        name = entry.get("name")
        if not name:
            raise SubmissionError(f"{path}: entry {i + 1} has no name")
        if name in seen:
            raise SubmissionError(f"{path}: two entries are named {name!r}")
        seen.add(name)
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise SubmissionError(f"{path}: entry {name!r} has unknown key(s) {sorted(unknown)}; known: "
                                  f"{sorted(ENTRY_KEYS)}")
    return manifest


def leaderboard(manifest: str | Path, out: str | Path | None = None, *, workers: int = 1,
                scheduler: str | None = None, executor: Executor | None = None, against: str | None = None,
                batch_size: int = 256, device: str = "cpu") -> Leaderboard:
    """Score every entry of ``manifest`` and write ``out/leaderboard.{md,csv,json,html}`` (``out`` defaults to
    the manifest's folder). Finished rows are kept in ``out/results.sqlite``: a rerun scores only new entries.

    >>> # ms.leaderboard("challenge.toml", "board", workers=2, against="micronet-2019-cifar100")
    """
    from micronet_score import rules as rules_mod
    from micronet_score.organizer.executors import make_executor

    manifest_path = Path(manifest).resolve()
    spec = read_manifest(manifest_path)
    base = manifest_path.parent
    rules_name = str(spec["rules"])
    if rules_name.endswith(".toml") and not Path(rules_name).is_absolute():
        rules_name = str(base / rules_name)
    ruleset = rules_mod.get(rules_name)
    if against:  # refused before anything is scored
        from micronet_score.organizer.field import check_against

        check_against(against, ruleset)
    data = dict(spec["data"])
    data["path"] = str((base / str(data["path"])).resolve())
    out_dir = Path(out) if out is not None else base
    store = ResultStore(out_dir / "results.sqlite")
    tasks = []
    for entry in spec["entry"]:
        task = {"entry": entry, "base": str(base), "rules": rules_name, "data": data, "batch_size": batch_size,
                "device": device}
        tasks.append((result_key(task, ruleset), task))
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for key, task in tasks:
        found = store.get(key)
        if found is not None:
            rows[key] = found
        else:
            todo.append((key, task))
    if todo:
        own = executor is None
        pool = make_executor(workers, scheduler) if own else executor
        try:
            futures = {pool.submit(score_entry, task): (key, task) for key, task in todo}
            for future in as_completed(futures):
                key, task = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # the worker itself died: the entry gets its row
                    row = {"name": task["entry"].get("name"), "error": f"worker failed: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())}"[:400], "published": False}
                store.put(key, row)
                rows[key] = row
        finally:
            if own:
                pool.shutdown()
    ordered = [rows[key] for key, _ in tasks]
    if against:
        from micronet_score.organizer.field import published

        ordered += [e.to_row() for e in published(against)]
    board = Leaderboard(rules=ruleset.name, rows=tuple(rank(ordered)), scored=len(todo), against=against,
                        manifest_dir=str(base), data_path=str(data["path"]), ruleset=ruleset)
    board.outputs.update(write_outputs(board, out_dir))
    return board


def result_key(task: Mapping[str, Any], ruleset: Any) -> str:
    """Hash of everything that decides an entry's result: the entry, its weights' and model file's bytes, the
    rule set, the test data and its preprocessing, and the library version."""
    from micronet_score._version import __version__

    entry = task["entry"]
    base = Path(task["base"])
    files = {}
    for label, rel in (("weights", entry.get("weights")), ("model_file", _model_file(entry.get("model")))):
        if rel and (base / str(rel)).is_file():
            files[label] = sha256_file(base / str(rel))
    rules_text = re.sub(r" at 0x[0-9a-fA-F]+", "", f"{ruleset!r} {ruleset.counting!r}")  # no addresses
    payload = {"entry": entry, "files": files, "rules": rules_text, "data": task["data"],
               "data_files": _fingerprint(Path(task["data"]["path"])), "version": __version__,
               "batch_size": task.get("batch_size")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _model_file(model: Any) -> str | None:
    if isinstance(model, str) and ":" in model:
        target = model.rpartition(":")[0]
        return target if target.endswith(".py") else None
    return None


def _fingerprint(path: Path) -> list[tuple[str, int, int]]:
    if path.is_file():
        st = path.stat()
        return [(path.name, st.st_size, st.st_mtime_ns)]
    out = []
    for root, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out.append((os.path.relpath(os.path.join(root, name), path), st.st_size, st.st_mtime_ns))
    return sorted(out)


def rank(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered by score (lower is better): entries that meet the accuracy threshold (or have none) first,
    then those below it (as the challenge placed only qualifying entries), each by score, then by name.

    Ranks are standard competition ranking over every scored row (published rows included): rows in the same
    group whose scores are equal as floats share a rank and the next rank skips (1, 2, 3, 3, 5). Scores are
    compared exactly, not as displayed: two scores that print alike at six decimals may rank apart (the JSON and
    CSV hold the full values). Failed entries (an error, or no finite score) come last, without a rank.
    """
    def scorable(r: dict[str, Any]) -> bool:
        score = r.get("score")
        return (r.get("error") is None and isinstance(score, (int, float)) and not isinstance(score, bool)
                and math.isfinite(score))

    scored = sorted((r for r in rows if scorable(r)),
                    key=lambda r: (r.get("passed") is False, float(r["score"]), str(r.get("name"))))
    failed = sorted((r for r in rows if not scorable(r)), key=lambda r: str(r.get("name")))
    out: list[dict[str, Any]] = []
    previous: tuple[bool, float] | None = None
    current = 0
    for i, r in enumerate(scored, start=1):
        place = (r.get("passed") is False, float(r["score"]))
        if place != previous:
            current, previous = i, place
        out.append({**r, "rank": current})
    out.extend({**r, "rank": None} for r in failed)
    return out


def write_outputs(board: Leaderboard, out_dir: str | Path) -> dict[str, Path]:
    """``leaderboard.{md,csv,json,html}`` in ``out_dir``, each written to a temporary file of its own (two boards
    writing one folder never share one) and renamed over the last.

    What is published names no absolute path of this machine: every string of every row is rewritten relative
    to the manifest's folder (the test data as ``<data>``, ``out_dir`` as ``<out>``, any other absolute path as
    ``<path>/`` and its file name); ``board`` itself is left as it is."""
    from micronet_score.organizer.redact import redact, roots
    from micronet_score.render import leaderboard as render

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = roots(base=board.manifest_dir, data=board.data_path, out=out_dir)
    public = dataclasses.replace(board, rules=redact(board.rules, paths),
                                 rows=tuple(redact(dict(row), paths) for row in board.rows), outputs={})
    written = {}
    for ext, text in (("md", render.to_markdown(public)), ("csv", render.to_csv(public)),
                      ("json", public.to_json() + "\n"), ("html", render.to_html(public))):
        target = out_dir / f"leaderboard.{ext}"
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".leaderboard.{ext}.", suffix=".tmp")  # a unique name
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)  # published: readable by a web server, as a plain write would be
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written[ext] = target
    return written
