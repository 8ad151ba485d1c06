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


def open_tables(path: Path, table: str, schema: str, *, readonly: bool) -> sqlite3.Connection:
    """A database holding ``table`` (created by ``schema``), written in place or,
    with ``readonly``, read in place when it exists; where it does not, an empty
    one in memory, so a read-only look creates nothing."""
    if readonly and path.is_file():
        db = connect_readonly(path, "sqlite_master")
        if db.execute("SELECT 1 FROM sqlite_master WHERE name=?", (table,)).fetchone():
            return db
        db.close()
    if readonly:
        db = sqlite3.connect(":memory:", isolation_level=None)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(path)
    db.executescript(schema)
    return db
