"""Choose a digest's articles: a pure function of the articles and the criteria,
and the names an issue goes by."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.content.dates import parse_since
from digest.errors import ConfigError
from digest.model import Article, slugify


@dataclass(frozen=True, slots=True)
class Criteria:
    """What goes into a digest. Tag criteria hold slugs, so "Climate" and
    "climate" are the same tag."""

    as_of: datetime
    since: datetime
    tags: frozenset[str] = frozenset()
    exclude_tags: frozenset[str] = frozenset()
    limit: int = 10

    @classmethod
    def build(
        cls,
        *,
        as_of: datetime,
        since: datetime,
        tags: Iterable[str] = (),
        exclude_tags: Iterable[str] = (),
        limit: int = 10,
    ) -> Criteria:
        return cls(
            as_of=as_of,
            since=since,
            tags=frozenset(s for s in map(slugify, tags) if s),
            exclude_tags=frozenset(s for s in map(slugify, exclude_tags) if s),
            limit=limit,
        )


def matches(article: Article, criteria: Criteria) -> bool:
    """The window is half-open, ``since <= date < as_of``, so consecutive weekly
    runs never share an article; anything after ``as_of`` is embargoed."""
    if not criteria.since <= article.date < criteria.as_of:
        return False
    slugs = article.tag_slugs
    if criteria.tags and not criteria.tags & slugs:
        return False
    return not criteria.exclude_tags & slugs


def editorial_order(article: Article) -> tuple[object, ...]:
    """Featured stories first, then weighted ones (lighter first), then the
    rest newest first. Ties go by title and path, so the order never depends
    on the file system."""
    weighted = article.weight is not None
    return (not article.featured, not weighted, article.weight or 0,
            -article.date.timestamp(), article.title, str(article.source))


def select(articles: Iterable[Article], criteria: Criteria) -> list[Article]:
    """Matching articles in the editor's order, at most ``criteria.limit`` of
    them: a featured story is never the one the limit drops."""
    chosen = [a for a in articles if matches(a, criteria)]
    chosen.sort(key=editorial_order)
    return chosen[: criteria.limit]


@dataclass(frozen=True, slots=True)
class IssueOptions:
    """Everything that decides an issue's content, as the user wrote it: the
    window (``since`` is a duration back from ``as_of`` or a date), the tags,
    the limit, the summaries' word budget, and the editor's note (Markdown)."""

    as_of: datetime
    since: str = "7d"
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    limit: int = 10
    summary_words: int = 60
    intro: str | None = None

    def criteria(self) -> Criteria:
        try:
            since = parse_since(self.since, self.as_of)
        except ValueError as exc:
            raise ConfigError(str(exc), source="--since") from exc
        return Criteria.build(as_of=self.as_of, since=since, tags=self.tags,
                              exclude_tags=self.exclude_tags, limit=self.limit)


def series_of(lists: Sequence[Path], tags: Sequence[str]) -> str:
    """The lists and tags that make one newsletter, e.g. ``subscribers-climate``. Both
    in sorted order: the same lists named in another order, on another host, are the
    same newsletter, not a second issue to everyone on them."""
    names = "+".join(sorted(slugify(p.stem) for p in lists)) or "sample"
    selection = "+".join(sorted({slugify(t) for t in tags})) or "all"
    return f"{names}-{selection}"


def campaign_id(as_of: datetime, lists: Sequence[Path], tags: Sequence[str]) -> str:
    """E.g. ``2026-W48-subscribers-climate``: the ISO week of as-of, and the series."""
    year, week, _ = as_of.isocalendar()
    return f"{year}-W{week:02d}-{series_of(lists, tags)}"
