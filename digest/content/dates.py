"""Dates and times: ISO 8601 values, durations, and news-page timestamps.

Every datetime that leaves this module is timezone-aware. A bare date means
00:00 UTC. Time-zone abbreviations are looked up in a fixed table: an unknown
abbreviation is an error, never a guess, because a wrong offset silently moves
an article in or out of a week's digest.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

# Abbreviations are ambiguous in general (IST, CST); these are the readings a
# news page in English means. Anything else must be spelled as an offset.
TZ_OFFSETS: dict[str, float] = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "BST": 1, "WEST": 1, "IST": 5.5,
    "CET": 1, "CEST": 2, "WAT": 1, "CAT": 2, "EET": 2, "EEST": 3, "SAST": 2,
    "EAT": 3, "MSK": 3, "GST": 4, "PKT": 5, "NPT": 5.75, "BDT": 6, "ICT": 7,
    "WIB": 7, "HKT": 8, "SGT": 8, "AWST": 8, "PHT": 8, "CST": -6, "JST": 9,
    "KST": 9, "ACST": 9.5, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
    "EST": -5, "EDT": -4, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3, "NST": -3.5,
    "NDT": -2.5, "BRT": -3, "ART": -3,
}

_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_DURATION_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_PUBLISHED = re.compile(
    r"^(?P<month>[A-Za-z]+)\.?\s+(?P<day>\d{1,2}),\s*(?P<year>\d{4})\s+at\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*(?P<ampm>[ap])\.?\s*m\.?\s+(?P<tz>[A-Za-z]{1,5})$",
    re.IGNORECASE,
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")],
        start=1,
    )
    for name in names
}


def tz_from_abbreviation(abbr: str) -> timezone:
    """The fixed offset for a time-zone abbreviation such as ``EST``."""
    hours = TZ_OFFSETS.get(abbr.upper())
    if hours is None:
        raise ValueError(
            f"unknown time-zone abbreviation {abbr!r}; use one of "
            f"{', '.join(sorted(TZ_OFFSETS))}"
        )
    return timezone(timedelta(hours=hours))


def parse_datetime(value: object) -> datetime:
    """An aware datetime from an ISO 8601 string, a ``date`` or a ``datetime``.

    A bare date is 00:00 UTC. A datetime without an offset is refused: the
    same text means different instants on different machines.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return parse_datetime(date.fromisoformat(text))
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 date or datetime "
                "(e.g. 2026-11-24 or 2026-11-24T09:15:00+01:00)"
            ) from None
    else:
        raise ValueError(f"expected a date, got {type(value).__name__} {value!r}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{str(value)!r} has no time-zone offset; add one, e.g. {parsed.isoformat()}+00:00"
        )
    return parsed


def parse_published(text: str) -> datetime:
    """Parse a news-page stamp such as ``December 31, 2023 at 11:27 am EST``."""
    match = _PUBLISHED.match(text.strip())
    if not match:
        raise ValueError(
            f"cannot read the date {text.strip()!r}; expected e.g. "
            "'December 31, 2023 at 11:27 am EST'"
        )
    month = _MONTHS.get(match["month"].lower())
    if month is None:
        raise ValueError(f"unknown month {match['month']!r} in {text.strip()!r}")
    hour, minute = int(match["hour"]), int(match["minute"])
    if not 1 <= hour <= 12:
        raise ValueError(f"hour {hour} is not a 12-hour clock hour in {text.strip()!r}")
    hour = hour % 12 + (12 if match["ampm"].lower() == "p" else 0)
    tz = tz_from_abbreviation(match["tz"])
    try:
        return datetime(int(match["year"]), month, int(match["day"]), hour, minute, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"{exc} in {text.strip()!r}") from exc


def parse_duration(text: str) -> timedelta | None:
    """``7d``, ``2w`` or ``36h`` as a timedelta; None if ``text`` is not a duration."""
    match = _DURATION.match(text)
    if not match:
        return None
    try:
        return timedelta(**{_DURATION_UNITS[match[2].lower()]: int(match[1])})
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def parse_since(text: str, as_of: datetime) -> datetime:
    """The start of the window: a duration back from ``as_of``, or an ISO date/datetime."""
    duration = parse_duration(text)
    if duration is not None:
        try:
            return as_of - duration
        except OverflowError:
            raise ValueError(f"{text!r} before {as_of.date()} is before the year 1") from None
    try:
        return parse_datetime(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (7d, 2w, 36h) nor an ISO date (2026-11-21)"
        ) from None
