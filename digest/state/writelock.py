"""Who writes a SQLite journal next, among processes: a blocking flock.

SQLite lets one writer in at a time, and a process that finds the write lock
taken sleeps in its busy handler (1, 2, 5, 10 ms and up) before looking
again. The worker processes of one ``digest send --workers N`` write the
journal thousands of times a second, so those sleeps, not the writes, set the
pace. Taking this flock first queues the writers in the kernel instead, which
wakes the next one the moment the lock is free.

The lock is a file of its own beside the database (``<name>-writer``), never
the database itself: closing any descriptor of the database would drop the
POSIX locks SQLite holds on it. A writer that does not take it (an older
digest, the sqlite3 shell) is still kept out by SQLite's own lock, as before.
``WriteTransaction`` is one write under both locks.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from digest.errors import DigestError


class WriterLock:
    """A blocking turn at writing ``database``, among every process that asks."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + "-writer")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class WriteTransaction:
    """``BEGIN IMMEDIATE`` to ``COMMIT`` (or ``ROLLBACK``), under the flock when
    there is one; a SQLite error at any step is one line and the journal as it was."""

    def __init__(self, db: sqlite3.Connection, writer: WriterLock | None) -> None:
        self._db = db
        self._writer = writer

    def __enter__(self) -> None:
        if self._writer is not None:
            self._writer.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        try:
            self._end(kind, value)
        finally:
            self._unlock()

    def _end(self, kind: object, value: object) -> None:
        if kind is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as exc:
                value = exc
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if isinstance(value, sqlite3.Error):
            # A full disk or a locked file: one line, and the journal as it was.
            raise DigestError(f"the journal could not be written ({value}); it holds "
                              "everything up to the last good write, so run again") from value
