"""Tests for digest.content.dates: news-page stamps, ISO values, durations and windows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from digest.content.dates import parse_datetime, parse_duration, parse_published, parse_since
from tests.helpers import tz

# --- parse_published ----------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "hour", "minute"),
    [
        ("March 3, 2026 at 12:05 am UTC", 0, 5),
        ("March 3, 2026 at 12:30 pm UTC", 12, 30),
        ("March 3, 2026 at 12:00 am UTC", 0, 0),
        ("March 3, 2026 at 1:00 am UTC", 1, 0),
        ("March 3, 2026 at 11:59 am UTC", 11, 59),
        ("March 3, 2026 at 1:15 pm UTC", 13, 15),
        ("March 3, 2026 at 11:59 pm UTC", 23, 59),
        ("March 3, 2026 at 4:45 p.m. UTC", 16, 45),
        ("March 3, 2026 at 4:45 PM UTC", 16, 45),
    ],
)
def test_published_twelve_hour_clock(stamp: str, hour: int, minute: int) -> None:
    assert parse_published(stamp) == datetime(2026, 3, 3, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("abbr", "offset"),
    [
        ("EST", tz(-5)),
        ("EDT", tz(-4)),
        ("CET", tz(1)),
        ("WAT", tz(1)),
        ("EAT", tz(3)),
        ("PST", tz(-8)),
        ("GMT", tz(0)),
        ("UTC", tz(0)),
        ("est", tz(-5)),
    ],
)
def test_published_zone_offsets(abbr: str, offset: timezone) -> None:
    parsed = parse_published(f"July 14, 2025 at 9:30 am {abbr}")
    assert parsed.utcoffset() == offset.utcoffset(None)
    assert parsed == datetime(2025, 7, 14, 9, 30, tzinfo=offset)


def test_published_same_wall_clock_in_two_zones_are_different_instants() -> None:
    est = parse_published("December 31, 2023 at 11:27 am EST")
    cet = parse_published("December 31, 2023 at 11:27 am CET")
    assert est - cet == timedelta(hours=6)


@pytest.mark.parametrize(
    "stamp",
    [
        "Dec. 31, 2023 at 11:27 am EST",
        "Dec 31, 2023 at 11:27 am EST",
        "  December 31, 2023 at 11:27 am EST  ",
    ],
)
def test_published_abbreviated_month_and_padding(stamp: str) -> None:
    assert parse_published(stamp) == datetime(2023, 12, 31, 11, 27, tzinfo=tz(-5))


def test_published_unknown_zone_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError) as caught:
        parse_published("April 2, 2026 at 3:20 pm IDT")
    message = str(caught.value)
    assert message.startswith("unknown time-zone abbreviation 'IDT'; use one of ")
    # The message lists the known abbreviations so the user can pick one.
    known = message.removeprefix("unknown time-zone abbreviation 'IDT'; use one of ").split(", ")
    assert {"EST", "CET", "EAT", "UTC"} <= set(known)
    assert "IDT" not in known


def test_published_bad_month() -> None:
    with pytest.raises(ValueError) as caught:
        parse_published("Smarch 3, 2026 at 1:00 pm EST")
    assert str(caught.value) == "unknown month 'Smarch' in 'Smarch 3, 2026 at 1:00 pm EST'"


@pytest.mark.parametrize("hour", [13, 0])
def test_published_hour_outside_twelve_hour_clock(hour: int) -> None:
    stamp = f"March 3, 2026 at {hour}:10 pm EST"
    with pytest.raises(ValueError) as caught:
        parse_published(stamp)
    assert str(caught.value) == f"hour {hour} is not a 12-hour clock hour in {stamp!r}"


def test_published_impossible_day() -> None:
    with pytest.raises(ValueError) as caught:
        parse_published("February 30, 2026 at 1:00 pm EST")
    assert str(caught.value) == (
        "day is out of range for month in 'February 30, 2026 at 1:00 pm EST'"
    )


def test_published_unreadable_stamp() -> None:
    with pytest.raises(ValueError) as caught:
        parse_published("yesterday afternoon")
    assert str(caught.value) == (
        "cannot read the date 'yesterday afternoon'; expected e.g. "
        "'December 31, 2023 at 11:27 am EST'"
    )


# --- parse_datetime -----------------------------------------------------------


def test_datetime_bare_date_is_midnight_utc() -> None:
    parsed = parse_datetime("2026-11-24")
    assert parsed == datetime(2026, 11, 24, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2026-11-24T09:15:00+01:00", tz(1)),
        ("2026-11-24T09:15:00-05:00", tz(-5)),
        ("2026-11-24T09:15:00+05:30", tz(5.5)),
        ("2026-11-24T09:15:00Z", tz(0)),
        ("2026-11-24T09:15:00z", tz(0)),
    ],
)
def test_datetime_offset_kept(text: str, offset: timezone) -> None:
    parsed = parse_datetime(text)
    assert parsed == datetime(2026, 11, 24, 9, 15, tzinfo=offset)
    # Kept, not converted: the wall-clock hour is still 9.
    assert parsed.hour == 9
    assert parsed.utcoffset() == offset.utcoffset(None)


def test_datetime_naive_string_refused_with_suggestion() -> None:
    with pytest.raises(ValueError) as caught:
        parse_datetime("2026-11-24T09:15")
    assert str(caught.value) == (
        "'2026-11-24T09:15' has no time-zone offset; add one, e.g. 2026-11-24T09:15:00+00:00"
    )


def test_datetime_naive_object_refused_with_suggestion() -> None:
    with pytest.raises(ValueError) as caught:
        parse_datetime(datetime(2026, 11, 24, 9, 15))
    assert str(caught.value) == (
        "'2026-11-24 09:15:00' has no time-zone offset; add one, e.g. 2026-11-24T09:15:00+00:00"
    )


def test_datetime_yaml_native_date() -> None:
    assert parse_datetime(date(2026, 11, 22)) == datetime(2026, 11, 22, tzinfo=UTC)


def test_datetime_yaml_native_aware_datetime() -> None:
    value = datetime(2026, 11, 27, 18, 45, tzinfo=tz(-3))
    parsed = parse_datetime(value)
    assert parsed == value
    assert parsed.utcoffset() == timedelta(hours=-3)


def test_datetime_garbage_string() -> None:
    with pytest.raises(ValueError) as caught:
        parse_datetime("next Tuesday")
    assert str(caught.value) == (
        "'next Tuesday' is not an ISO 8601 date or datetime "
        "(e.g. 2026-11-24 or 2026-11-24T09:15:00+01:00)"
    )


def test_datetime_wrong_type() -> None:
    with pytest.raises(ValueError, match=re.escape("expected a date, got int 20261124")):
        parse_datetime(20261124)


# --- parse_duration / parse_since ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("36h", timedelta(hours=36)),
        (" 2W ", timedelta(days=14)),
        ("none", None),
        ("7", None),
        ("d7", None),
        ("2026-11-21", None),
    ],
)
def test_duration(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


AS_OF = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def test_since_duration_counts_back_from_as_of() -> None:
    assert parse_since("7d", AS_OF) == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    assert parse_since("36h", AS_OF) == datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


def test_since_iso_date_ignores_as_of() -> None:
    assert parse_since("2026-11-21", AS_OF) == datetime(2026, 11, 21, tzinfo=UTC)


def test_since_iso_datetime_keeps_offset() -> None:
    assert parse_since("2026-11-21T06:00:00-05:00", AS_OF) == datetime(
        2026, 11, 21, 11, 0, tzinfo=UTC
    )


def test_since_neither() -> None:
    with pytest.raises(ValueError) as caught:
        parse_since("last week", AS_OF)
    assert str(caught.value) == (
        "'last week' is neither a duration (7d, 2w, 36h) nor an ISO date (2026-11-21)"
    )
