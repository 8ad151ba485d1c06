"""The topics a reader can choose on the preferences page: the tags of the
articles folder, by display name, narrowed as the send's ``--tag`` and
``--exclude-tag`` narrow the digest (a topic the digest never carries would
only get a reader skipped)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from digest.content.folder import Source, Warn, load
from digest.errors import DigestError
from digest.model import Article, Tag, slugify

REFRESH_S = 60.0  # a new week's tags appear without a restart, at most a minute late


@dataclass(frozen=True, slots=True)
class Topic:
    """One checkbox on the preferences page."""

    slug: str
    name: str
    checked: bool


def tags_of(articles: Iterable[Article], only: Iterable[str] = (),
            exclude: Iterable[str] = ()) -> tuple[Tag, ...]:
    """Each tag once, by the name most articles give it, sorted by that name."""
    wanted = {slugify(t) for t in only}
    unwanted = {slugify(t) for t in exclude}
    names: dict[str, dict[str, int]] = {}
    for article in articles:
        for tag in article.tags:
            if tag.slug and (not wanted or tag.slug in wanted) and tag.slug not in unwanted:
                spellings = names.setdefault(tag.slug, {})
                spellings[tag.name] = spellings.get(tag.name, 0) + 1
    tags = [Tag(max(sorted(spellings), key=lambda n: spellings[n]), slug)
            for slug, spellings in names.items()]
    return tuple(sorted(tags, key=lambda t: (t.name.casefold(), t.slug)))


class Topics:
    """The folder's tags, read at start (warning about bad files then) and
    re-read at most every ``refresh`` seconds after; a folder that cannot be
    read later keeps the tags last read."""

    def __init__(self, source: Source, only: Iterable[str] = (), exclude: Iterable[str] = (),
                 *, warn: Warn, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._only, self._exclude = tuple(only), tuple(exclude)
        self._clock = clock
        self._lock = threading.Lock()
        self._tags = tags_of(load(source, warn).articles, self._only, self._exclude)
        self._read_at = clock()

    def tags(self) -> tuple[Tag, ...]:
        with self._lock:
            if self._clock() - self._read_at >= REFRESH_S:
                self._read_at = self._clock()
                try:
                    articles = load(Source(self._source.folder), lambda _: None).articles
                    self._tags = tags_of(articles, self._only, self._exclude)
                except DigestError:
                    pass
            return self._tags

    def choices(self, chosen: Iterable[str]) -> tuple[Topic, ...]:
        """Every topic, checked when ``chosen`` (slugs) has it or is empty
        (everything); a chosen tag no longer in the folder stays listed, so
        saving the page does not drop it unseen."""
        chosen = tuple(dict.fromkeys(slugify(c) for c in chosen))
        tags = self.tags()
        known = {t.slug for t in tags}
        extra = tuple(Tag(slug, slug) for slug in chosen if slug not in known)
        return tuple(Topic(t.slug, t.name, not chosen or t.slug in chosen)
                     for t in (*tags, *extra))
