"""The audience's tables in PostgreSQL: the suppression list, preferences and
bounce records, with the same answers as their SQLite counterparts
(digest/state/suppressions.py, preferences.py, bounces.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import psycopg

from digest.errors import DigestError, first_line
from digest.model import address_key
from digest.state.postgres.guard import guarded
from digest.state.postgres.schema import Connection
from digest.state.records import Suppression, joined_tags, stamp

_PAGE = 10_000
_BATCH = 1_000  # suppression entries a statement


@contextmanager
def _writing(db: Connection, what: str, shown: str) -> Iterator[Connection]:
    """One transaction; a failure is one line naming ``what`` and the state."""
    try:
        with db.transaction():
            yield db
    except psycopg.Error as exc:
        first = first_line(exc)
        raise DigestError(f"{shown}: cannot update the {what} ({first}); check that the "
                          "role may write there and the server has space") from exc


def _insert(db: Connection, batch: dict[str, tuple[str, str, str]], now: str) -> int:
    """One statement for the entries, in key order: two adds that share some
    addresses (an import beside a send adding its list's unsubscribes) lock the
    ones they share in the same order, so neither waits for the other in a cycle."""
    if not batch:
        return 0
    keys = sorted(batch)
    columns = [list(column) for column in zip(*(batch[key] for key in keys), strict=True)]
    return db.execute(
        "INSERT INTO suppressions (key, email, reason, source, created_at)"
        " SELECT u.key, u.email, u.reason, u.source, %s FROM unnest(%s::text[], %s::text[],"
        " %s::text[], %s::text[]) AS u(key, email, reason, source) ORDER BY u.key"
        " ON CONFLICT DO NOTHING", (now, keys, *columns)).rowcount


def _staged(db: Connection, first: dict[str, tuple[str, str, str]],
            rest: Iterator[tuple[str, str, str]], clock: Callable[[], datetime]) -> int:
    """``first`` and then ``rest`` through a temporary table, in one transaction."""
    db.execute("CREATE TEMPORARY TABLE digest_staged (seq bigserial, key text COLLATE \"C\","
               " email text, reason text, source text) ON COMMIT DROP")
    with db.cursor() as cursor, cursor.copy(
            "COPY digest_staged (key, email, reason, source) FROM STDIN") as copy:
        for key, entry in first.items():
            copy.write_row((key, *entry))
        for email, reason, source in rest:
            copy.write_row((address_key(email), email, reason, source))
    added = db.execute(
        "INSERT INTO suppressions (key, email, reason, source, created_at)"
        " SELECT DISTINCT ON (key) key, email, reason, source, %s FROM digest_staged"
        " ORDER BY key, seq ON CONFLICT DO NOTHING", (stamp(clock()),)).rowcount
    db.execute("DROP TABLE digest_staged")  # an add inside a caller's transaction may follow
    return added


@guarded
class PostgresSuppressions:
    """Addresses never to be mailed, keyed by ``address_key``. Each entry is stamped
    by ``clock``, the state's (``PostgresStore.clock``): the senders that look for
    entries added since their last look read the same clock."""

    def __init__(self, db: Connection, shown: str, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._shown = shown
        self._clock = clock

    def add(self, entries: Iterable[tuple[str, str, str]]) -> int:
        """Add (email, reason, source); an address listed already keeps its first
        reason. Returns how many were new. A large add is read whole into a
        temporary table first, then inserted in one statement: in key order, so
        that two at once never lock in opposite orders, and stamped when the
        reading is over, so a long import still reaches the senders that look
        meanwhile (``records.LOOKBACK``)."""
        rows = iter(entries)
        first: dict[str, tuple[str, str, str]] = {}
        for email, reason, source in rows:
            first.setdefault(address_key(email), (email, reason, source))
            if len(first) > _BATCH:
                break
        with _writing(self._db, "suppression list", self._shown) as db:
            if len(first) <= _BATCH:
                return _insert(db, first, stamp(self._clock()))
            return _staged(db, first, rows, self._clock)

    def remove(self, emails: Iterable[str]) -> int:
        keys = sorted({address_key(e) for e in emails})
        with _writing(self._db, "suppression list", self._shown) as db:
            return db.execute("DELETE FROM suppressions WHERE key=ANY(%s)", (keys,)).rowcount

    def undo(self, email: str, source: str) -> bool:
        """Remove the unsubscribe of ``email`` whose source starts with ``source``."""
        with _writing(self._db, "suppression list", self._shown) as db:
            cursor = db.execute(
                "DELETE FROM suppressions WHERE key=%s AND starts_with(source, %s)"
                " AND reason='unsubscribed'", (address_key(email), source))
        return cursor.rowcount == 1

    def added_since(self, mark: str) -> list[tuple[str, str]]:
        rows = self._db.execute("SELECT key, reason FROM suppressions WHERE created_at>=%s",
                                (mark,)).fetchall()
        return [(str(key), str(reason)) for key, reason in rows]

    def reason(self, email: str) -> str | None:
        row = self._db.execute("SELECT reason FROM suppressions WHERE key=%s",
                               (address_key(email),)).fetchone()
        return str(row[0]) if row else None

    def reasons(self, emails: Sequence[str]) -> dict[str, str]:
        rows = self._db.execute("SELECT key, reason FROM suppressions WHERE key=ANY(%s)",
                                (sorted({address_key(e) for e in emails}),)).fetchall()
        return {str(key): str(reason) for key, reason in rows}

    def __iter__(self) -> Iterator[Suppression]:
        last = ""
        while True:
            page = self._db.execute(
                "SELECT key, email, reason, source, created_at FROM suppressions"
                " WHERE key>%s ORDER BY key LIMIT %s", (last, _PAGE)).fetchall()
            if not page:
                return
            for _, *values in page:
                yield Suppression(*values)
            last = str(page[-1][0])

    def close(self) -> None:
        """The store owns the connection."""


@guarded
class PostgresPreferences:
    """Subscribers' own tag choices, keyed by ``address_key``."""

    def __init__(self, db: Connection, shown: str) -> None:
        self._db = db
        self._shown = shown

    def get(self, email: str) -> tuple[str, ...] | None:
        row = self._db.execute("SELECT tags FROM preferences WHERE key=%s",
                               (address_key(email),)).fetchone()
        return None if row is None else joined_tags(row[0])

    def chosen(self, emails: Sequence[str]) -> dict[str, tuple[str, ...]]:
        rows = self._db.execute("SELECT key, tags FROM preferences WHERE key=ANY(%s)",
                                (sorted({address_key(e) for e in emails}),)).fetchall()
        return {str(key): joined_tags(tags) for key, tags in rows}

    def set(self, email: str, tags: tuple[str, ...], source: str, at: str) -> None:
        with _writing(self._db, "preferences", self._shown) as db:
            db.execute(
                "INSERT INTO preferences (key, email, tags, source, updated_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
                " tags=excluded.tags, source=excluded.source, updated_at=excluded.updated_at",
                (address_key(email), email, ";".join(tags), source, at))

    def count(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM preferences").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """The store owns the connection."""


@guarded
class PostgresBounces:
    """Bounce scores per address and the returned mail already processed."""

    def __init__(self, db: Connection, shown: str) -> None:
        self._db = db
        self._shown = shown

    def processed(self, message_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM inbox_messages WHERE id=%s",
                               (message_id,)).fetchone()
        return row is not None

    def record(self, message_id: str, kind: str, where: tuple[str, str], at: str) -> None:
        with _writing(self._db, "bounce records", self._shown) as db:
            db.execute("INSERT INTO inbox_messages (id, kind, campaign, email, at)"
                       " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                       (message_id, kind, *where, at))

    def score(self, email: str) -> tuple[float, str] | None:
        row = self._db.execute("SELECT score, last_bounce FROM bounce_scores WHERE key=%s",
                               (address_key(email),)).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def set_score(self, email: str, score: float, at: str) -> None:
        with _writing(self._db, "bounce records", self._shown) as db:
            db.execute(
                "INSERT INTO bounce_scores (key, email, score, last_bounce)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
                " score=excluded.score, last_bounce=excluded.last_bounce",
                (address_key(email), email, score, at))

    def counts(self, campaign: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT kind, COUNT(DISTINCT email) FROM inbox_messages WHERE campaign=%s"
            " GROUP BY kind", (campaign,)).fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def close(self) -> None:
        """The store owns the connection."""
