"""A PostgreSQL state: one connection, the schema checked when it opens, and a
session-level advisory lock (and, once a sender marks its first recipient, the
journal's second connection for its marks: see journal.py).

Any number of ``digest send`` processes share the state, through the journal's
claims and leases: each holds the lock in shared mode, so a command that needs
the state to itself (``digest state copy``, ``digest campaign close``) takes it
exclusively and keeps them out, or waits for no one and stops with 75. The
lock is held by the connection, so the server releases it when the process
dies, as the kernel releases a state folder's flock.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

import psycopg

from digest.errors import ConfigError, DigestError, LockedError, StateError
from digest.state.postgres.audience import (
    PostgresBounces,
    PostgresPreferences,
    PostgresSuppressions,
)
from digest.state.postgres.journal import PostgresJournal
from digest.state.postgres.location import PostgresLocation
from digest.state.postgres.schema import TABLES, Connection, empty_scratch, ensure
from digest.state.records import looking_back

# The advisory lock's key: one per database and schema, which is what a state is.
_LOCK_KEY = "SELECT hashtextextended('digest send ' || current_database() || '.'" \
            " || current_schema(), 0)"


class StateLocked(LockedError):
    """Another run holds a PostgreSQL state's lock; the state is a URL, not a path."""

    def __init__(self, shown: str, holder: str) -> None:
        self.shown = shown
        self.holder = holder
        DigestError.__init__(
            self, f"another digest run holds {shown} ({holder}); it is still running, so "
            "this run stops here. Try again when it has finished.")


class PostgresStore:
    """The state in one PostgreSQL database (see the module docstring)."""

    def __init__(self, location: PostgresLocation, *, readonly: bool = False,
                 memory_journal: bool = False) -> None:
        if memory_journal:
            raise ConfigError("--no-journal needs a state folder, not a database",
                              source="--state")
        self.location = location
        self.readonly = readonly
        self._db = location.connect()
        try:
            if not ensure(self._db, location.shown, readonly=readonly):
                empty_scratch(self._db)
            if readonly:
                self._db.execute("SET default_transaction_read_only = on")
            self._opened_at = _server_now(self._db, location.shown)
        except BaseException:
            self._db.close()
            raise
        shown = location.shown
        self.journal = PostgresJournal(self._db, writable=not readonly,
                                       connect=location.connect)
        self.suppressions = PostgresSuppressions(self._db, shown, self.clock)
        self.preferences = PostgresPreferences(self._db, shown)
        self.bounces = PostgresBounces(self._db, shown)

    @property
    def connection(self) -> Connection:
        """For ``state.copy`` only, which moves whole tables."""
        return self._db

    def has_journal(self) -> bool:
        row = self._db.execute("SELECT EXISTS (SELECT 1 FROM campaigns)"
                               " OR EXISTS (SELECT 1 FROM deliveries)").fetchone()
        return bool(row and row[0])

    def is_empty(self) -> bool:
        """Whether every table is empty: what ``digest state copy`` may write into."""
        query = " OR ".join(f"EXISTS (SELECT 1 FROM {table})" for table in TABLES)
        row = self._db.execute(f"SELECT {query}".encode()).fetchone()
        return not (row and row[0])

    shared = True

    def lock(self) -> PostgresLock:
        return PostgresLock(self._db, self.location.shown)

    def send_lock(self) -> PostgresLock:
        return PostgresLock(self._db, self.location.shown, shared=True)

    def clock(self) -> datetime:
        server_at, mono_at = self._opened_at
        return server_at + timedelta(seconds=time.monotonic() - mono_at)

    def apply_suppressions(self, campaign: str, since: str | None = None) -> int:
        return self.journal.suppress(campaign, None if since is None else looking_back(since))

    def close(self) -> None:
        """Close the connections; closing twice is harmless."""
        self.journal.close()
        self._db.close()


def _server_now(db: Connection, shown: str) -> tuple[datetime, float]:
    """The server's time, and this machine's monotonic clock half-way through the
    round trip that read it. The state's clock runs on from there by the monotonic
    clock: a machine's clock set wrong, or stepped right by NTP mid-run, moves
    neither. (What it leaves out, the drift between two machines' oscillators over
    a run's few hours, is far below a lease.)"""
    before = time.monotonic()
    try:
        row = db.execute("SELECT clock_timestamp()").fetchone()
    except psycopg.Error as exc:
        raise DigestError(f"{shown}: cannot read the server's clock ({exc}); check that the "
                          "server is up and reachable, then run again") from exc
    after = time.monotonic()
    if row is None or not isinstance(row[0], datetime):
        raise DigestError(f"{shown}: the server's clock_timestamp() gave {row!r}")
    return row[0], before + (after - before) / 2


class PostgresLock:
    """``pg_try_advisory_lock`` on the store's connection: exclusive for one run
    at a time, or ``shared`` among sends."""

    def __init__(self, db: Connection, shown: str, *, shared: bool = False) -> None:
        self._db = db
        self._shown = shown
        self._key: int | None = None
        self._mode = "_shared" if shared else ""

    def __enter__(self) -> Self:
        try:
            row = self._db.execute(_LOCK_KEY).fetchone()
            assert row is not None
            key = int(row[0])
            got = self._db.execute(f"SELECT pg_try_advisory_lock{self._mode}(%s)".encode(),
                                   (key,)).fetchone()
            if not (got and got[0]):
                raise StateLocked(self._shown, self._holder(key))
        except psycopg.Error as exc:
            raise StateError(f"{self._shown}: cannot take the run lock ({exc})") from exc
        self._key = key
        return self

    def _holder(self, key: int) -> str:
        """Who holds the lock, as its connection named itself (see location.py)."""
        row = self._db.execute(
            "SELECT a.application_name, a.backend_start, l.pid FROM pg_locks l"
            " LEFT JOIN pg_stat_activity a ON a.pid=l.pid WHERE l.locktype='advisory'"
            " AND l.granted AND l.classid=%s AND l.objid=%s AND l.objsubid=1 LIMIT 1",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchone()
        if row is None:
            return "unknown holder"
        name, started, pid = row
        started_at = f", started {started.isoformat(timespec='seconds')}" if started else ""
        return f"{name or f'server pid {pid}'}{started_at}"

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        # A connection lost under the run took the lock with it: nothing to unlock,
        # and its error must not hide the one that ended the run.
        if self._key is not None and not self._db.closed:
            with contextlib.suppress(psycopg.Error):
                self._db.execute(f"SELECT pg_advisory_unlock{self._mode}(%s)".encode(),
                                 (self._key,))
        self._key = None
