"""Tests for digest.content.selection: which articles go into a digest, and in what order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from digest.content.selection import Criteria, campaign_id, matches, select

SINCE = datetime(2026, 11, 21, tzinfo=UTC)
AS_OF = datetime(2026, 11, 28, tzinfo=UTC)
INSIDE = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def window(**kwargs):
    """The week SINCE..AS_OF, with any other criteria."""
    return Criteria.build(as_of=AS_OF, since=SINCE, **kwargs)


def titles(articles):
    return [a.title for a in articles]


# --- the window: since <= date < as_of ----------------------------------------


def test_article_exactly_at_since_is_selected(make_article):
    article = make_article("At the start", date=SINCE)
    assert matches(article, window())
    assert select([article], window()) == [article]


def test_article_exactly_at_as_of_is_not_selected(make_article):
    article = make_article("At the end", date=AS_OF)
    assert not matches(article, window())
    assert select([article], window()) == []


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(microseconds=-1), False),
        (timedelta(0), True),
        (timedelta(microseconds=1), True),
    ],
)
def test_since_boundary_to_the_microsecond(make_article, offset, expected):
    assert matches(make_article(date=SINCE + offset), window()) is expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(microseconds=-1), True),
        (timedelta(0), False),
        (timedelta(microseconds=1), False),
    ],
)
def test_as_of_boundary_to_the_microsecond(make_article, offset, expected):
    assert matches(make_article(date=AS_OF + offset), window()) is expected


def test_consecutive_windows_never_share_an_article(make_article):
    """The half-open window means an article on the seam lands in exactly one week."""
    seam = make_article("On the seam", date=AS_OF)
    this_week = window()
    next_week = Criteria.build(as_of=AS_OF + timedelta(days=7), since=AS_OF)
    assert [matches(seam, this_week), matches(seam, next_week)] == [False, True]


@pytest.mark.parametrize(
    "date",
    [
        AS_OF + timedelta(seconds=1),
        AS_OF + timedelta(days=3),
        datetime(2027, 1, 1, tzinfo=UTC),
    ],
    ids=["a-second-late", "three-days-late", "next-year"],
)
def test_embargoed_future_article_is_never_selected(make_article, date):
    embargoed = make_article("Embargoed", date=date)
    current = make_article("Current", date=INSIDE)
    assert select([embargoed, current], window()) == [current]


def test_article_before_the_window_is_not_selected(make_article):
    old = make_article("Old news", date=SINCE - timedelta(days=1))
    assert select([old], window()) == []


# --- time zones: comparisons are on the instant, not the wall clock ----------


def test_negative_offset_evening_is_next_morning_utc_and_inside(make_article):
    # 23:30 on the 20th in UTC-5 is 04:30 on the 21st in UTC: after SINCE.
    eastern = timezone(timedelta(hours=-5))
    article = make_article(date=datetime(2026, 11, 20, 23, 30, tzinfo=eastern))
    assert article.date == datetime(2026, 11, 21, 4, 30, tzinfo=UTC)
    assert matches(article, window())


def test_positive_offset_just_after_midnight_is_previous_day_utc_and_outside(make_article):
    # 00:30 on the 21st in UTC+1 is 23:30 on the 20th in UTC: before SINCE.
    paris = timezone(timedelta(hours=1))
    article = make_article(date=datetime(2026, 11, 21, 0, 30, tzinfo=paris))
    assert article.date == datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert not matches(article, window())


def test_as_of_in_another_zone_is_the_same_instant(make_article):
    # AS_OF expressed in UTC+2 is 02:00 local; an article at 01:59 local is before it.
    plus_two = timezone(timedelta(hours=2))
    criteria = Criteria.build(as_of=AS_OF.astimezone(plus_two), since=SINCE)
    before = make_article("Before", date=datetime(2026, 11, 28, 1, 59, tzinfo=plus_two))
    at = make_article("At", date=datetime(2026, 11, 28, 2, 0, tzinfo=plus_two))
    assert select([before, at], criteria) == [before]


def test_newest_first_compares_instants_across_zones(make_article):
    # 10:00 in UTC+9 is 01:00 UTC; 03:00 in UTC-0 is later, though "smaller" on the clock.
    tokyo = timezone(timedelta(hours=9))
    early = make_article("Tokyo morning", date=datetime(2026, 11, 24, 10, 0, tzinfo=tokyo))
    later = make_article("London night", date=datetime(2026, 11, 24, 3, 0, tzinfo=UTC))
    assert titles(select([early, later], window())) == ["London night", "Tokyo morning"]


# --- tags ----------------------------------------------------------------------


def test_tag_filter_is_any_match(make_article):
    climate = make_article("Climate", date=INSIDE, tags=["Climate"])
    energy = make_article("Energy", date=INSIDE, tags=["Energy", "Sea"])
    sport = make_article("Sport", date=INSIDE, tags=["Sport"])
    untagged = make_article("Untagged", date=INSIDE)
    chosen = select([climate, energy, sport, untagged], window(tags=["climate", "energy"]))
    assert sorted(titles(chosen)) == ["Climate", "Energy"]


@pytest.mark.parametrize(
    ("wanted", "article_tag"),
    [
        ("climate", "Climate"),
        ("CLIMATE", "climate"),
        ("local government", "Local-Government"),
        ("Local_Government", "local government"),
        ("energie", "Énergie"),
    ],
)
def test_tag_match_ignores_case_and_separators(make_article, wanted, article_tag):
    article = make_article(date=INSIDE, tags=[article_tag])
    assert matches(article, window(tags=[wanted]))


def test_tag_that_only_shares_a_prefix_does_not_match(make_article):
    article = make_article(date=INSIDE, tags=["Climate change"])
    assert not matches(article, window(tags=["climate"]))


def test_exclude_tags_drop_matching_articles(make_article):
    keep = make_article("Keep", date=INSIDE, tags=["Climate"])
    drop = make_article("Drop", date=INSIDE, tags=["Sponsored"])
    assert select([keep, drop], window(exclude_tags=["sponsored"])) == [keep]


def test_exclude_tags_win_over_tags(make_article):
    both = make_article("Both", date=INSIDE, tags=["Climate", "Sponsored"])
    only = make_article("Only climate", date=INSIDE, tags=["climate"])
    criteria = window(tags=["Climate"], exclude_tags=["SPONSORED"])
    assert select([both, only], criteria) == [only]


def test_same_tag_included_and_excluded_selects_nothing(make_article):
    article = make_article(date=INSIDE, tags=["Climate"])
    assert not matches(article, window(tags=["climate"], exclude_tags=["Climate"]))


@pytest.mark.parametrize("blank", ["", "   ", "--", "!!"])
def test_tags_that_slugify_to_nothing_are_ignored(make_article, blank):
    untagged = make_article("Untagged", date=INSIDE)
    tagged = make_article("Tagged", date=INSIDE, tags=["Climate"])
    # An empty --tag is no filter at all, not a filter that matches nothing.
    assert len(select([untagged, tagged], window(tags=[blank]))) == 2
    # An empty --exclude-tag excludes nothing.
    assert len(select([untagged, tagged], window(exclude_tags=[blank]))) == 2
    # Mixed with a real tag, only the real one counts.
    assert select([untagged, tagged], window(tags=[blank, "climate"])) == [tagged]


def test_criteria_hold_slugs():
    criteria = window(tags=["Local Government", " "], exclude_tags=["Sponsored Content", ""])
    assert criteria.tags == {"local-government"}
    assert criteria.exclude_tags == {"sponsored-content"}


# --- limit and order -------------------------------------------------------------


def test_limit_keeps_the_newest(make_article):
    articles = [
        make_article(f"Day {day}", date=datetime(2026, 11, day, 8, 0, tzinfo=UTC))
        for day in (21, 25, 23, 27, 22)
    ]
    assert titles(select(articles, window(limit=3))) == ["Day 27", "Day 25", "Day 23"]


def test_limit_larger_than_matches_returns_all(make_article):
    articles = [make_article(f"A{i}", date=INSIDE - timedelta(hours=i)) for i in range(3)]
    assert len(select(articles, window(limit=50))) == 3


def test_limit_applies_after_filtering(make_article):
    """Out-of-window and excluded articles do not use up the limit."""
    articles = [
        make_article("Future", date=AS_OF + timedelta(hours=1)),
        make_article("Sponsored", date=AS_OF - timedelta(hours=1), tags=["Sponsored"]),
        make_article("Older", date=SINCE + timedelta(hours=1)),
        make_article("Newer", date=SINCE + timedelta(hours=2)),
    ]
    chosen = select(articles, window(limit=2, exclude_tags=["sponsored"]))
    assert titles(chosen) == ["Newer", "Older"]


def test_newest_first(make_article):
    dates = [SINCE + timedelta(hours=h) for h in (5, 100, 1, 50)]
    articles = [make_article(f"At {d:%d %H}", date=d) for d in dates]
    chosen = select(articles, window())
    assert [a.date for a in chosen] == sorted(dates, reverse=True)


def test_ties_on_date_break_by_title_then_path(make_article):
    same = INSIDE
    b2 = make_article("Beta", date=same, source="z/beta.md")
    a = make_article("Alpha", date=same, source="q/alpha.md")
    b1 = make_article("Beta", date=same, source="a/beta.md")
    newer = make_article("Zulu", date=same + timedelta(minutes=1))
    expected = [newer, a, b1, b2]
    assert select([b2, a, b1, newer], window()) == expected
    # The order does not depend on the input order.
    assert select([b1, newer, b2, a], window()) == expected
    assert select(list(reversed(expected)), window()) == expected


def test_tie_on_the_same_instant_in_different_zones_breaks_by_title(make_article):
    plus_one = timezone(timedelta(hours=1))
    later_title = make_article("Bravo", date=INSIDE)
    earlier_title = make_article("Alpha", date=INSIDE.astimezone(plus_one))
    assert select([later_title, earlier_title], window()) == [earlier_title, later_title]


def test_select_does_not_change_its_input(make_article):
    articles = [make_article(f"T{i}", date=INSIDE + timedelta(hours=i)) for i in range(3)]
    before = list(articles)
    select(articles, window(limit=1))
    assert articles == before


def test_select_accepts_any_iterable(make_article):
    articles = [make_article(f"T{i}", date=INSIDE + timedelta(hours=i)) for i in range(3)]
    assert select(iter(articles), window()) == list(reversed(articles))


def test_the_same_lists_and_tags_in_another_order_are_one_campaign() -> None:
    as_of = datetime(2026, 11, 28, tzinfo=UTC)
    one = campaign_id(as_of, [Path("lists/b.csv"), Path("a.csv")], ["Rust", "climate"])
    other = campaign_id(as_of, [Path("a.csv"), Path("elsewhere/b.csv")], ["climate", "rust"])
    assert one == other == "2026-W48-a+b-climate+rust"
