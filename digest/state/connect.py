"""How the SQLite backend opens its databases, writable or read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), in WAL mode
    with synchronous=NORMAL: a commit survives a killed process without an
    fsync per write."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    return db


def connect_readonly(path: Path, table: str) -> sqlite3.Connection:
    """A connection that writes nothing, so `digest status` works on a full
    disk. Reading WAL needs its shared-memory file; where that cannot be
    created, the file is read as it stands (``immutable``), which is what a
    full disk leaves anyway. ``table`` is read once to prove the file usable."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
        db.execute("PRAGMA busy_timeout=10000")
        db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
        return db
    except sqlite3.OperationalError:
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
        db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
        return db
