"""Assemble a Digest: the selected articles with their summaries, and each
author's blurb once. Pure: everything comes in as arguments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.content.summarize import lead_summary
from digest.model import Article


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One article as the digest shows it. ``bio`` is set on the first article
    by each author only, so every blurb appears once per digest."""

    article: Article
    summary: str
    bio: str | None


@dataclass(frozen=True, slots=True)
class Digest:
    name: str
    as_of: datetime
    items: tuple[DigestItem, ...]
    site_url: str | None = None

    @property
    def lead(self) -> DigestItem | None:
        return self.items[0] if self.items else None


def summary_for(article: Article, max_words: int) -> str:
    """The explicit summary when there is one, else an extractive lead."""
    return article.summary or lead_summary(article.paragraphs, max_words)


def compose(
    articles: Sequence[Article],
    *,
    name: str,
    as_of: datetime,
    summary_words: int,
    site_url: str | None = None,
) -> Digest:
    seen: set[str] = set()
    items = []
    for article in articles:
        bio = None
        if article.author not in seen and article.author_bio:
            bio = article.author_bio
            seen.add(article.author)
        items.append(DigestItem(article, summary_for(article, summary_words), bio))
    return Digest(name=name, as_of=as_of, items=tuple(items), site_url=site_url)
