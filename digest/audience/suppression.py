"""The suppression list: addresses that must never be mailed, with a reason.

It lives in the state folder (``suppressions.sqlite3``) and applies to every
list before sending. Reasons: ``unsubscribed``, ``bounced`` (permanent 5xx
failures from our own sends), ``complained`` and ``manual``. Addresses are
compared by ``address_key``: the domain and an ASCII local part
case-insensitively, any other local part exactly.

Exports are CSV meant to be opened in spreadsheets, so a cell that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a CR is prefixed with ``'`` to stop
formula injection.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from digest.errors import ConfigError, DigestError, SubscriberError
from digest.files import NotAFile, open_regular
from digest.model import address_key, shown

REASONS = ("unsubscribed", "bounced", "complained", "manual")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    key        TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    reason: str
    source: str
    created_at: str


def checked_addresses(emails: Iterable[str]) -> list[str]:
    """The addresses, normalised; the first that is not one is a ConfigError."""
    from email_validator import EmailNotValidError, validate_email

    checked = []
    for email in emails:
        try:
            checked.append(validate_email(email.strip(), check_deliverability=False).normalized)
        except EmailNotValidError as exc:
            raise ConfigError(f"{shown(email)} is not an email address: {exc}") from exc
    return checked


def spreadsheet_safe(cell: str) -> str:
    """Defuse a cell a spreadsheet would run as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


class Suppressions:
    """The suppression list of one state folder."""

    def __init__(self, state: Path) -> None:
        self.path = state / "suppressions.sqlite3"
        try:
            state.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a crash, no fsync each
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            self._rekey()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise DigestError(f"{self.path}: cannot open the suppression list ({exc}); "
                              "check --state") from exc

    def _rekey(self) -> None:
        """Keys written before address_key casefolded every local part, which
        made straße and strasse one person; recompute them once (user_version 1)."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version >= 1:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # Only a key with a non-ASCII character can change.
            rows = self._db.execute(
                "SELECT key, email FROM suppressions WHERE email GLOB '*[^ -~]*'").fetchall()
            self._db.executemany("UPDATE suppressions SET key=? WHERE key=?",
                                 [(address_key(email), key) for key, email in rows
                                  if address_key(email) != key])
            self._db.execute("PRAGMA user_version=1")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _failed(self, exc: sqlite3.Error) -> DigestError:
        return DigestError(f"{self.path}: cannot update the suppression list ({exc}); "
                           "free space on its disk or fix the permissions of --state")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Suppressions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, entries: Iterable[tuple[str, str, str]]) -> int:
        """Add (email, reason, source) entries; an address already listed keeps its
        first reason. Returns how many were new."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO suppressions (key, email, reason, source, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    ((address_key(email), email, reason, source, now)
                     for email, reason, source in entries),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return self._db.total_changes - before

    def remove(self, emails: Iterable[str]) -> int:
        try:
            before = self._db.total_changes
            self._db.executemany("DELETE FROM suppressions WHERE key=?",
                                 ((address_key(e),) for e in emails))
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return self._db.total_changes - before

    def reason(self, email: str) -> str | None:
        try:
            row = self._db.execute("SELECT reason FROM suppressions WHERE key=?",
                                   (address_key(email),)).fetchone()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return str(row[0]) if row else None

    def __iter__(self) -> Iterator[Suppression]:
        cursor = self._db.execute(
            "SELECT email, reason, source, created_at FROM suppressions ORDER BY key")
        for values in cursor:
            yield Suppression(*values)

    def export_csv(self, out: TextIO) -> int:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["email", "reason", "source", "created_at"])
        count = 0
        for entry in self:
            writer.writerow([spreadsheet_safe(v) for v in
                             (entry.email, entry.reason, entry.source, entry.created_at)])
            count += 1
        return count


def read_import(path: Path, default_reason: str) -> Iterator[tuple[str, str, str]]:
    """(email, reason, source) from a CSV with an ``email`` column and an optional
    ``reason`` column (our own export reads back in)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        with open_regular(path) as file:
            text = file.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, NotAFile) as exc:
        raise SubscriberError(path, f"cannot be read as UTF-8 CSV: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "email" not in fields:
        raise SubscriberError(path, "has no 'email' column", line=1)
    reader.fieldnames = fields
    for row in reader:
        email = (row.get("email") or "").strip()
        if email.startswith("'") and email[1:].startswith(_FORMULA_STARTS):
            email = email[1:]  # our export's guard; an apostrophe of the address stays
        reason = (row.get("reason") or "").strip() or default_reason
        try:
            normal = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise SubscriberError(path, f"bad address {shown(email)}: {exc}",
                                  line=reader.line_num) from exc
        if reason not in REASONS:
            raise SubscriberError(path, f"unknown reason {shown(reason)}; use one of "
                                  f"{', '.join(REASONS)}", line=reader.line_num)
        yield normal, reason, f"import:{path.name}"
