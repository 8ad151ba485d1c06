"""The delivery journal: one SQLite row per (campaign, recipient).

It is what makes a send crash-safe. A recipient is marked ``inflight`` before
its DATA command and ``sent`` after the server's 250, and both marks are
committed before the next step, so after a kill -9 the only uncertain
recipients are those in flight: at most one per connection. The next run
turns them into ``ambiguous`` and sends them once more, with the same
Message-ID, so receivers can de-duplicate.

Writes are batched: a worker's "sent" for one message and its "inflight" for
the next go into one transaction, and the campaign's recipients are added in
bulk. WAL mode with synchronous=NORMAL makes a commit survive a killed
process without an fsync per message. Processes that share the file take
turns to write through a blocking flock (state/writelock.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from digest.errors import DigestError
from digest.model import address_key
from digest.state.connect import connect, connect_readonly
from digest.state.records import (
    STATUSES,
    TO_DO,
    CampaignRecord,
    Entry,
    Follows,
    Pending,
    Reader,
    RecipientRecord,
    Update,
)
from digest.state.records import now_stamp as _now
from digest.state.sqlite_claims import SqliteClaims
from digest.state.writelock import WriterLock, WriteTransaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    campaign    TEXT NOT NULL,
    key         TEXT NOT NULL,  -- model.address_key(email): one row per person
    email       TEXT NOT NULL,  -- the address as first written, which is where mail goes
    name        TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '',
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    resends     INTEGER NOT NULL DEFAULT 0,
    bounced     INTEGER NOT NULL DEFAULT 0,  -- a 5xx to RCPT: feeds the suppression list
    last_code   INTEGER,
    last_reply  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    claimed_by  TEXT,  -- the sender holding the row, and until when (see sqlite_claims.py)
    lease_until REAL,
    PRIMARY KEY (campaign, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (campaign, status);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign    TEXT PRIMARY KEY,
    selection   TEXT NOT NULL,  -- which articles make up this issue (see pin)
    created_at  TEXT NOT NULL
) WITHOUT ROWID;
"""
# Who a run still owes the issue, in key order: what claims read (sqlite_claims.py).
# Its condition is TO_DO word for word, so that a query saying TO_DO may use it.
_OWED_INDEX = ("CREATE INDEX IF NOT EXISTS deliveries_todo ON deliveries (campaign, key)"
               f" WHERE {TO_DO}")
# A recipient's opaque id in their links (see email/signing.py): 72 random bits.
_NEW_RID = "lower(hex(randomblob(9)))"
# Added after the first release; an older journal gains them when it is opened.
_CAMPAIGN_COLUMNS = (
    ("series", "TEXT"),  # the lists and tags: one series, one newsletter, issue after issue
    ("as_of", "TEXT"),
    ("definition", "TEXT"),  # JSON: since, tags, exclude_tags, limit, summary_words, articles
    ("closed_at", "TEXT"),
    ("closed_reason", "TEXT"),
)


def _unusable(exc: OSError | sqlite3.DatabaseError) -> str:
    """Why the journal cannot be used, and what to do: never "move it aside"
    for a problem of the disk, since a journal moved aside re-mails everyone."""
    if isinstance(exc, OSError | sqlite3.OperationalError):
        return (f"cannot use the journal ({exc}); free some space or fix the folder's "
                "permissions, then run again. Keep the journal: it is what stops a rerun "
                "from mailing people twice")
    return (f"not a usable journal ({exc}); restore it from a backup. Moving it aside "
            "starts afresh, and then everyone on the list is mailed again")


_RECORD = "campaign, selection, created_at, series, as_of, definition, closed_at, closed_reason"


class SqliteJournal(SqliteClaims):
    """The journal of one state folder. Not thread-safe: one per process.

    ``memory`` keeps it in memory: for the benchmark that measures the cost of
    the journal, and for a read-only look at a state folder that has none yet
    (an empty journal, which answers like one that never sent anything).
    """

    apply_in_thread = False  # a commit takes microseconds here: a thread hop costs more

    def __init__(self, path: Path, *, memory: bool = False, readonly: bool = False) -> None:
        self.path = path
        self.writable = not readonly
        self._writer: WriterLock | None = None
        try:
            if readonly and not memory:
                self._db = connect_readonly(path, "deliveries")
                self._record = self._record_columns()
                return
            if not memory:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = connect(":memory:" if memory else path)
            self._writer = None if memory else WriterLock(path)
            self._db.executescript(_SCHEMA)
            self._add_columns()
            self._record = _RECORD
        except (OSError, sqlite3.DatabaseError) as exc:
            raise DigestError(f"{path}: {_unusable(exc)}") from exc

    def _add_columns(self) -> None:
        known = {row[1] for row in self._db.execute("PRAGMA table_info(campaigns)")}
        for name, kind in _CAMPAIGN_COLUMNS:
            if name not in known:
                self._db.execute(f"ALTER TABLE campaigns ADD COLUMN {name} {kind}")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(deliveries)")}
        for name, kind in (("rid", "TEXT"), ("claimed_by", "TEXT"), ("lease_until", "REAL")):
            if name not in columns:  # claimed_by, lease_until: see sqlite_claims.py
                self._db.execute(f"ALTER TABLE deliveries ADD COLUMN {name} {kind}")
        self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS deliveries_rid ON deliveries (rid)")
        self._db.execute(_OWED_INDEX)

    def _record_columns(self) -> str:
        """The campaign columns to select; NULL for those an older journal lacks."""
        known = {row[1] for row in self._db.execute("PRAGMA table_info(campaigns)")}
        return ", ".join(c if c in known else f"NULL AS {c}" for c in _RECORD.split(", "))

    def close(self) -> None:
        self._db.close()
        if self._writer is not None:
            self._writer.close()

    def add(self, campaign: str, entries: Iterable[Entry], *, queued_at: str | None = None) -> int:
        """Record this run's recipients, in batches; return how many were offered.

        A new recipient is inserted with its status (pending, skipped or
        suppressed). One already known keeps its row, except that a
        suppression overrides a send that has not happened yet: someone who
        left between two runs is never mailed.
        """
        offered = 0
        batch: list[tuple[object, ...]] = []
        queued_at = queued_at or _now()  # --max-age counts from here
        for entry in entries:
            batch.append((campaign, address_key(entry.email), *entry, queued_at))
            if len(batch) >= 10_000:
                offered += self._insert(batch)
                batch = []
        return offered + self._insert(batch)

    def _insert(self, batch: list[tuple[object, ...]]) -> int:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO deliveries (campaign, key, email, name, tags, message_id, status,"
                " last_reply, created_at, updated_at, rid)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?9, ?9, {_NEW_RID})"
                " ON CONFLICT (campaign, key) DO UPDATE SET status=excluded.status,"
                " last_reply=excluded.last_reply, updated_at=excluded.updated_at"
                " WHERE excluded.status='suppressed'"
                " AND deliveries.status IN ('pending', 'deferred', 'ambiguous')",
                batch,
            )
        return len(batch)

    def todo(self, campaign: str, chunk: int = 1000) -> Iterator[Pending]:
        """Each recipient this run must send to, a page of ``chunk`` at a time.

        Pages by primary key, so rows updated while we iterate are neither
        skipped nor seen twice, and a row suppressed meanwhile is not fetched.
        """
        self._give_rids(campaign)
        last = ""
        while True:
            rows = self._db.execute(
                "SELECT key, email, name, tags, status, rid FROM deliveries WHERE campaign=?"
                f" AND key>? AND {TO_DO} ORDER BY key LIMIT ?",
                (campaign, last, chunk),
            ).fetchall()
            if not rows:
                return
            for _, email, name, tags, status, rid in rows:
                yield Pending(email, name, tags, status == "ambiguous", rid)
            last = rows[-1][0]

    def _give_rids(self, campaign: str) -> None:
        """Rows journalled before recipients had ids get theirs now."""
        if self._db.execute("SELECT 1 FROM deliveries WHERE campaign=? AND rid IS NULL LIMIT 1",
                            (campaign,)).fetchone():
            with self._transaction():
                self._db.execute(f"UPDATE deliveries SET rid={_NEW_RID} WHERE campaign=?"
                                 " AND rid IS NULL", (campaign,))

    def reader(self, rid: str) -> Reader | None:
        """Who a link's recipient id stands for, and in which campaign."""
        row = self._db.execute("SELECT rid, campaign, email, name, tags FROM deliveries"
                               " WHERE rid=?", (rid,)).fetchone()
        return Reader(*row) if row else None

    def still_to_do(self, campaign: str, email: str) -> tuple[bool, str | None]:
        """(whether a run would send to ``email``, its status if it has a row)."""
        row = self._db.execute(
            f"SELECT status, {TO_DO} FROM deliveries WHERE campaign=? AND key=?",
            (campaign, address_key(email))).fetchone()
        return (True, None) if row is None else (bool(row[1]), str(row[0]))

    def count_todo(self, campaign: str) -> int:
        (count,) = self._db.execute(
            f"SELECT COUNT(*) FROM deliveries WHERE campaign=? AND {TO_DO}",
            (campaign,),
        ).fetchone()
        return int(count)

    def pin(self, record: CampaignRecord, follows: Follows | None = None) -> CampaignRecord:
        """Record a new campaign and what defines its issue; a campaign already
        recorded keeps its first record, which is returned. With ``follows``, a
        series whose newest campaign has changed since records nothing and
        returns its newest."""
        with self._transaction():
            pinned = self.campaign(record.campaign)
            if pinned is None and follows is not None and record.series:
                newest = self.newest(record.series)
                if newest is not None and newest.campaign != follows.campaign:
                    return newest
            if pinned is None:
                self._db.execute(
                    "INSERT INTO campaigns (campaign, selection, created_at, series, as_of,"
                    " definition) VALUES (?, ?, ?, ?, ?, ?)",
                    (record.campaign, record.selection, record.created_at, record.series,
                     record.as_of, record.definition))
        pinned = self.campaign(record.campaign)
        assert pinned is not None
        return pinned

    def campaign(self, campaign: str) -> CampaignRecord | None:
        row = self._db.execute(f"SELECT {self._record} FROM campaigns WHERE campaign=?",
                               (campaign,)).fetchone()
        return CampaignRecord(*row) if row else None

    def newest(self, series: str) -> CampaignRecord | None:
        """The latest issue of a series, by its as-of date."""
        row = self._db.execute(
            f"SELECT {self._record} FROM campaigns WHERE series=?"
            " ORDER BY as_of DESC, created_at DESC LIMIT 1", (series,)).fetchone()
        return CampaignRecord(*row) if row else None

    def unfinished(self, campaign: str) -> int:
        """How many recipients a run of this campaign still owes the issue
        (those in flight at a crash included); 0 once it is closed."""
        record = self.campaign(campaign)
        if record is not None and record.closed_at is not None:
            return 0
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE campaign=?"
            f" AND ({TO_DO} OR status='inflight')", (campaign,)).fetchone()
        return int(count)

    def expire(self, campaign: str, queued_before: str, reason: str) -> int:
        """Give up on everyone still owed the issue who was queued before
        ``queued_before`` (a ``stamp``): an MTA's queue lifetime, for a digest."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE deliveries SET status='expired', last_reply=?, updated_at=?"
                f" WHERE campaign=? AND ({TO_DO} OR status='inflight') AND created_at<?",
                (reason, _now(), campaign, queued_before))
        return cursor.rowcount

    def close_campaign(self, campaign: str, reason: str, at: str) -> bool:
        """Set a campaign aside on purpose; False if it was closed already."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE campaigns SET closed_at=?, closed_reason=? WHERE campaign=?"
                " AND closed_at IS NULL", (at, reason, campaign))
        return cursor.rowcount == 1

    def recover(self, campaign: str) -> int:
        """Turn rows left in flight by a crash into ambiguous ones; return how many."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE deliveries SET status='ambiguous', last_reply=?, updated_at=?,"
                " claimed_by=NULL, lease_until=NULL WHERE campaign=? AND status='inflight'",
                ("interrupted while in flight", _now(), campaign),
            )
        return cursor.rowcount

    def apply(self, campaign: str, updates: Sequence[Update]) -> None:
        """Commit several status changes in one transaction. A result clears the
        row's claim; in flight, or deferred to a later try, it stays claimed."""
        now = _now()
        with self._transaction():
            self._db.executemany(
                "UPDATE deliveries SET status=?1, attempts=attempts+?2,"
                " resends=resends+?3, bounced=?4, last_code=COALESCE(?5, last_code),"
                " last_reply=COALESCE(?6, last_reply), updated_at=?7,"
                " claimed_by=CASE WHEN ?1 IN ('inflight', 'deferred') THEN claimed_by END,"
                " lease_until=CASE WHEN ?1 IN ('inflight', 'deferred') THEN lease_until END"
                " WHERE campaign=?8 AND key=?9",
                [(u.status, int(u.attempted), int(u.resend), int(u.bounced), u.code, u.reply, now,
                  campaign, address_key(u.email)) for u in updates],
            )

    def rows(self, campaign: str, statuses: Sequence[str] = STATUSES) -> Iterator[RecipientRecord]:
        marks = ",".join("?" * len(statuses))
        cursor = self._db.execute(
            "SELECT campaign, email, message_id, status, attempts, resends, last_code,"
            f" last_reply, updated_at FROM deliveries WHERE campaign=? AND status IN ({marks})"
            " ORDER BY key",
            (campaign, *statuses),
        )
        for values in cursor:
            yield RecipientRecord(*values)

    def counts(self, campaign: str) -> dict[str, int]:
        cursor = self._db.execute(
            "SELECT status, COUNT(*) FROM deliveries WHERE campaign=? GROUP BY status",
            (campaign,),
        )
        return {status: count for status, count in cursor}

    def suppress(self, campaign: str, chunks: Iterable[Sequence[tuple[str, str]]]) -> int:
        """Mark suppressed everyone still owed this issue whose key is among the
        (key, reason) pairs, given in chunks; return how many were marked.

        One transaction for all the chunks, so a run sees all or none of them;
        each pair is a primary-key lookup, so a long suppression list and a
        short campaign (or the reverse) both stay fast.
        """
        now = _now()
        with self._transaction():
            before = self._db.total_changes
            for chunk in chunks:
                self._db.executemany(
                    "UPDATE deliveries SET status='suppressed', updated_at=?, last_reply=?"
                    f" WHERE campaign=? AND key=? AND {TO_DO}",
                    [(now, reason, campaign, key) for key, reason in chunk])
            return self._db.total_changes - before

    def bounced(self, campaign: str) -> list[str]:
        """Recipients whose address the server refused for good (5xx to RCPT)."""
        cursor = self._db.execute(
            "SELECT email FROM deliveries WHERE campaign=? AND status='failed' AND bounced=1",
            (campaign,))
        return [email for (email,) in cursor]

    def campaigns(self) -> list[str]:
        cursor = self._db.execute(
            "SELECT campaign FROM deliveries GROUP BY campaign ORDER BY MAX(updated_at) DESC"
        )
        return [campaign for (campaign,) in cursor]

    def _transaction(self) -> WriteTransaction:
        return WriteTransaction(self._db, self._writer)
