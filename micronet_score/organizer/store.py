"""Finished leaderboard rows in an SQLite file, keyed by the hash of everything that decides them.

Each row is committed in its own transaction as soon as it is scored, so a crash loses at most the entries still
running and a rerun scores only what is new.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from micronet_score.errors import MicronetError

SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, name TEXT NOT NULL, row TEXT NOT NULL)"
LOCK_NAME = ".leaderboard.lock"


class StoreError(MicronetError, RuntimeError):
    """The results store (or its folder) cannot be used: not a database, a folder, damaged, or in use."""


@contextlib.contextmanager
def board_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder/.leaderboard.lock`` (``fcntl.flock``) for the duration: a second leaderboard writing the
    same folder is refused at once instead of mixing its files with this one's. Released by the system when the
    process ends, ``kill -9`` included."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot write the output folder {str(folder)!r}: {exc.strerror or exc}") from None
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise StoreError(f"another leaderboard is writing {folder}; wait for it to end, or use another "
                                 "--out folder") from None
        yield
    finally:
        os.close(fd)


class ResultStore:
    """``key -> row`` in ``path`` (created when missing).

    >>> import tempfile, os
    >>> store = ResultStore(os.path.join(tempfile.mkdtemp(), "results.sqlite"))
    >>> store.put("k1", {"name": "alice", "score": 0.01}); store.get("k1")["score"]
    0.01
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path} is not a file; move it away (every entry will be scored again)")
        try:
            db = self._connect()
            try:
                with db:
                    db.execute(SCHEMA)
                checked = db.execute("PRAGMA quick_check").fetchone()
                columns = [c[1] for c in db.execute("PRAGMA table_info(results)").fetchall()]
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        if not checked or checked[0] != "ok":
            raise self._unusable(checked[0] if checked else "no answer to an integrity check")
        if columns != ["key", "name", "row"]:
            raise self._unusable(f"its results table has columns {columns}, not key, name, row")

    def _unusable(self, why: Any) -> StoreError:
        return StoreError(f"{self.path} is not a usable results store ({' '.join(str(why).split())}); move it "
                          "away and rerun: every entry will be scored again")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored row for ``key``, or None."""
        try:
            db = self._connect()
            try:
                found = db.execute("SELECT row FROM results WHERE key = ?", (key,)).fetchone()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            row = json.loads(found[0]) if found else None
        except (TypeError, ValueError):  # a damaged row is scored again (and replaced)
            return None
        return row if isinstance(row, dict) else None

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Store ``row`` under ``key`` (one atomic transaction)."""
        text = json.dumps(row, sort_keys=True, default=str)
        try:
            db = self._connect()
            try:
                with db:
                    db.execute("INSERT OR REPLACE INTO results (key, name, row) VALUES (?, ?, ?)",
                               (key, str(row.get("name")), text))
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save a row in {self.path} ({exc}); the rows saved before it are kept, "
                             "rerun to score the rest") from None

    def keys(self) -> list[str]:
        """Every stored key."""
        db = self._connect()
        try:
            return [k for (k,) in db.execute("SELECT key FROM results ORDER BY key").fetchall()]
        finally:
            db.close()

    def __len__(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            db.close()
