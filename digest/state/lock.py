"""One run at a time per state folder, for cron.

The lock is an ``flock`` on a file in the state folder: the kernel releases
it when the holder exits, even after kill -9, so a crash never leaves a stale
lock. The file records the holder's pid and start time for the message a
second run prints.
"""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from digest.errors import LockedError, StateError


class StateLock:
    """The lock held in the file ``path``, inside the state folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> Self:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(f"cannot use the state folder {self.path.parent}: "
                             f"{exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown holder"
            os.close(fd)
            raise LockedError(self.path, holder) from None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the flock holds all the same; only the note for others is lost
        self._fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
