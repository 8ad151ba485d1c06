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
process without an fsync per message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from digest.errors import ConfigError, DigestError

STATUSES = ("pending", "inflight", "sent", "deferred", "failed", "ambiguous", "skipped",
            "suppressed")
# What a run still has to do: pending and deferred recipients go out normally;
# ambiguous ones (a drop after the final dot, or in flight at a crash) go out
# once more, while resends == 0.
_TO_DO = "(status IN ('pending', 'deferred') OR (status='ambiguous' AND resends=0))"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    campaign    TEXT NOT NULL,
    key         TEXT NOT NULL,  -- the address casefolded: one row per person
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
    PRIMARY KEY (campaign, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (campaign, status);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign    TEXT PRIMARY KEY,
    selection   TEXT NOT NULL,  -- which articles make up this issue (see pin)
    created_at  TEXT NOT NULL
) WITHOUT ROWID;
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Row:
    campaign: str
    email: str
    message_id: str
    status: str
    attempts: int
    resends: int
    last_code: int | None
    last_reply: str | None
    updated_at: str


# (email, name, tags joined by ";", message_id, status, reason)
Entry = tuple[str, str, str, str, str, str | None]


@dataclass(frozen=True, slots=True)
class Update:
    """One status change for one recipient."""

    email: str
    status: str
    code: int | None = None
    reply: str | None = None
    attempted: bool = False
    resend: bool = False
    bounced: bool = False


class Journal:
    """The journal of one state folder. Not thread-safe: one per process."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        try:
            self._db = sqlite3.connect(path if enabled else ":memory:", isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DigestError(
                f"{path}: not a usable journal ({exc}); move it aside to start afresh"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def add(self, campaign: str, entries: Iterable[Entry]) -> int:
        """Record this run's recipients, in batches; return how many were offered.

        A new recipient is inserted with its status (pending, skipped or
        suppressed). One already known keeps its row, except that a
        suppression overrides a send that has not happened yet: someone who
        left between two runs is never mailed.
        """
        offered = 0
        batch: list[tuple[object, ...]] = []
        for entry in entries:
            batch.append((campaign, entry[0].casefold(), *entry, _now()))
            if len(batch) >= 10_000:
                offered += self._insert(batch)
                batch = []
        return offered + self._insert(batch)

    def _insert(self, batch: list[tuple[object, ...]]) -> int:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO deliveries (campaign, key, email, name, tags, message_id, status,"
                " last_reply, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?9, ?9)"
                " ON CONFLICT (campaign, key) DO UPDATE SET status=excluded.status,"
                " last_reply=excluded.last_reply, updated_at=excluded.updated_at"
                " WHERE excluded.status='suppressed'"
                " AND deliveries.status IN ('pending', 'deferred', 'ambiguous')",
                batch,
            )
        return len(batch)

    def todo(self, campaign: str, chunk: int = 1000) -> Iterator[tuple[str, str, str, bool]]:
        """(email, name, tags, is_resend) of each recipient this run must send to.

        Pages by primary key, so rows updated while we iterate are neither
        skipped nor seen twice.
        """
        last = ""
        while True:
            rows = self._db.execute(
                "SELECT key, email, name, tags, status FROM deliveries WHERE campaign=? AND key>?"
                f" AND {_TO_DO} ORDER BY key LIMIT ?",
                (campaign, last, chunk),
            ).fetchall()
            if not rows:
                return
            for _, email, name, tags, status in rows:
                yield email, name, tags, status == "ambiguous"
            last = rows[-1][0]

    def still_to_do(self, campaign: str, email: str) -> tuple[bool, str | None]:
        """(whether a run would send to ``email``, its status if it has a row)."""
        row = self._db.execute(
            f"SELECT status, {_TO_DO} FROM deliveries WHERE campaign=? AND key=?",
            (campaign, email.casefold())).fetchone()
        return (True, None) if row is None else (bool(row[1]), str(row[0]))

    def count_todo(self, campaign: str) -> int:
        (count,) = self._db.execute(
            f"SELECT COUNT(*) FROM deliveries WHERE campaign=? AND {_TO_DO}",
            (campaign,),
        ).fetchone()
        return int(count)

    def pin(self, campaign: str, selection: str) -> None:
        """Tie a campaign to its selection of articles. A rerun that would select
        other articles is refused: it would send a different issue under the same
        campaign, to some people and not others."""
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO campaigns VALUES (?, ?, ?)",
                             (campaign, selection, _now()))
            (pinned,) = self._db.execute("SELECT selection FROM campaigns WHERE campaign=?",
                                         (campaign,)).fetchone()
        if pinned != selection:
            raise ConfigError(
                f"campaign {campaign} was started with another selection of articles; run it "
                "again with the same --as-of, --since, --tag and --limit, or start a new "
                "issue with --campaign", source="--campaign")

    def recover(self, campaign: str) -> int:
        """Turn rows left in flight by a crash into ambiguous ones; return how many."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE deliveries SET status='ambiguous', last_reply=?, updated_at=?"
                " WHERE campaign=? AND status='inflight'",
                ("interrupted while in flight", _now(), campaign),
            )
        return cursor.rowcount

    def apply(self, campaign: str, updates: Sequence[Update]) -> None:
        """Commit several status changes in one transaction."""
        now = _now()
        with self._transaction():
            self._db.executemany(
                "UPDATE deliveries SET status=?, attempts=attempts+?,"
                " resends=resends+?, bounced=?, last_code=COALESCE(?, last_code),"
                " last_reply=COALESCE(?, last_reply), updated_at=?"
                " WHERE campaign=? AND key=?",
                [(u.status, int(u.attempted), int(u.resend), int(u.bounced), u.code, u.reply, now,
                  campaign, u.email.casefold()) for u in updates],
            )

    def rows(self, campaign: str, statuses: Sequence[str] = STATUSES) -> Iterator[Row]:
        marks = ",".join("?" * len(statuses))
        cursor = self._db.execute(
            "SELECT campaign, email, message_id, status, attempts, resends, last_code,"
            f" last_reply, updated_at FROM deliveries WHERE campaign=? AND status IN ({marks})"
            " ORDER BY key",
            (campaign, *statuses),
        )
        for values in cursor:
            yield Row(*values)

    def counts(self, campaign: str) -> dict[str, int]:
        cursor = self._db.execute(
            "SELECT status, COUNT(*) FROM deliveries WHERE campaign=? GROUP BY status",
            (campaign,),
        )
        return {status: count for status, count in cursor}

    def apply_suppressions(self, campaign: str, suppressions: Path) -> int:
        """Mark suppressed everyone still owed this issue whom the suppression list
        (a ``suppressions.sqlite3``) names, whether or not a list still has them:
        a suppression always wins over a send that has not happened yet."""
        if not suppressions.is_file():
            return 0
        self._db.execute("ATTACH DATABASE ? AS sup", (str(suppressions),))
        try:
            with self._transaction():
                cursor = self._db.execute(
                    "UPDATE deliveries SET status='suppressed', updated_at=?,"
                    " last_reply=(SELECT reason FROM sup.suppressions s WHERE s.key=deliveries.key)"
                    f" WHERE campaign=? AND {_TO_DO}"
                    " AND key IN (SELECT key FROM sup.suppressions)",
                    (_now(), campaign),
                )
        finally:
            self._db.execute("DETACH DATABASE sup")
        return cursor.rowcount

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

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
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
