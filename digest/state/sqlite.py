"""The embedded backend: a state folder of SQLite files and an flock.

The folder holds ``journal.sqlite3``, ``suppressions.sqlite3`` and ``lock``
(and ``journal.sqlite3-writer``, see writelock.py); these names are spelled
here and nowhere else. The two databases stay apart,
neither attached to the other: the one step that needs both,
``apply_suppressions``, streams the suppression keys into the journal in
chunks, as another backend would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from digest.state.bounces import SqliteBounces
from digest.state.journal import SqliteJournal
from digest.state.lock import StateLock
from digest.state.preferences import SqlitePreferences
from digest.state.records import looking_back
from digest.state.suppressions import SqliteSuppressions

JOURNAL = "journal.sqlite3"
SUPPRESSIONS = "suppressions.sqlite3"
LOCK = "lock"


class SqliteStore:
    """A state folder. Its databases open when first used, so a command opens
    only what it needs; a read-only store creates nothing and writes nothing."""

    def __init__(self, location: Path, *, readonly: bool = False,
                 memory_journal: bool = False) -> None:
        self.location = location
        self.readonly = readonly
        self.memory_journal = memory_journal
        self._journal: SqliteJournal | None = None
        self._suppressions: SqliteSuppressions | None = None
        self._preferences: SqlitePreferences | None = None
        self._bounces: SqliteBounces | None = None

    @property
    def journal(self) -> SqliteJournal:
        if self._journal is None:
            path = self.location / JOURNAL
            memory = self.memory_journal or (self.readonly and not path.is_file())
            self._journal = SqliteJournal(path, memory=memory, readonly=self.readonly)
        return self._journal

    @property
    def suppressions(self) -> SqliteSuppressions:
        if self._suppressions is None:
            path = self.location / SUPPRESSIONS
            memory = self.readonly and not path.is_file()
            self._suppressions = SqliteSuppressions(path, readonly=self.readonly, memory=memory)
        return self._suppressions

    @property
    def preferences(self) -> SqlitePreferences:
        if self._preferences is None:
            path = self.location / SUPPRESSIONS  # the audience's own database
            self._preferences = SqlitePreferences(path, readonly=self.readonly)
        return self._preferences

    @property
    def bounces(self) -> SqliteBounces:
        if self._bounces is None:
            path = self.location / SUPPRESSIONS  # the audience's own database
            self._bounces = SqliteBounces(path, readonly=self.readonly)
        return self._bounces

    def has_journal(self) -> bool:
        return (self.location / JOURNAL).is_file()

    shared = False  # one sender process group per folder: the lock excludes the rest

    def lock(self) -> StateLock:
        return StateLock(self.location / LOCK)

    def send_lock(self) -> StateLock:
        return self.lock()

    def clock(self) -> datetime:
        return datetime.now(UTC)  # one machine: its own clock is everyone's

    def apply_suppressions(self, campaign: str, since: str | None = None) -> int:
        if self._suppressions is None and not (self.location / SUPPRESSIONS).is_file():
            return 0  # nothing was ever suppressed here, and nothing need be created
        if since is not None:
            added = self.suppressions.added_since(looking_back(since))
            return self.journal.suppress(campaign, [added])
        return self.journal.suppress(campaign, self.suppressions.keyed())

    def close(self) -> None:
        """Close whatever was opened; closing twice is harmless."""
        for opened in (self._journal, self._suppressions, self._preferences, self._bounces):
            if opened is not None:
                opened.close()
        self._journal = self._suppressions = self._preferences = self._bounces = None
