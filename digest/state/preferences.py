"""Subscribers' own tag preferences, as they set them on the preferences page.

They override a list's ``tags`` column at the next send. Kept beside the
suppression list (the same database file), keyed by ``address_key``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from digest.errors import DigestError, StateError
from digest.model import address_key
from digest.state.connect import open_tables
from digest.state.records import joined_tags

_SCHEMA = """
CREATE TABLE IF NOT EXISTS preferences (
    key        TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    tags       TEXT NOT NULL,  -- tag slugs joined by ";"; empty means everything
    source     TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
"""


class SqlitePreferences:
    """The preference overrides of one state folder; ``memory`` is an empty set."""

    def __init__(self, path: Path, *, readonly: bool = False, memory: bool = False) -> None:
        self.path = path
        try:
            self._db = open_tables(path, "preferences", _SCHEMA, readonly=readonly or memory)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StateError(f"{path}: cannot open the preferences ({exc})") from exc

    def get(self, email: str) -> tuple[str, ...] | None:
        """The tag slugs ``email`` chose, () for everything; None if they never chose."""
        row = self._db.execute("SELECT tags FROM preferences WHERE key=?",
                               (address_key(email),)).fetchone()
        return None if row is None else joined_tags(row[0])

    def chosen(self, emails: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """{address key: tag slugs} of those of ``emails`` who chose, in one query."""
        keys = sorted({address_key(e) for e in emails})
        rows = self._db.execute("SELECT key, tags FROM preferences WHERE key IN"
                                f" ({','.join('?' * len(keys))})", keys).fetchall()
        return {str(key): joined_tags(tags) for key, tags in rows}

    def set(self, email: str, tags: tuple[str, ...], source: str, at: str) -> None:
        try:
            self._db.execute(
                "INSERT INTO preferences (key, email, tags, source, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET tags=excluded.tags,"
                " source=excluded.source, updated_at=excluded.updated_at",
                (address_key(email), email, ";".join(tags), source, at))
        except sqlite3.Error as exc:
            raise DigestError(f"{self.path}: cannot save the preferences ({exc}); free space "
                              "on its disk or fix the permissions of --state") from exc

    def count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM preferences").fetchone()
        return int(count)

    def close(self) -> None:
        self._db.close()
