"""What ``digest inbox`` remembers: bounce scores and the mail it has processed.

Kept beside the suppression list (the audience's database file). A score is
per ``address_key`` with the time of its last counted bounce; each processed
message is recorded by its Message-ID (or a content hash), with what it was
and which campaign it named, so a second run over the same mailbox changes
nothing and ``digest status`` can give bounce and complaint rates.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from digest.errors import DigestError, StateError
from digest.model import address_key
from digest.state.connect import open_tables

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bounce_scores (
    key         TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    score       REAL NOT NULL,
    last_bounce TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox_messages (
    id        TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    campaign  TEXT NOT NULL DEFAULT '',
    email     TEXT NOT NULL DEFAULT '',
    at        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inbox_messages_campaign ON inbox_messages (campaign, kind);
"""


class SqliteBounces:
    """Bounce scores and processed messages of one state folder."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        try:
            self._db = open_tables(path, "inbox_messages", _SCHEMA, readonly=readonly)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StateError(f"{path}: cannot open the bounce records ({exc})") from exc

    def _failed(self, exc: sqlite3.Error) -> DigestError:
        return DigestError(f"{self.path}: cannot update the bounce records ({exc}); "
                           "free space on its disk or fix the permissions of --state")

    def processed(self, message_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM inbox_messages WHERE id=?",
                               (message_id,)).fetchone()
        return row is not None

    def record(self, message_id: str, kind: str, where: tuple[str, str], at: str) -> None:
        """Remember a processed message: its ``kind`` and (campaign, email) it named."""
        try:
            self._db.execute("INSERT OR IGNORE INTO inbox_messages (id, kind, campaign, email,"
                             " at) VALUES (?, ?, ?, ?, ?)", (message_id, kind, *where, at))
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def score(self, email: str) -> tuple[float, str] | None:
        """(score, time of the last counted bounce) of ``email``; None if none."""
        row = self._db.execute("SELECT score, last_bounce FROM bounce_scores WHERE key=?",
                               (address_key(email),)).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def set_score(self, email: str, score: float, at: str) -> None:
        try:
            self._db.execute(
                "INSERT INTO bounce_scores (key, email, score, last_bounce) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET score=excluded.score,"
                " last_bounce=excluded.last_bounce", (address_key(email), email, score, at))
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def counts(self, campaign: str) -> dict[str, int]:
        """How many distinct addresses of ``campaign`` each kind of mail named."""
        rows = self._db.execute(
            "SELECT kind, COUNT(DISTINCT email) FROM inbox_messages WHERE campaign=?"
            " GROUP BY kind", (campaign,)).fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def close(self) -> None:
        self._db.close()
