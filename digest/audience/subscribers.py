"""Read subscriber lists: ours, a Mailchimp audience export, or a listmonk export.

Every row becomes a ListRow: a Subscriber, or the problem (file:line, reason) that
kept it from being one, so one bad row never stops a send. A row can also say
that its person must not be mailed at all (``suppress``): an unsubscribed
status, a Mailchimp unsubscribed or cleaned export, a listmonk blocklist.

Files are streamed (see digest.audience.csvfile); only ``iter_subscribers`` keeps state,
one entry per distinct address, to drop duplicates across files.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from digest.audience.csvfile import BadRecord, records
from digest.audience.seen import SeenSet
from digest.errors import SubscriberError
from digest.model import Subscriber, address_key, clean_text, shown, slugify

FORMATS = ("digest", "mailchimp", "listmonk")
MAX_NAME = 100
MAX_LISTED_TAGS = 10
Suppress = Literal["unsubscribed", "bounced", "complained"]

# The column that holds the address, per format; the only one a format needs.
_EMAIL_COLUMN = {"digest": "email", "mailchimp": "email address", "listmonk": "email"}
_EXPECTED = (
    "expected email,name,tags,status (digest), "
    '"Email Address","First Name","Last Name",…,"TAGS" (Mailchimp export) '
    "or email,name,attributes (listmonk)"
)
_DIGEST_STATUS: dict[str, Suppress | None] = {
    "": None, "subscribed": None, "unsubscribed": "unsubscribed",
}
# listmonk mails "disabled" subscribers too; only the blocklist keeps it away.
_LISTMONK_STATUS = ("", "enabled", "disabled", "blocklisted")
_TRUE, _FALSE = ("true", "t", "yes", "1"), ("", "false", "f", "no", "0")
_TAG_SEPARATOR = re.compile(r"[;,]")


@dataclass(frozen=True, slots=True)
class ListRow:
    """One record of a list: a subscriber, or the problem that kept it from being one.

    ``suppress`` set means this person must not be mailed, from this list or any
    other. ``warnings`` are worth reporting but did not stop the row.
    """

    path: Path
    line: int
    format: str
    subscriber: Subscriber | None
    problem: SubscriberError | None = None
    suppress: Suppress | None = None
    warnings: tuple[SubscriberError, ...] = ()


def detect_format(header: Sequence[str]) -> str:
    """The format whose columns ``header`` has. Raises ValueError, saying which
    columns each format needs, when it is none of them."""
    columns = {name.strip().lower() for name in header}
    if "email address" in columns:
        return "mailchimp"
    if "email" in columns:
        # Our format and listmonk's both have email and name; attributes and
        # blocklisted are listmonk's alone.
        return "listmonk" if columns & {"attributes", "blocklisted"} else "digest"
    raise ValueError(f"no email column in {shown(','.join(header))}; {_EXPECTED}")


@dataclass(frozen=True, slots=True)
class _Layout:
    """What the header of one file says: its format and where each column is."""

    path: Path
    format: str
    index: Mapping[str, int]
    suppress: Suppress | None  # for every row: Mailchimp's unsubscribed and cleaned exports

    def cell(self, record: Sequence[str], column: str) -> str:
        at = self.index.get(column)
        return record[at].strip() if at is not None and at < len(record) else ""


@dataclass(frozen=True, slots=True)
class _Fields:
    """One record read by its format, before validation."""

    email: str
    name: str = ""
    tags: tuple[str, ...] = ()  # as written
    suppress: Suppress | None = None
    problems: tuple[str, ...] = ()


def _layout(path: Path, line: int, header: Sequence[str], forced: str | None) -> _Layout:
    names = [name.strip().lower() for name in header]
    if forced is None:
        try:
            forced = detect_format(header)
        except ValueError as exc:
            raise SubscriberError(
                path, f"unknown list format: {exc}; --list-format forces one", line=line
            ) from None
    elif _EMAIL_COLUMN[forced] not in names:
        raise SubscriberError(
            path, f"has no {_EMAIL_COLUMN[forced]!r} column, which a {forced} list needs; "
            f"the header is {shown(','.join(header))}", line=line,
        )
    index: dict[str, int] = {}
    for at, name in enumerate(names):
        index.setdefault(name, at)  # a repeated column: the first one counts
    suppress: Suppress | None = None
    if forced == "mailchimp":
        # Mailchimp exports its audience in three files; two of them list only
        # people who must not be mailed, told apart by one column.
        if "unsub_time" in index:
            suppress = "unsubscribed"
        elif "clean_time" in index:
            suppress = "bounced"
    return _Layout(path, forced, index, suppress)


def _digest(layout: _Layout, record: Sequence[str]) -> _Fields:
    status = layout.cell(record, "status")
    problems: tuple[str, ...] = ()
    if status.lower() not in _DIGEST_STATUS:
        problems = (f"bad status {shown(status)}; use subscribed, unsubscribed or leave it empty",)
    return _Fields(
        layout.cell(record, "email"),
        layout.cell(record, "name"),
        _split_tags(layout.cell(record, "tags")),
        _DIGEST_STATUS.get(status.lower()),
        problems,
    )


def _mailchimp(layout: _Layout, record: Sequence[str]) -> _Fields:
    name = f"{layout.cell(record, 'first name')} {layout.cell(record, 'last name')}"
    # Mailchimp quotes each tag inside the cell: "Climate","Local Government";
    # a hand-edited cell is often plain: Climate, Energy. csv reads both.
    cell = clean_text(layout.cell(record, "tags"))
    tags = next(csv.reader([cell], skipinitialspace=True), []) if cell else []
    return _Fields(layout.cell(record, "email address"), name, tuple(tags), layout.suppress)


def _listmonk(layout: _Layout, record: Sequence[str]) -> _Fields:
    status = layout.cell(record, "status")
    blocklisted = layout.cell(record, "blocklisted")
    tags, problem = _attribute_tags(layout.cell(record, "attributes"))
    problems = [problem] if problem else []
    if status.lower() not in _LISTMONK_STATUS:
        problems.append(f"bad status {shown(status)}; listmonk's are enabled, disabled "
                        "and blocklisted")
    if blocklisted.lower() not in _TRUE + _FALSE:
        problems.append(f"bad blocklisted {shown(blocklisted)}; use true or false")
    blocked = status.lower() == "blocklisted" or blocklisted.lower() in _TRUE
    return _Fields(
        layout.cell(record, "email"), layout.cell(record, "name"), tags,
        "unsubscribed" if blocked else None, tuple(problems),
    )


def _attribute_tags(text: str) -> tuple[tuple[str, ...], str | None]:
    """The ``tags`` in a listmonk attributes cell, or why they cannot be read."""
    if not text:
        return (), None
    try:
        attributes = json.loads(text)
    except json.JSONDecodeError as exc:
        return (), f"bad JSON in attributes: {exc.msg} at character {exc.pos + 1}"
    except RecursionError:
        return (), "bad JSON in attributes: nested too deeply"
    if not isinstance(attributes, dict):
        return (), 'attributes must be a JSON object, e.g. {"tags": ["climate"]}'
    tags = attributes.get("tags")
    if tags is None:
        return (), None
    if isinstance(tags, str):
        return _split_tags(tags), None
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        return tuple(tags), None
    return (), 'attributes "tags" must be a list of strings, e.g. {"tags": ["climate"]}'


_PARSERS: dict[str, Callable[[_Layout, Sequence[str]], _Fields]] = {
    "digest": _digest, "mailchimp": _mailchimp, "listmonk": _listmonk,
}


def _split_tags(text: str) -> tuple[str, ...]:
    # ";" is ours; "," as well, because articles accept both and people mix them.
    return tuple(_TAG_SEPARATOR.split(text)) if text.strip() else ()


def _slugs(tags: Sequence[str]) -> tuple[str, ...]:
    """Preference slugs, deduplicated, in order; a tag of only punctuation has none."""
    return tuple(dict.fromkeys(slug for slug in map(slugify, tags) if slug))


def _listing(known: frozenset[str]) -> str:
    listed = sorted(known)[:MAX_LISTED_TAGS]
    more = len(known) - len(listed)
    return (", ".join(listed) or "none") + (f" and {more} more" if more else "")


def _known_only(
    tags: tuple[str, ...], known: frozenset[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(preferences to keep, unknown ones)``. When every preference is unknown
    the originals stay: they match nothing, so the sender skips this person
    with a reason, rather than sending them everything."""
    unknown = tuple(tag for tag in tags if tag not in known)
    kept = tuple(tag for tag in tags if tag in known)
    return kept or tags, unknown


def _row(layout: _Layout, line: int, record: Sequence[str],
         known: frozenset[str] | None) -> ListRow:
    path = layout.path

    def error(reason: str) -> SubscriberError:
        return SubscriberError(path, reason, line=line)

    fields = _PARSERS[layout.format](layout, record)
    reason = None
    if not fields.email:
        reason = "missing email address"
    elif fields.problems and fields.suppress is None:
        reason = fields.problems[0]
    else:
        try:
            email = validate_email(fields.email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            reason = f"bad address {shown(fields.email)}: {exc}"
    if reason is not None:
        return ListRow(path, line, layout.format, None, error(reason))
    # A row that says "never mail this person" is honoured even when another of
    # its cells is bad: the bad cell becomes a warning instead.
    warnings = [error(problem) for problem in fields.problems]
    tags = _slugs(fields.tags)
    if known is not None and fields.suppress is None:
        tags, unknown = _known_only(tags, known)
        warnings += [
            error(f"unknown tag preference {shown(tag)}; known tags: {_listing(known)}")
            for tag in unknown
        ]
    name = clean_text(fields.name)[:MAX_NAME].rstrip()
    subscriber = Subscriber(email, name, tags)
    return ListRow(path, line, layout.format, subscriber, None, fields.suppress, tuple(warnings))


def read_rows(
    path: Path, *, list_format: str | None = None, known_tags: frozenset[str] | None = None
) -> Iterator[ListRow]:
    """Each record of ``path`` as a ListRow, streamed.

    ``list_format`` forces a format instead of detecting it from the header;
    ``known_tags`` (slugs) turns preferences for other tags into warnings.
    A problem with the whole file (cannot be read, not UTF-8, no header,
    unknown format) raises SubscriberError, at the first ``next()``.
    """
    if list_format is not None and list_format not in FORMATS:
        raise ValueError(f"unknown list format {list_format!r}; use one of {', '.join(FORMATS)}")
    with closing(records(path)) as rows:
        first = next(rows, None)
        if first is None:
            raise SubscriberError(
                path, "is empty; the first row must name the columns, e.g. email,name,tags,status"
            )
        line, header = first
        if isinstance(header, BadRecord):
            raise SubscriberError(path, f"the header row is {header.reason}", line=line)
        layout = _layout(path, line, header, list_format)
        for line, record in rows:
            if isinstance(record, BadRecord):
                problem = SubscriberError(path, record.reason, line=line)
                yield ListRow(path, line, layout.format, None, problem)
            else:
                yield _row(layout, line, record, known_tags)


def iter_subscribers(
    paths: Sequence[Path],
    *,
    list_format: str | None = None,
    known_tags: frozenset[str] | None = None,
) -> Iterator[ListRow]:
    """The rows of every file in ``paths``, in order, streamed.

    A subscriber whose address was already seen, in any file, comes back as a
    duplicate problem instead, unless the row suppresses them: a suppression
    is never dropped, and it may come *after* the same address was yielded as
    a subscriber, so collect every row before mailing anyone.

    Memory is flat: the addresses seen so far live in a temporary SQLite
    file, not in a dict, so a list of millions streams through. That file is
    created now, not at the first row, so a TMPDIR that cannot be written
    fails before a send has written anything.
    """
    return _deduplicated(SeenSet(), paths, list_format, known_tags)


def _deduplicated(seen: SeenSet, paths: Sequence[Path], list_format: str | None,
                  known_tags: frozenset[str] | None) -> Iterator[ListRow]:
    with seen:
        for path in paths:
            for row in read_rows(path, list_format=list_format, known_tags=known_tags):
                subscriber = row.subscriber
                if subscriber is None:
                    yield row
                    continue
                first = seen.first(subscriber.key, f"{path}:{row.line}")
                if first is None or row.suppress is not None:
                    yield row
                    continue
                reason = f"duplicate of {subscriber.email} (first seen at {first})"
                problem = SubscriberError(path, reason, line=row.line)
                yield ListRow(path, row.line, row.format, None, problem)


def read_subscribers(
    paths: Sequence[Path],
    *,
    list_format: str | None = None,
    known_tags: frozenset[str] | None = None,
) -> tuple[list[Subscriber], list[SubscriberError]]:
    """Every unique subscriber across ``paths`` who may be mailed, in order,
    and every problem and warning, in file order. Holds the whole list."""
    subscribers: list[Subscriber] = []
    problems: list[SubscriberError] = []
    suppressed: set[str] = set()
    for row in iter_subscribers(paths, list_format=list_format, known_tags=known_tags):
        if row.problem is not None:
            problems.append(row.problem)
        problems.extend(row.warnings)
        if row.subscriber is not None:
            if row.suppress is not None:
                suppressed.add(row.subscriber.key)
            else:
                subscribers.append(row.subscriber)
    return [s for s in subscribers if s.key not in suppressed], problems


def find_subscriber(paths: Sequence[Path], email: str, *,
                    list_format: str | None = None) -> Subscriber | None:
    """The subscriber with this address in ``paths`` (compared as address
    keys), or None when no row has it or a row suppresses it. Reads every
    row, since a suppression may come after the subscriber."""
    key = address_key(email)
    found: Subscriber | None = None
    for row in iter_subscribers(paths, list_format=list_format):
        if row.subscriber is None or row.subscriber.key != key:
            continue
        if row.suppress is not None:
            return None
        found = found or row.subscriber
    return found
