"""Claims and leases in the SQLite journal: how the worker processes of one
``digest send --workers N`` share a campaign (see ``JournalStore.claim``).

A claim stamps a batch of rows still owed the issue with the sender's id and
a lease (``lease_until``, seconds since the epoch). The parent process holds
the state folder's lock for the whole run, so no sender outside it can hold a
live lease when a run starts: it clears every claim then (``release(c, None)``).
Each claim is one ``BEGIN IMMEDIATE`` transaction, an ``UPDATE ... RETURNING``,
so two workers never take the same row.

Each query names its index (``INDEXED BY``): without statistics SQLite's
planner walks the whole campaign by primary key instead, which made every
claim cost a scan of every row already sent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from digest.model import address_key
from digest.state.records import EXPIRED_IN_FLIGHT, TO_DO, Pending
from digest.state.records import now_stamp as _now

# Still owed and not merely waiting for a later try: what a sender out of work waits for.
# Written so that the (campaign, status) index can serve it.
_ACTIVE = "status IN ('inflight', 'pending', 'ambiguous') AND (status<>'ambiguous' OR resends=0)"


class _Journal(Protocol):
    """What the mixin needs of ``SqliteJournal``."""

    _db: sqlite3.Connection

    def _transaction(self) -> AbstractContextManager[None]: ...

    def _give_rids(self, campaign: str) -> None: ...


class SqliteClaims:
    """The claim API of ``SqliteJournal`` (a mixin: ``self`` is the journal)."""

    def claim(self: _Journal, campaign: str, sender_id: str, n: int, lease_s: float,
              now: datetime) -> list[Pending]:
        """Take up to ``n`` recipients still owed the issue that no live lease holds."""
        self._give_rids(campaign)
        moment = now.timestamp()
        with self._transaction():
            rows = self._db.execute(
                "UPDATE deliveries SET claimed_by=?, lease_until=? WHERE campaign=? AND key IN"
                " (SELECT key FROM deliveries INDEXED BY deliveries_todo WHERE campaign=?"
                f" AND {TO_DO} AND (claimed_by IS NULL OR lease_until<?) ORDER BY key LIMIT ?)"
                " RETURNING key, email, name, tags, status, rid",
                (sender_id, moment + lease_s, campaign, campaign, moment, n)).fetchall()
        rows.sort()
        return [Pending(email, name, tags, status == "ambiguous", rid)
                for _, email, name, tags, status, rid in rows]

    def renew(self: _Journal, campaign: str, sender_id: str, emails: Sequence[str], lease_s: float,
              now: datetime) -> int:
        """Extend this sender's leases on ``emails``; rows it no longer holds are left alone."""
        until = now.timestamp() + lease_s
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(
                "UPDATE deliveries SET lease_until=? WHERE campaign=? AND key=? AND claimed_by=?",
                [(until, campaign, address_key(e), sender_id) for e in emails])
            return self._db.total_changes - before

    def reclaim(self: _Journal, campaign: str, now: datetime) -> int:
        """Rows left in flight by a sender whose lease expired (or that held none)
        become ambiguous, to be sent once more with the same Message-ID."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE deliveries INDEXED BY deliveries_status SET status='ambiguous',"
                " last_reply=?, updated_at=?, claimed_by=NULL, lease_until=NULL"
                " WHERE campaign=? AND status='inflight'"
                " AND (claimed_by IS NULL OR lease_until<?)",
                (EXPIRED_IN_FLIGHT, _now(), campaign, now.timestamp()))
        return cursor.rowcount

    def release(self: _Journal, campaign: str, sender_id: str | None) -> int:
        """Give up this sender's claims (``None``: everyone's) on rows not in flight."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE deliveries SET claimed_by=NULL, lease_until=NULL WHERE campaign=?"
                " AND claimed_by IS NOT NULL AND (? IS NULL OR claimed_by=?)"
                " AND status<>'inflight'", (campaign, sender_id, sender_id))
        return cursor.rowcount

    def held(self: _Journal, campaign: str, sender_id: str, now: datetime) -> float | None:
        """Seconds until the first lease of another sender on a row it has yet to
        send or is sending ends: 0 if one has ended, or if such a row is held by no
        one (released by a worker that stopped, made ambiguous by a reclaim): claim
        again now. None when there is no such row."""
        (free, until) = self._db.execute(
            "SELECT MAX(claimed_by IS NULL), MIN(lease_until) FROM deliveries"
            " INDEXED BY deliveries_status WHERE campaign=?"
            f" AND (claimed_by IS NULL OR claimed_by<>?) AND {_ACTIVE}",
            (campaign, sender_id)).fetchone()
        if free is None:
            return None
        return 0.0 if free else max(0.0, float(until) - now.timestamp())
