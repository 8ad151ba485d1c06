"""The suppression list's SQLite database: one row per address key.

What may be suppressed, and why, is audience/suppression.py's business; this
module only keeps the entries. Addresses are stored by ``address_key``, so
Ann@Example.org and ann@example.org are one entry and straße and strasse two.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from digest.errors import DigestError, StateError
from digest.model import address_key
from digest.state.connect import connect, connect_readonly
from digest.state.records import Suppression, now_stamp

_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    key        TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS suppressions_created ON suppressions (created_at);
"""
_KEYED = 1  # user_version once every key is address_key(email)


def _has_table(path: Path, table: str) -> bool:
    db = connect_readonly(path, "sqlite_master")
    try:
        found = db.execute("SELECT 1 FROM sqlite_master WHERE name=?", (table,)).fetchone()
        return found is not None
    finally:
        db.close()


class SqliteSuppressions:
    """The suppression list of one state folder.

    ``readonly`` opens an existing file without writing to it; ``memory`` is
    an empty list, for a read-only look at a state folder that has none.
    """

    def __init__(self, path: Path, *, readonly: bool = False, memory: bool = False) -> None:
        self.path = path
        try:
            # A file that holds other tables (preferences saved by `digest serve`)
            # but no list yet reads as an empty list, like no file at all.
            if readonly and not memory and not _has_table(path, "suppressions"):
                memory = True
            if memory:
                self._db = sqlite3.connect(":memory:", isolation_level=None)
                self._db.executescript(_SCHEMA)
                return
            if readonly:
                self._db = connect_readonly(path, "suppressions")
                if self._version() >= _KEYED:
                    return
                # A list older than its keys: rekeyed once, as any command would.
                self._db.close()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = connect(path)
            self._db.executescript(_SCHEMA)
            self._rekey()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StateError(f"{self.path}: cannot open the suppression list ({exc})"
                             ) from exc

    def _version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

    def _rekey(self) -> None:
        """Keys written before address_key casefolded every local part, which
        made straße and strasse one person; recompute them once (user_version 1)."""
        if self._version() >= _KEYED:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # Only a key with a non-ASCII character can change.
            rows = self._db.execute(
                "SELECT key, email FROM suppressions WHERE email GLOB '*[^ -~]*'").fetchall()
            self._db.executemany("UPDATE suppressions SET key=? WHERE key=?",
                                 [(address_key(email), key) for key, email in rows
                                  if address_key(email) != key])
            self._db.execute(f"PRAGMA user_version={_KEYED}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _failed(self, exc: sqlite3.Error) -> DigestError:
        return DigestError(f"{self.path}: cannot update the suppression list ({exc}); "
                           "free space on its disk or fix the permissions of --state")

    def close(self) -> None:
        self._db.close()

    def add(self, entries: Iterable[tuple[str, str, str]]) -> int:
        """Add (email, reason, source) entries; an address already listed keeps its
        first reason. Returns how many were new. The new entries are stamped once
        they are all read, just before the commit: a long import still reaches the
        senders that look meanwhile (``records.LOOKBACK``)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                added = self._db.executemany(
                    "INSERT OR IGNORE INTO suppressions (key, email, reason, source, created_at)"
                    " VALUES (?, ?, ?, ?, '')",
                    ((address_key(email), email, reason, source)
                     for email, reason, source in entries),
                ).rowcount
                self._db.execute("UPDATE suppressions SET created_at=? WHERE created_at=''",
                                 (now_stamp(),))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return max(added, 0)

    def remove(self, emails: Iterable[str]) -> int:
        try:
            before = self._db.total_changes
            self._db.executemany("DELETE FROM suppressions WHERE key=?",
                                 ((address_key(e),) for e in emails))
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return self._db.total_changes - before

    def undo(self, email: str, source: str) -> bool:
        """Remove the unsubscribe of ``email`` whose source starts with ``source``
        (``web:`` for any made on the web), and no other kind of entry."""
        try:
            cursor = self._db.execute(
                "DELETE FROM suppressions WHERE key=? AND substr(source, 1, ?)=?"
                " AND reason='unsubscribed'", (address_key(email), len(source), source))
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return cursor.rowcount == 1

    def added_since(self, mark: str) -> list[tuple[str, str]]:
        """(key, reason) of every entry added at or after ``mark`` (a stamp), so a
        running send can pick up unsubscribes made while it runs."""
        try:
            return self._db.execute("SELECT key, reason FROM suppressions WHERE created_at>=?",
                                    (mark,)).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def reason(self, email: str) -> str | None:
        try:
            row = self._db.execute("SELECT reason FROM suppressions WHERE key=?",
                                   (address_key(email),)).fetchone()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return str(row[0]) if row else None

    def reasons(self, emails: Sequence[str]) -> dict[str, str]:
        """{address key: reason} of those of ``emails`` listed, in one query."""
        keys = sorted({address_key(e) for e in emails})
        try:
            rows = self._db.execute("SELECT key, reason FROM suppressions WHERE key IN"
                                    f" ({','.join('?' * len(keys))})", keys).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return {str(key): str(reason) for key, reason in rows}

    def __iter__(self) -> Iterator[Suppression]:
        cursor = self._db.execute(
            "SELECT email, reason, source, created_at FROM suppressions ORDER BY key")
        for values in cursor:
            yield Suppression(*values)

    def keyed(self, chunk: int = 10_000) -> Iterator[list[tuple[str, str]]]:
        """Every (key, reason), a chunk at a time, for the journal to match by key."""
        try:
            cursor = self._db.execute("SELECT key, reason FROM suppressions")
            while rows := cursor.fetchmany(chunk):
                yield rows
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
