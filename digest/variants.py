"""Digest variants: one rendered, inlined message template per distinct set
of articles.

A subscriber's tag preferences narrow the digest to the articles that match.
Rendering and CSS inlining cost milliseconds, so they happen once per
distinct set of articles, never per subscriber: the cost grows with the
number of variants, not the size of the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digest.compose import compose
from digest.config import Settings
from digest.message import Identity, MessageTemplate
from digest.model import Article
from digest.render import make_environment, render_digest


class Variants:
    """Message templates for the digest's articles, by tag preferences."""

    def __init__(self, settings: Settings, articles: Sequence[Article], *,
                 identity: Identity, campaign: str, sent_at: datetime) -> None:
        self.settings = settings
        self.articles = tuple(articles)
        self.identity = identity
        self.campaign = campaign
        self.sent_at = sent_at
        self._env = make_environment(settings.templates)
        self._by_prefs: dict[tuple[str, ...], MessageTemplate | None] = {}
        self._by_set: dict[tuple[int, ...], MessageTemplate] = {}

    def __len__(self) -> int:
        return len(self._by_set)

    def chosen(self, prefs: Sequence[str]) -> tuple[int, ...]:
        """Indices of the articles a subscriber with these preference slugs gets."""
        if not prefs:
            return tuple(range(len(self.articles)))
        wanted = set(prefs)
        return tuple(i for i, a in enumerate(self.articles) if wanted & a.tag_slugs)

    def template(self, prefs: Sequence[str]) -> MessageTemplate | None:
        """The template for these preferences; None when no article matches."""
        key = tuple(prefs)
        if key not in self._by_prefs:
            chosen = self.chosen(key)
            self._by_prefs[key] = self._for_set(chosen) if chosen else None
        return self._by_prefs[key]

    def _for_set(self, chosen: tuple[int, ...]) -> MessageTemplate:
        if chosen not in self._by_set:
            s = self.settings
            digest = compose([self.articles[i] for i in chosen], name=s.name, as_of=s.as_of,
                             summary_words=s.summary_words, site_url=s.site_url)
            self._by_set[chosen] = MessageTemplate(
                render_digest(self._env, digest), identity=self.identity,
                campaign=self.campaign, sent_at=self.sent_at,
            )
        return self._by_set[chosen]
