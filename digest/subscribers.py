"""Read subscriber lists: a CSV file with an ``email`` column and an optional
``name`` column. Bad rows are reported with file:line and skipped, so one bad
row never stops a send; duplicates (compared case-insensitively) are dropped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from digest.errors import SubscriberError
from digest.model import clean_text

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One recipient. ``name`` is display text only, already free of control characters."""

    email: str
    name: str = ""

    @property
    def key(self) -> str:
        return self.email.lower()


@dataclass(frozen=True, slots=True)
class Row:
    """A subscriber, or the problem that kept a row from being one."""

    subscriber: Subscriber | None
    problem: SubscriberError | None = None


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise SubscriberError(path, f"cannot be read: {exc.strerror}") from exc
    with handle:
        reader = csv.DictReader(handle)
        try:
            fields = [f.strip().lower() for f in reader.fieldnames or []]
            if "email" not in fields:
                raise SubscriberError(
                    path, "has no 'email' column; the first row must name the columns, "
                    "e.g. 'email,name'", line=1,
                )
            reader.fieldnames = fields
            for row in reader:
                yield reader.line_num, {k: (v or "") for k, v in row.items() if k}
        except UnicodeDecodeError as exc:
            raise SubscriberError(path, "is not UTF-8 text; save it as UTF-8 CSV") from exc
        except csv.Error as exc:
            raise SubscriberError(path, f"is not valid CSV: {exc}", line=reader.line_num) from exc


def read_rows(path: Path) -> Iterator[Row]:
    """Each row of ``path`` as a Subscriber or a problem, streamed."""
    for line, row in _rows(path):
        email = row.get("email", "").strip()
        if not email:
            yield Row(None, SubscriberError(path, "missing email address", line=line))
            continue
        try:
            checked = validate_email(email, check_deliverability=False)
        except EmailNotValidError as exc:
            yield Row(None, SubscriberError(path, f"bad address {email!r}: {exc}", line=line))
            continue
        name = clean_text(row.get("name", ""))[:MAX_NAME]
        yield Row(Subscriber(checked.normalized, name))


def iter_subscribers(paths: list[Path]) -> Iterator[Row]:
    """Rows across ``paths``, streamed, without repeating an address already seen."""
    seen: set[str] = set()
    for path in paths:
        for row in read_rows(path):
            if row.subscriber is not None:
                if row.subscriber.key in seen:
                    continue
                seen.add(row.subscriber.key)
            yield row


def read_subscribers(paths: list[Path]) -> tuple[list[Subscriber], list[SubscriberError]]:
    """Every unique subscriber across ``paths``, in order, and the rows that were skipped."""
    subscribers, problems = [], []
    for row in iter_subscribers(paths):
        if row.problem is not None:
            problems.append(row.problem)
        elif row.subscriber is not None:
            subscribers.append(row.subscriber)
    return subscribers, problems
