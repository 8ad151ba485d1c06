"""Claims and leases in the PostgreSQL journal: how any number of senders, on any
number of machines, share a campaign (see ``JournalStore.claim``).

A claim stamps a batch of rows still owed the issue with the sender's id and a
lease (``lease_until``), in one ``UPDATE ... WHERE (campaign, key) IN (SELECT ...
FOR UPDATE SKIP LOCKED)``: two senders never take the same row, and neither waits
for the other's. A row in flight, or deferred to a later try, stays claimed by its
sender; any other result clears the claim (``PostgresJournal.apply``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from digest.model import address_key
from digest.state.postgres.guard import again_on_deadlock, guarded
from digest.state.postgres.schema import Connection
from digest.state.records import EXPIRED_IN_FLIGHT, TO_DO, Pending
from digest.state.records import now_stamp as _now


class _Journal(Protocol):
    """What the mixin needs of ``PostgresJournal``."""

    _db: Connection
    _claimed_to: dict[tuple[str, str], str]  # (campaign, sender): the last key it claimed

    def _transaction(self) -> AbstractContextManager[Connection]: ...

    def _give_rids(self, campaign: str) -> None: ...

    def _claim(self, campaign: str, sender_id: str, n: int, lease_s: float, now: datetime,
               after: str) -> list[tuple[object, ...]]: ...


@guarded
class PostgresClaims:
    """The claim API of ``PostgresJournal`` (a mixin: ``self`` is the journal)."""

    def claim(self: _Journal, campaign: str, sender_id: str, n: int, lease_s: float,
              now: datetime) -> list[Pending]:
        """Take up to ``n`` recipients still owed the issue that no live lease holds;
        rows another sender is claiming this instant are skipped, not waited for.

        A claim looks past the last key this sender claimed, and from the start only
        when nothing is left there. An UPDATE leaves the row's old entry in the index
        until VACUUM, so a claim from the start would step over every row already
        claimed: the campaign's claims would cost the square of its size."""
        self._give_rids(campaign)
        after = self._claimed_to.get((campaign, sender_id), "")
        rows = self._claim(campaign, sender_id, n, lease_s, now, after)
        if not rows and after:
            rows = self._claim(campaign, sender_id, n, lease_s, now, "")
        if rows:
            rows.sort()
            self._claimed_to[campaign, sender_id] = str(rows[-1][0])
        return [Pending(str(email), str(name), str(tags), status == "ambiguous", str(rid))
                for _, email, name, tags, status, rid in rows]

    @again_on_deadlock
    def _claim(self: _Journal, campaign: str, sender_id: str, n: int, lease_s: float, now: datetime,
               after: str) -> list[tuple[object, ...]]:
        with self._transaction() as db:
            return db.execute(
                "UPDATE deliveries SET claimed_by=%s, lease_until=%s WHERE (campaign, key) IN"
                f" (SELECT campaign, key FROM deliveries WHERE campaign=%s AND key>%s"
                f" AND {TO_DO} AND (claimed_by IS NULL OR lease_until<%s) ORDER BY key"
                " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING key, email, name, tags, status, rid",
                (sender_id, now + timedelta(seconds=lease_s), campaign, after, now, n)
            ).fetchall()

    @again_on_deadlock
    def renew(self: _Journal, campaign: str, sender_id: str, emails: Sequence[str], lease_s: float,
              now: datetime) -> int:
        """Extend this sender's leases on ``emails``; rows it no longer holds are left alone."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE deliveries SET lease_until=%s WHERE campaign=%s AND claimed_by=%s"
                " AND key=ANY(%s)", (now + timedelta(seconds=lease_s), campaign, sender_id,
                                     [address_key(e) for e in emails]))
        return cursor.rowcount

    @again_on_deadlock
    def reclaim(self: _Journal, campaign: str, now: datetime) -> int:
        """Rows left in flight by a sender whose lease expired (or that held none)
        become ambiguous, to be sent once more with the same Message-ID; a live
        sender's rows in flight are never touched."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE deliveries SET status='ambiguous', last_reply=%s, updated_at=%s,"
                " claimed_by=NULL, lease_until=NULL WHERE campaign=%s AND status='inflight'"
                " AND (claimed_by IS NULL OR lease_until<%s)",
                (EXPIRED_IN_FLIGHT, _now(), campaign, now))
        return cursor.rowcount

    @again_on_deadlock
    def release(self: _Journal, campaign: str, sender_id: str | None) -> int:
        """Give up this sender's claims (``None``: everyone's) on rows not in flight."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE deliveries SET claimed_by=NULL, lease_until=NULL WHERE campaign=%s"
                " AND claimed_by IS NOT NULL AND (%s::text IS NULL OR claimed_by=%s)"
                " AND status<>'inflight'", (campaign, sender_id, sender_id))
        return cursor.rowcount

    def held(self: _Journal, campaign: str, sender_id: str, now: datetime) -> float | None:
        """Seconds until the first lease of another sender on a row it has yet to
        send or is sending ends: 0 if one has ended, or if such a row is held by no
        one (released by a sender that stopped, made ambiguous by a reclaim): claim
        again now. None when there is no such row."""
        row = self._db.execute(
            "SELECT bool_or(claimed_by IS NULL), EXTRACT(EPOCH FROM MIN(lease_until) - %s)"
            " FROM deliveries WHERE campaign=%s AND (claimed_by IS NULL OR claimed_by<>%s)"
            " AND (status IN ('inflight', 'pending') OR (status='ambiguous' AND resends=0))",
            (now, campaign, sender_id)).fetchone()
        if row is None or row[0] is None:
            return None
        return 0.0 if row[0] else max(0.0, float(str(row[1])))
