"""Assemble a Digest: the selected articles with their summaries, and each
author's blurb once, inside the issue's frame (name, date, editor's note,
postal address). Pure: everything comes in as arguments."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from digest.content.summarize import lead_summary
from digest.model import Article

# A BCP 47 tag such as "en" or "pt-BR"; "English" in a front matter is not one.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One article as the digest shows it. ``bio`` is set on the first article
    by each author only, so every blurb appears once per digest."""

    article: Article
    summary: str
    bio: str | None

    @property
    def bio_names_author(self) -> bool:
        """Whether the blurb opens with the author's name ("Ada Obi is a ..."),
        so a template need not put the name in front of it again."""
        if not self.bio:
            return False
        bio, name = self.bio.casefold(), self.article.author.casefold()
        # The whole name: "Ann" does not name "Annabel Lee is ...".
        return bio.startswith(name) and not bio[len(name) : len(name) + 1].isalnum()


@dataclass(frozen=True, slots=True)
class Digest:
    """One issue. ``intro`` is the editor's note as Markdown; the items are
    in the editor's order, so a featured story comes first."""

    name: str
    as_of: datetime
    items: tuple[DigestItem, ...] = ()
    site_url: str | None = None
    intro: str | None = None
    postal_address: str | None = None
    view_url: str | None = None  # this page in the web archive

    @property
    def lead(self) -> DigestItem | None:
        return self.items[0] if self.items else None

    @property
    def featured(self) -> bool:
        """Whether the first story is the editor's lead, shown as such."""
        return bool(self.items) and self.items[0].article.featured

    @property
    def rest(self) -> tuple[DigestItem, ...]:
        return self.items[1:]

    @property
    def preheader(self) -> str:
        """The inbox preview line: the stories after the lead, which the
        subject does not name; the lead's summary when it stands alone."""
        if len(self.items) > 1:
            return " · ".join(item.article.title for item in self.items[1:])
        return self.items[0].summary if self.items else ""

    @property
    def language(self) -> str:
        """The articles' most common language tag, for ``<html lang>``."""
        # "en", "EN" and a layout header's "en_GB"-style tag differ in spelling
        # only: counted as one, shown as first written. A tie goes to the lead.
        found: Counter[str] = Counter()
        spelled: dict[str, str] = {}
        for item in self.items:
            tag = (item.article.language or "").replace("_", "-")
            if _LANGUAGE_TAG.fullmatch(tag):
                found[tag.casefold()] += 1
                spelled.setdefault(tag.casefold(), tag)
        return spelled[found.most_common(1)[0][0]] if found else "en"


def summary_for(article: Article, max_words: int) -> str:
    """The explicit summary when there is one, else an extractive lead."""
    return article.summary or lead_summary(article.paragraphs, max_words)


def compose(articles: Sequence[Article], frame: Digest, summary_words: int) -> Digest:
    """``frame`` is the issue without its stories: name, date, note, address."""
    seen: set[str] = set()
    items = []
    for article in articles:
        bio = None
        if article.author not in seen and article.author_bio:
            bio = article.author_bio
            seen.add(article.author)
        items.append(DigestItem(article, summary_for(article, summary_words), bio))
    return replace(frame, items=tuple(items))
