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
from micronet_score.organizer.fingerprint import code_digest, content_digest, file_digest
from micronet_score.organizer.limits import DEFAULT_ENTRY_MEMORY, DEFAULT_ENTRY_TIMEOUT, parse_memory
from micronet_score.organizer.runner import CODE_FILES, BoardInterrupted, run_entries
from micronet_score.organizer.scoring import score_entry
from micronet_score.organizer.store import ResultStore, StoreError, board_lock
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
    this run (the others came from the result store); ``unscored`` the entries this run could not score for a
    fault of the machinery (a process that could not start, a lost worker): shown, not stored, retried by a
    rerun. ``manifest_dir`` and ``data_path`` are the organizer's absolute paths, which published files replace
    by relative ones (see :mod:`micronet_score.organizer.redact`); ``ruleset`` is the :class:`~micronet_score.rules.RuleSet` scored under (its threshold is drawn on the plot)."""

    rules: str
    rows: tuple[dict[str, Any], ...]
    scored: int = 0
    against: str | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    manifest_dir: str | None = None
    data_path: str | None = None
    ruleset: Any = None
    unscored: int = 0

    def to_json(self) -> str:
        return json.dumps(list(self.rows), indent=2)

    def markdown(self) -> str:
        from micronet_score.render.leaderboard import to_markdown

        return to_markdown(self)

    def __str__(self) -> str:
        from micronet_score.render.leaderboard import to_text

        return to_text(self)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest at ``path``, checked: ``rules``, ``[data]`` with ``path``, and ``[[entry]]`` tables whose
    values are plain TOML (strings, numbers, booleans, arrays, tables; no dates).

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
    if not isinstance(manifest["rules"], str) or not manifest["rules"]:
        raise SubmissionError(f"{path}: rules must be a string (a rule set name or .toml path), got "
                              f"{_toml_type(manifest['rules'])}")
    data = manifest.get("data")
    if not isinstance(data, dict) or "path" not in data:
        raise SubmissionError(f"{path}: the manifest needs a [data] table with path = \"<test set>\"")
    for key in ("path", "dataset"):
        if key in data and not isinstance(data[key], str):
            raise SubmissionError(f"{path}: data.{key} must be a string, got {_toml_type(data[key])}")
    _check_plain(path, "data", data)
    entries = manifest.get("entry")
    if not isinstance(entries, list) or not entries:
        raise SubmissionError(f"{path}: the manifest has no [[entry]] tables")
    allowed = model_list(manifest, str(path))
    seen = set()
    resolved = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SubmissionError(f"{path}: entry {i + 1} is {_toml_type(entry)}, not a table; write each entry "
                                  "as [[entry]] with name = ..., model = ..., weights = ...")
        name = entry.get("name")
        if not name:
            raise SubmissionError(f"{path}: entry {i + 1} has no name")
        if not isinstance(name, str):
            raise SubmissionError(f"{path}: entry {i + 1}'s name must be a string, got {_toml_type(name)}")
        if name in seen:
            raise SubmissionError(f"{path}: two entries are named {name!r}")
        seen.add(name)
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise SubmissionError(f"{path}: entry {name!r} has unknown key(s) {sorted(unknown)}; known: "
                                  f"{sorted(ENTRY_KEYS)}")
        for key, kind, want in (("model", str, "a string"), ("weights", str, "a string"),
                                ("args", dict, "a table"), ("preprocessing", dict, "a table"),
                                ("input", list, "an array of integers"), ("compress", list, "an array of tables")):
            if key in entry and not isinstance(entry[key], kind):
                raise SubmissionError(f"{path}: entry {name!r}: {key} must be {want}, got {_toml_type(entry[key])}")
        if "input" in entry and not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                        for n in entry["input"]):
            raise SubmissionError(f"{path}: entry {name!r}: input must be positive integers, e.g. [1, 3, 32, 32]")
        _check_plain(path, f"entry {name!r}", entry)
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


def _toml_type(value: Any) -> str:
    import datetime

    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"a TOML date/time ({value.isoformat()})"
    return f"{type(value).__name__} {value!r}"


def _check_plain(path: Path, where: str, value: Any, at: str = "") -> None:
    """Refuse TOML dates and times anywhere in ``value`` (rows and keys hold plain data only)."""
    import datetime

    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(path, where, item, f"{at}.{key}" if at else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(path, where, item, f"{at}[{i}]")
    elif isinstance(value, (datetime.date, datetime.time)):
        raise SubmissionError(f"{path}: {where}: {at} is {_toml_type(value)}; use a string, number, boolean, "
                              "array or table")


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
                batch_size: int = 256, device: str = "cpu", entry_timeout: float | None = DEFAULT_ENTRY_TIMEOUT,
                entry_memory: str | int | None = DEFAULT_ENTRY_MEMORY) -> Leaderboard:
    """Score every entry of ``manifest`` and write ``out/leaderboard.{md,csv,json,html}`` (``out`` defaults to
    the manifest's folder). Finished rows are kept in ``out/results.sqlite`` as each entry ends: a rerun scores
    only new, changed or unfinished entries.

    Each entry runs in its own child process, at most ``workers`` at once, under ``entry_timeout`` seconds of
    wall time and ``entry_memory`` of address space (``"8GiB"``; ``None`` for no limit; not applied with
    ``device="cuda"``); reaching either, or dying, fails that entry alone. ``executor``/``scheduler`` (Dask) run
    entries there instead, without these limits. Ctrl-C raises :class:`BoardInterrupted` (a
    ``KeyboardInterrupt``) once the running entries are ended; the rows already scored are kept.

    >>> # ms.leaderboard("challenge.toml", "board", workers=2, against="micronet-2019-cifar100")
    """
    from micronet_score import rules as rules_mod

    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise SubmissionError(f"--workers must be at least 1, got {workers}")
    timeout = _check_timeout(entry_timeout)
    memory = parse_memory(entry_memory)
    if str(device).startswith("cuda"):
        memory = None  # CUDA reserves far more address space than it uses: RLIMIT_AS would break it
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
    data["sha256"] = content_digest(data["path"])  # once per run: in every key, and the children's cache key
    out_dir = Path(out) if out is not None else base
    rows: dict[str, dict[str, Any]] = {}
    counts = {"scored": 0, "unscored": 0}
    with board_lock(out_dir):
        store = ResultStore(out_dir / "results.sqlite")
        tasks = []
        for entry in spec["entry"]:
            task = {"entry": entry, "base": str(base), "rules": rules_name, "data": data, "batch_size": batch_size,
                    "device": device, "entry_timeout": timeout, "entry_memory": memory}  # also the code child's
            tasks.append((result_key(task, ruleset), task))
        todo = []
        for key, task in tasks:
            found = store.get(key)
            if found is not None and _code_unchanged(found, base):
                rows[key] = found
            else:
                todo.append((key, task))

        def record(key: str, row: dict[str, Any], stored: bool) -> None:
            if stored:
                store.put(key, row)
                counts["scored"] += 1
            else:
                counts["unscored"] += 1
            rows[key] = row

        try:
            if todo and (executor is not None or scheduler):
                _run_on_executor(todo, record, executor, scheduler)
            elif todo:
                run_entries(todo, record, workers=workers, timeout=timeout, memory=memory)
        except KeyboardInterrupt:
            raise BoardInterrupted(counts["scored"], len(todo) - counts["scored"],
                                   str(out_dir / "results.sqlite")) from None
        ordered = [{k: v for k, v in rows[key].items() if k != CODE_FILES} for key, _ in tasks]
        if against:
            from micronet_score.organizer.field import published

            ordered += [e.to_row() for e in published(against)]
        board = Leaderboard(rules=ruleset.name, rows=tuple(rank(ordered)), scored=counts["scored"],
                            against=against, manifest_dir=str(base), data_path=str(data["path"]), ruleset=ruleset,
                            unscored=counts["unscored"])
        try:
            board.outputs.update(write_outputs(board, out_dir))
        except OSError as exc:
            raise StoreError(f"cannot write the leaderboard files in {out_dir}: {exc}; the scored rows are kept "
                             "in results.sqlite, rerun once the folder is writable") from None
    return board


def _code_unchanged(row: Mapping[str, Any], base: Path) -> bool:
    """Whether every local source file the entry's process imported (its row's ``code_files``, dynamic imports
    included) still has the bytes it had: a stored row made by other code is scored again."""
    files = row.get(CODE_FILES) or {}
    if not isinstance(files, dict):
        return False
    for name, digest in files.items():
        path = Path(name) if Path(name).is_absolute() else base / name
        try:
            if content_digest(path) != digest:
                return False
        except OSError:
            return False
    return True


def _check_timeout(value: Any) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SubmissionError(f"--entry-timeout must be a number of seconds, got {value!r}") from None
    if math.isnan(seconds) or seconds < 0:
        raise SubmissionError(f"--entry-timeout must be a positive number of seconds (0: no limit), got {value!r}")
    return seconds if 0 < seconds < math.inf else None


def _run_on_executor(todo: Sequence[tuple[str, Mapping[str, Any]]], record: Any, executor: Executor | None,
                     scheduler: str | None) -> None:
    """Score on a given executor (e.g. Dask): :func:`score_entry` never raises, so an exception from a future is
    the machinery's (a lost worker), never stored as the entry's result."""
    from micronet_score.organizer.executors import make_executor
    from micronet_score.organizer.runner import machinery_row

    own = executor is None
    pool = make_executor(1, scheduler) if own else executor
    try:
        futures = {pool.submit(score_entry, task): (key, task) for key, task in todo}
        for future in as_completed(futures):
            key, task = futures[future]
            try:
                row = future.result()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - a lost worker, or SystemExit on an in-process executor
                record(key, machinery_row(task, f"worker failed ({type(exc).__name__}: "
                                                f"{' '.join(str(exc).split())[:200]})"), False)
            else:
                record(key, row, True)
    finally:
        if own:
            pool.shutdown()


def result_key(task: Mapping[str, Any], ruleset: Any) -> str:
    """Hash of everything that decides an entry's result: the entry, its weights' bytes, the source of its
    model's module and of every module that imports from outside the installed packages, the rule set, the test
    data's contents and its preprocessing, and the library version."""
    from micronet_score._version import __version__

    entry = task["entry"]
    base = Path(task["base"])
    files = {}
    weights = entry.get("weights")
    if isinstance(weights, str) and weights and (base / weights).is_file():
        files["weights"] = file_digest(base / weights)
    rules_text = re.sub(r" at 0x[0-9a-fA-F]+", "", f"{ruleset!r} {ruleset.counting!r}")  # no addresses
    payload = {"entry": entry, "files": files, "code": code_digest(entry.get("model"), base),
               "rules": rules_text, "data": task["data"],
               "data_sha256": task["data"].get("sha256") or content_digest(task["data"]["path"]),
               "version": __version__, "batch_size": task.get("batch_size")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


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
