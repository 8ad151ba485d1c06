"""The suppression list: addresses that must never be mailed, with a reason.

It is kept in the state's store and applies to every list before sending.
Reasons: ``unsubscribed``, ``bounced`` (permanent 5xx failures from our own
sends), ``complained`` and ``manual``. Addresses are compared by
``address_key``: the domain and an ASCII local part case-insensitively, any
other local part exactly.

Exports are CSV meant to be opened in spreadsheets, so a cell that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a CR is prefixed with ``'`` to stop
formula injection.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import NamedTuple, TextIO

from digest.errors import ConfigError, SubscriberError
from digest.files import NotAFile, open_regular
from digest.model import StateLocation, shown
from digest.state.records import Suppression
from digest.state.store import open_store

REASONS = ("unsubscribed", "bounced", "complained", "manual")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


class Counted(NamedTuple):
    new: int  # not on the list before
    given: int


def suppress_addresses(state: StateLocation, emails: Iterable[str], reason: str) -> Counted:
    """Suppress ``emails`` (checked first: a bad one suppresses nobody)."""
    checked = checked_addresses(emails)
    with closing(open_store(state)) as store:
        return Counted(store.suppressions.add((e, reason, "manual") for e in checked),
                       len(checked))


def unsuppress(state: StateLocation, emails: Iterable[str]) -> int:
    """Take ``emails`` off the list; return how many were on it."""
    with closing(open_store(state)) as store:
        return store.suppressions.remove(emails)


def list_suppressions(state: StateLocation) -> list[Suppression]:
    with closing(open_store(state)) as store:
        return list(store.suppressions)


def import_suppressions(state: StateLocation, path: Path, default_reason: str) -> Counted:
    """Suppress every address of a CSV file; all or nothing: a bad row stops the import."""
    entries = list(read_import(path, default_reason))
    with closing(open_store(state)) as store:
        return Counted(store.suppressions.add(entries), len(entries))


def export_suppressions(state: StateLocation, out: TextIO) -> int:
    """Write the list as CSV to ``out``; return how many addresses it has."""
    with closing(open_store(state)) as store:
        return write_csv(store.suppressions, out)


def write_csv(entries: Iterable[Suppression], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "reason", "source", "created_at"])
    count = 0
    for entry in entries:
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
