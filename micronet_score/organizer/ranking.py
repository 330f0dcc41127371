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

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micronet_score.organizer.errors import SubmissionError
from micronet_score.organizer.scoring import score_entry, sha256_file
from micronet_score.organizer.store import ResultStore
from micronet_score.organizer.submissions import check_args, is_code, model_list, read_submission, read_toml

ENTRY_KEYS = {"name", "model", "weights", "args", "input", "preprocessing", "compress", "bits", "program",
              "submission", "allow_code", "entry_timeout", "entry_memory"}
#: Manifest-wide settings copied into every entry that does not set its own.
POLICY_KEYS = ("allow_code", "entry_timeout", "entry_memory")
_FROM_SUBMISSION = ("model", "weights", "args", "compress", "program")


@dataclass(frozen=True)
class Leaderboard:
    """Ranked rows (dicts with ``rank``, ``name``, ``correct``, ``total``, ``accuracy``, ``passed``,
    ``param_term``, ``ops_term``, ``score``, ``error``, ``published``); ``scored`` counts the entries scored in
    this run (the others came from the result store)."""

    rules: str
    rows: tuple[dict[str, Any], ...]
    scored: int = 0
    against: str | None = None
    outputs: dict[str, Path] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(list(self.rows), indent=2)

    def markdown(self) -> str:
        from micronet_score.render.leaderboard import to_markdown

        return to_markdown(self)

    def __str__(self) -> str:
        from micronet_score.render.leaderboard import to_text

        return to_text(self)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest at ``path``, checked: ``rules``, ``[data]`` with ``path``, and ``[[entry]]`` tables.

    An entry's ``submission = "subs/heidi"`` is replaced by the keys of that ``save_submission`` folder (checked
    as a participant's: see :func:`~micronet_score.organizer.submissions.check_submission`), with paths made
    relative to the manifest; a folder that is refused gives the entry a ``refused`` reason (its row's error).
    The manifest-wide ``allow_code``, ``entry_timeout`` and ``entry_memory`` are copied into each entry;
    ``models = [...]`` lists the zoo names a submission folder may use.
    """
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
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SubmissionError(f"{path}: entry {i + 1} is not a table: write [[entry]] with name = \"...\"")
    allowed = model_list(manifest, str(path))
    seen = set()
    resolved = []
    for i, entry in enumerate(entries):
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise SubmissionError(f"{path}: entry {i + 1} needs name = \"...\" (a string)")
        if name in seen:
            raise SubmissionError(f"{path}: two entries are named {name!r}")
        seen.add(name)
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise SubmissionError(f"{path}: entry {name!r} has unknown key(s) {sorted(unknown)}; known: "
                                  f"{sorted(ENTRY_KEYS)}")
        if "args" in entry:
            check_args(entry["args"], f"{path}: entry {name!r}")
        entry = {**{k: manifest[k] for k in POLICY_KEYS if k in manifest}, **entry}
        for key in ("entry_timeout", "entry_memory"):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 < value < float("inf")):
                raise SubmissionError(f"{path}: {key} must be a positive number (seconds / GiB), got {value!r}")
        if not isinstance(entry.get("allow_code", False), bool):
            raise SubmissionError(f"{path}: entry {name!r}: allow_code must be true or false")
        if "submission" in entry:
            entry = _from_submission(entry, path.parent, name, allowed)
        resolved.append(entry)
    manifest["entry"] = resolved
    return manifest


def _from_submission(entry: dict[str, Any], base: Path, name: str, models: list[str] | None) -> dict[str, Any]:
    """A manifest entry whose keys come from a ``save_submission`` folder (paths relative to the manifest)."""
    clash = sorted(set(entry) & set(_FROM_SUBMISSION))
    if clash:
        raise SubmissionError(f"entry {name!r}: submission = ... brings its own {', '.join(clash)}; drop them")
    rel = entry["submission"]
    out = {k: v for k, v in entry.items()}
    try:
        if not isinstance(rel, str) or Path(rel).is_absolute() or not (base / rel).is_dir():
            raise SubmissionError(f"submission = {rel!r} must be a folder relative to the manifest")
        found, _ = read_submission(base / rel, allow_code=bool(entry.get("allow_code")), models=models)
    except SubmissionError as exc:  # paths relative to the manifest: rows are published
        out["refused"] = str(exc).replace(str(base) + os.sep, "")
        return out
    prefix = Path(rel)
    for key in ("weights", "program"):
        if key in found:
            out[key] = (prefix / str(found[key])).as_posix()
    if "model" in found:
        spec = str(found["model"])
        target, sep, attr = spec.rpartition(":")
        out["model"] = f"{(prefix / target).as_posix()}:{attr}" if is_code(spec) and sep else spec
    for key in ("args", "compress"):
        if found.get(key):
            out[key] = found[key]
    return out


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
    board = Leaderboard(rules=ruleset.name, rows=tuple(rank(ordered)), scored=len(todo), against=against)
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
    then those below it (as the challenge placed only qualifying entries), each by score; ranks 1, 2, ... over
    every scored row (published rows included); failed entries last, without a rank."""
    scored = sorted((r for r in rows if r.get("error") is None and r.get("score") is not None),
                    key=lambda r: (r.get("passed") is False, r["score"], str(r.get("name"))))
    failed = sorted((r for r in rows if r.get("error") is not None or r.get("score") is None),
                    key=lambda r: str(r.get("name")))
    out = []
    for i, r in enumerate(scored, start=1):
        out.append({**r, "rank": i})
    out.extend({**r, "rank": None} for r in failed)
    return out


def write_outputs(board: Leaderboard, out_dir: str | Path) -> dict[str, Path]:
    """``leaderboard.{md,csv,json,html}`` in ``out_dir``, each written to a temporary file and renamed."""
    from micronet_score.render import leaderboard as render

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext, text in (("md", render.to_markdown(board)), ("csv", render.to_csv(board)),
                      ("json", board.to_json() + "\n"), ("html", render.to_html(board))):
        target = out_dir / f"leaderboard.{ext}"
        tmp = target.with_suffix(f".{ext}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        paths[ext] = target
    return paths
