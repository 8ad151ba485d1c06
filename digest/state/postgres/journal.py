"""The delivery journal in PostgreSQL: the same rows and answers as the SQLite
journal (digest/state/journal.py, whose docstring explains the statuses).

Writes run in explicit transactions on the store's one connection; reads page
by primary key (keyset), so a million-row campaign streams in fixed memory and
rows changed while a run iterates are neither skipped nor seen twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import psycopg

from digest.errors import DigestError, first_line
from digest.model import address_key
from digest.state.postgres.claims import PostgresClaims
from digest.state.postgres.guard import again_on_deadlock, guarded
from digest.state.postgres.schema import Connection
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

_RECORD = "campaign, selection, created_at, series, as_of, definition, closed_at, closed_reason"
_BATCH = 10_000
# One lock per series of a state (a database and schema), held to the pin's commit.
_SERIES_LOCK = ("SELECT pg_advisory_xact_lock(hashtextextended('digest pin ' || current_database()"
                " || '.' || current_schema() || ' ' || %s, 0))")
# The statuses a later suppression overrides: no send has happened yet.
_OVERRIDDEN = ("pending", "deferred", "ambiguous")
# A row in these statuses stays with its sender: in flight, or waiting for its next try.
_KEEP_CLAIM = "('inflight', 'deferred')"


def new_rid() -> str:
    """A recipient's opaque id in their links: 72 random bits, as in SQLite."""
    return secrets.token_hex(9)


@guarded
class PostgresJournal(PostgresClaims):
    """The journal of one PostgreSQL state, on the store's connection, but for
    ``apply``: a sender's marks go through a connection of their own, opened at the
    first, so that they may be written from a thread while the store's connection
    serves the sender's claims (see ``apply_in_thread``)."""

    apply_in_thread = True  # a mark waits on the server: the sender goes on meanwhile

    def __init__(self, db: Connection, *, writable: bool,
                 connect: Callable[[], Connection]) -> None:
        self._db = db
        self.writable = writable
        self._connect = connect
        self._marks_db: Connection | None = None
        self._rids_given: set[str] = set()
        self._claimed_to: dict[tuple[str, str], str] = {}  # (campaign, sender): last key

    @contextmanager
    def _writing(self, db: Connection | None = None) -> Iterator[Connection]:
        """One statement, its own transaction (the connection is in autocommit)."""
        try:
            yield db or self._db
        except psycopg.Error as exc:
            raise DigestError(f"the journal could not be written ({first_line(exc)}); it "
                              "holds everything up to the last good write, so run again"
                              ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._writing() as db, db.transaction():
            yield db

    def add(self, campaign: str, entries: Iterable[Entry], *, queued_at: str | None = None) -> int:
        """Record this run's recipients in batches (see SqliteJournal.add)."""
        offered = 0
        batch: dict[str, list[object]] = {}
        queued_at = queued_at or _now()
        for entry in entries:
            offered += 1
            key = address_key(entry.email)
            first = batch.get(key)
            if first is None:
                batch[key] = [campaign, key, *entry, queued_at, queued_at, new_rid()]
            elif entry.status == "suppressed" and first[6] in _OVERRIDDEN:
                # As a second row for one person would in SQLite: a suppression wins.
                first[6], first[7] = entry.status, entry.reason
            if len(batch) >= _BATCH:
                self._insert(campaign, batch)
                batch = {}
        self._insert(campaign, batch)
        return offered

    @again_on_deadlock
    def _insert(self, campaign: str, batch: dict[str, list[object]]) -> None:
        """Two statements per batch (the columns as arrays), a person at most once in it.

        New people are inserted and the rows already there left alone, unlocked: a
        send joining a campaign that others are sending adds the same list without
        waiting on, or deadlocking with, their marks. Then the list's suppressions
        override the rows still owed the issue, in key order.
        """
        if not batch:
            return
        columns = [list(column) for column in zip(*batch.values(), strict=True)]
        suppressed = sorted((key, row[7], row[9]) for key, row in batch.items()
                            if row[6] == "suppressed")
        with self._transaction() as db:
            db.execute(
                "INSERT INTO deliveries (campaign, key, email, name, tags, message_id, status,"
                " last_reply, created_at, updated_at, rid) SELECT * FROM unnest(%s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::text[]) ORDER BY 2"
                " ON CONFLICT (campaign, key) DO NOTHING", columns)
            if suppressed:
                db.execute(
                    "UPDATE deliveries d SET status='suppressed', last_reply=u.reason,"
                    " updated_at=u.at FROM unnest(%s::text[], %s::text[], %s::text[])"
                    " AS u(key, reason, at) WHERE d.campaign=%s AND d.key=u.key"
                    f" AND d.status IN {_OVERRIDDEN}",
                    [*map(list, zip(*suppressed, strict=True)), campaign])

    def todo(self, campaign: str, chunk: int = 1000) -> Iterator[Pending]:
        """Each recipient this run must send to, a page of ``chunk`` at a time."""
        self._give_rids(campaign)
        last = ""
        while True:
            rows = self._db.execute(
                "SELECT key, email, name, tags, status, rid FROM deliveries WHERE campaign=%s"
                f" AND key>%s AND {TO_DO} ORDER BY key LIMIT %s",
                (campaign, last, chunk)).fetchall()
            if not rows:
                return
            for _, email, name, tags, status, rid in rows:
                yield Pending(str(email), str(name), str(tags), status == "ambiguous", str(rid))
            last = str(rows[-1][0])

    @again_on_deadlock
    def _give_rids(self, campaign: str) -> None:
        """Rows copied from a journal older than recipient ids get theirs now, once
        per campaign: the planner may answer by reading every row of the campaign."""
        if campaign in self._rids_given:
            return
        keys = self._db.execute("SELECT key FROM deliveries WHERE campaign=%s AND rid IS NULL"
                                " ORDER BY key", (campaign,)).fetchall()
        if keys:
            # Another sender may be giving them ids at the same instant: the first id
            # given is the one in the mail, so it is never overwritten.
            with self._transaction() as db, db.cursor() as cursor:
                cursor.executemany("UPDATE deliveries SET rid=%s WHERE campaign=%s AND key=%s"
                                   " AND rid IS NULL",
                                   [(new_rid(), campaign, key) for (key,) in keys])
        self._rids_given.add(campaign)

    def reader(self, rid: str) -> Reader | None:
        row = self._db.execute("SELECT rid, campaign, email, name, tags FROM deliveries"
                               " WHERE rid=%s", (rid,)).fetchone()
        return Reader(*map(str, row)) if row else None

    def still_to_do(self, campaign: str, email: str) -> tuple[bool, str | None]:
        row = self._db.execute(
            f"SELECT status, {TO_DO} FROM deliveries WHERE campaign=%s AND key=%s",
            (campaign, address_key(email))).fetchone()
        return (True, None) if row is None else (bool(row[1]), str(row[0]))

    def count_todo(self, campaign: str) -> int:
        return self._count(f"SELECT COUNT(*) FROM deliveries WHERE campaign=%s AND {TO_DO}",
                           campaign)

    def _count(self, query: str, campaign: str) -> int:
        row = self._db.execute(query.encode(), (campaign,)).fetchone()
        assert row is not None
        return int(str(row[0]))

    def pin(self, record: CampaignRecord, follows: Follows | None = None) -> CampaignRecord:
        """Record a new campaign; one already recorded keeps (and returns) its first
        record. With ``follows`` (see SqliteJournal.pin), the pins of one series
        queue on a lock held to the commit, so that each sees the one before."""
        with self._transaction() as db:
            if follows is not None and record.series:
                db.execute(_SERIES_LOCK, (record.series,))
                newest = self.newest(record.series)
                if (newest is not None and newest.campaign != follows.campaign
                        and self.campaign(record.campaign) is None):
                    return newest
            db.execute(
                "INSERT INTO campaigns (campaign, selection, created_at, series, as_of,"
                " definition) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (record.campaign, record.selection, record.created_at, record.series,
                 record.as_of, record.definition))
        pinned = self.campaign(record.campaign)
        assert pinned is not None
        return pinned

    def campaign(self, campaign: str) -> CampaignRecord | None:
        row = self._db.execute(f"SELECT {_RECORD} FROM campaigns WHERE campaign=%s",
                               (campaign,)).fetchone()
        return _record(row)

    def newest(self, series: str) -> CampaignRecord | None:
        row = self._db.execute(
            f"SELECT {_RECORD} FROM campaigns WHERE series=%s"
            " ORDER BY as_of DESC NULLS LAST, created_at DESC LIMIT 1", (series,)).fetchone()
        return _record(row)

    def unfinished(self, campaign: str) -> int:
        record = self.campaign(campaign)
        if record is not None and record.closed_at is not None:
            return 0
        return self._count("SELECT COUNT(*) FROM deliveries WHERE campaign=%s"
                           f" AND ({TO_DO} OR status='inflight')", campaign)

    @again_on_deadlock
    def expire(self, campaign: str, queued_before: str, reason: str) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE deliveries SET status='expired', last_reply=%s, updated_at=%s"
                f" WHERE campaign=%s AND ({TO_DO} OR status='inflight') AND created_at<%s",
                (reason, _now(), campaign, queued_before))
        return cursor.rowcount

    def close_campaign(self, campaign: str, reason: str, at: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE campaigns SET closed_at=%s, closed_reason=%s WHERE campaign=%s"
                " AND closed_at IS NULL", (at, reason, campaign))
        return cursor.rowcount == 1

    @again_on_deadlock
    def recover(self, campaign: str) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE deliveries SET status='ambiguous', last_reply=%s, updated_at=%s,"
                " claimed_by=NULL, lease_until=NULL WHERE campaign=%s AND status='inflight'",
                ("interrupted while in flight", _now(), campaign))
        return cursor.rowcount

    @again_on_deadlock
    def apply(self, campaign: str, updates: Sequence[Update]) -> None:
        """Commit several status changes as one statement, so one round trip. A
        result clears the row's claim; in flight, or deferred to a later try, it
        stays claimed."""
        rows = _folded(updates)
        if not rows:
            return
        if self._marks_db is None:
            self._marks_db = self._connect()
            # A batch of marks is 1 row or dozens. Planned for its size, a larger one was
            # read by a hash join over the campaign (4 ms for 32 rows of 20,000, against
            # 0.5 ms through the primary key); the generic plan always takes the key.
            self._marks_db.execute("SET plan_cache_mode = force_generic_plan")
        with self._writing(self._marks_db) as db:
            db.execute(
                "UPDATE deliveries AS d SET status=u.s, attempts=d.attempts+u.a,"
                " resends=d.resends+u.r, bounced=u.b, last_code=COALESCE(u.c, d.last_code),"
                " last_reply=COALESCE(u.t, d.last_reply), updated_at=%s,"
                f" claimed_by=CASE WHEN u.s IN {_KEEP_CLAIM} THEN d.claimed_by END,"
                f" lease_until=CASE WHEN u.s IN {_KEEP_CLAIM} THEN d.lease_until END"
                " FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[], %s::int[],"
                " %s::int[], %s::text[]) AS u(key, s, a, r, b, c, t)"
                " WHERE d.campaign=%s AND d.key=u.key",
                (_now(), *(list(column) for column in zip(*rows, strict=True)), campaign))

    def rows(self, campaign: str, statuses: Sequence[str] = STATUSES) -> Iterator[RecipientRecord]:
        last = ""
        while True:
            page = self._db.execute(
                "SELECT key, campaign, email, message_id, status, attempts, resends, last_code,"
                " last_reply, updated_at FROM deliveries WHERE campaign=%s AND key>%s"
                " AND status=ANY(%s) ORDER BY key LIMIT %s",
                (campaign, last, list(statuses), _BATCH)).fetchall()
            if not page:
                return
            for _, *values in page:
                yield RecipientRecord(*values)
            last = str(page[-1][0])

    def counts(self, campaign: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT status, COUNT(*) FROM deliveries WHERE campaign=%s GROUP BY status",
            (campaign,)).fetchall()
        return {str(status): int(str(count)) for status, count in rows}

    @again_on_deadlock
    def suppress(self, campaign: str, since: str | None) -> int:
        """Mark suppressed everyone still owed this issue whom the suppression list
        names (only entries added at or after ``since``, when given).

        With ``since``, which runs before every claim, the new entries are read
        first, and nearly always there are none. A join would let the planner,
        whose row counts are stale right after the list's bulk add, walk every row
        still owed, once per claim."""
        if since is None:
            with self._transaction() as db:
                return db.execute(
                    "UPDATE deliveries d SET status='suppressed', updated_at=%s,"
                    " last_reply=s.reason FROM suppressions s WHERE d.campaign=%s"
                    f" AND d.key=s.key AND {TO_DO}", (_now(), campaign)).rowcount
        fresh = self._db.execute("SELECT key, reason FROM suppressions WHERE created_at>=%s"
                                 " ORDER BY key", (since,)).fetchall()
        if not fresh:
            return 0
        with self._transaction() as db:
            return db.execute(
                "UPDATE deliveries d SET status='suppressed', updated_at=%s, last_reply=u.reason"
                " FROM unnest(%s::text[], %s::text[]) AS u(key, reason)"
                f" WHERE d.campaign=%s AND d.key=u.key AND {TO_DO}",
                (_now(), *(list(column) for column in zip(*fresh, strict=True)), campaign)
            ).rowcount

    def bounced(self, campaign: str) -> list[str]:
        rows = self._db.execute(
            "SELECT email FROM deliveries WHERE campaign=%s AND status='failed' AND bounced=1"
            " ORDER BY key", (campaign,)).fetchall()
        return [str(email) for (email,) in rows]

    def campaigns(self) -> list[str]:
        rows = self._db.execute(
            "SELECT campaign FROM deliveries GROUP BY campaign ORDER BY MAX(updated_at) DESC"
        ).fetchall()
        return [str(campaign) for (campaign,) in rows]

    def close(self) -> None:
        """Close the marks' connection; the store owns and closes its own."""
        if self._marks_db is not None:
            self._marks_db.close()


def _record(row: tuple[object, ...] | None) -> CampaignRecord | None:
    return CampaignRecord(*row) if row else None  # type: ignore[arg-type]



Folded = tuple[str, str, int, int, int, int | None, str | None]


def _folded(updates: Sequence[Update]) -> list[Folded]:
    """One row per recipient, in key order (as every multi-row write here passes its
    rows, so that two seldom lock them in different orders; the plan may still, and
    ``again_on_deadlock`` covers that). A batch may hold two updates of one recipient (a try that
    was deferred and the in-flight mark of the next), and one UPDATE changes a row
    once, so they are folded into what applying them in turn would leave."""
    rows: dict[str, Folded] = {}
    for u in updates:
        key = address_key(u.email)
        attempts, resends = int(u.attempted), int(u.resend)
        code, reply = u.code, u.reply
        before = rows.get(key)
        if before is not None:
            attempts, resends = attempts + before[2], resends + before[3]
            code = before[5] if code is None else code
            reply = before[6] if reply is None else reply
        rows[key] = (key, u.status, attempts, resends, int(u.bounced), code, reply)
    return [rows[key] for key in sorted(rows)]
