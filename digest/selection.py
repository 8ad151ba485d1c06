"""Choose a digest's articles: a pure function of the articles and the criteria."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

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


def select(articles: Iterable[Article], criteria: Criteria) -> list[Article]:
    """Matching articles, newest first, at most ``criteria.limit`` of them.

    Ties on the date are broken by title and path so the order never depends
    on the file system.
    """
    chosen = [a for a in articles if matches(a, criteria)]
    chosen.sort(key=lambda a: (-a.date.timestamp(), a.title, str(a.source)))
    return chosen[: criteria.limit]
