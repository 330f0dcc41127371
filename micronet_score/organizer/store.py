"""Finished leaderboard rows in an SQLite file, keyed by the hash of everything that decides them.

Each row is committed in its own transaction as soon as it is scored, so a crash loses at most the entries still
running and a rerun scores only what is new.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, name TEXT NOT NULL, row TEXT NOT NULL)"


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
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored row for ``key``, or None."""
        db = self._connect()
        try:
            found = db.execute("SELECT row FROM results WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
        return json.loads(found[0]) if found else None

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Store ``row`` under ``key`` (one atomic transaction)."""
        db = self._connect()
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO results (key, name, row) VALUES (?, ?, ?)",
                           (key, str(row.get("name")), json.dumps(row, sort_keys=True)))
        finally:
            db.close()

    def __len__(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            db.close()
