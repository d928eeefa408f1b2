"""The embedded online store: one SQLite file, WAL mode, one row per entity and view.

WAL lets readers run while a materialization writes: a reader sees the last committed
batch, never waits for the writer and never fails because of it. Each thread has its own
connection. A write is one transaction whose upsert keeps the newer record.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from .online import OnlineStore, Record

__all__ = ["SQLiteOnlineStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online (
    project TEXT NOT NULL, view TEXT NOT NULL, key TEXT NOT NULL,
    ts INTEGER NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (project, view, key)
) WITHOUT ROWID
"""
_UPSERT = """
INSERT INTO online (project, view, key, ts, value) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (project, view, key) DO UPDATE SET ts = excluded.ts, value = excluded.value
WHERE excluded.ts >= online.ts
"""
_CHUNK = 500  # keys per SELECT (below SQLite's variable limit)


class SQLiteOnlineStore(OnlineStore):
    """Records in ``path`` (created with its folder on first use)."""

    def __init__(self, path: str, project: str):
        self.path = Path(path)
        self.project = project
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def write(self, view: str, records: Sequence[Record]) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT, [(self.project, view, k, ts, v) for k, ts, v in records])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str] | None]:
        conn = self._conn()
        found: dict[str, tuple[int, str]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT key, ts, value FROM online WHERE project = ? AND "
                                f"view = ? AND key IN ({marks})", [self.project, view, *chunk])
            found.update((key, (ts, value)) for key, ts, value in rows)
        return [found.get(key) for key in keys]

    def drop(self, view: str) -> None:
        self._conn().execute("DELETE FROM online WHERE project = ? AND view = ?",
                             (self.project, view))

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
