"""The set of addresses a send has seen, kept on disk so memory stays flat.

A list of millions is de-duplicated through a temporary SQLite file in
TMPDIR, not a dict; only this module and the state use SQLite.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
import weakref
from pathlib import Path

from digest.errors import DigestError


class SeenSet:
    """The set of addresses seen, with where each was first seen, on disk in
    TMPDIR. Any failure to write it (full, missing, read-only) is one
    DigestError that names the folder."""

    def __init__(self) -> None:
        self._folder = tempfile.gettempdir()
        try:
            self._dir = tempfile.mkdtemp(prefix="digest-seen-")
        except OSError as exc:
            raise self._failed(exc) from exc
        try:
            self._db = sqlite3.connect(Path(self._dir, "seen.sqlite3"), isolation_level=None)
        except sqlite3.Error as exc:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise self._failed(exc) from exc
        # Removed however the rows end: read to the end, closed, or dropped unread.
        self._cleanup = weakref.finalize(self, _remove, self._db, self._dir)
        try:
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, at TEXT) WITHOUT ROWID")
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            self._cleanup()
            raise self._failed(exc) from exc

    def _failed(self, exc: OSError | sqlite3.Error) -> DigestError:
        if isinstance(exc, OSError):
            why = exc.strerror or str(exc)
        elif getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            why = os.strerror(errno.ENOSPC)
        else:
            why = str(exc)
        return DigestError(f"cannot write the temporary de-duplication set in TMPDIR "
                           f"({self._folder}): {why}; free space or set TMPDIR")

    def first(self, key: str, at: str) -> str | None:
        """None the first time ``key`` is offered; after that, where it was first."""
        try:
            cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, at))
            if cursor.rowcount:
                return None
            row = self._db.execute("SELECT at FROM seen WHERE key=?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return str(row[0])

    def __enter__(self) -> SeenSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup()


def _remove(db: sqlite3.Connection, folder: str) -> None:
    db.close()
    shutil.rmtree(folder, ignore_errors=True)
