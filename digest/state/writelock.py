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
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


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
