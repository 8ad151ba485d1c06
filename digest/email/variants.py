"""Digest variants: one rendered, inlined message template per distinct set
of articles.

A subscriber's tag preferences narrow the digest to the articles that match.
Rendering and CSS inlining cost milliseconds, so they happen once per
distinct set of articles, never per subscriber: the cost grows with the
number of variants, not the size of the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from digest.content.selection import IssueOptions
from digest.email.build import make_digest
from digest.email.links import Links
from digest.email.message import MessageTemplate
from digest.email.options import RenderOptions
from digest.email.render import RecipientTokens, make_environment, render_digest
from digest.model import Article


class Variants:
    """Message templates for the digest's articles, by tag preferences."""

    def __init__(self, render: RenderOptions, issue: IssueOptions, articles: Sequence[Article],
                 *, campaign: str, sent_at: datetime) -> None:
        """``render.signer`` signs the links; without one they are placeholders."""
        self.render = render
        self.issue = issue
        self.articles = tuple(articles)
        self.identity = render.identity
        self.campaign = campaign
        self.sent_at = sent_at
        self._env = make_environment(render.templates)
        self.links = Links(self.identity.site_url, self.identity.address, render.signer)
        self._recipient = RecipientTokens.linked(self.links.unsubscribe_base,
                                                 self.links.preferences_base)
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
            digest = make_digest(self.issue, self.render, [self.articles[i] for i in chosen],
                                 self.campaign)
            rendered = render_digest(self._env, digest, self._recipient, self.render.subject)
            if self.render.subject_prefix:  # before the headers are built and checked
                rendered = replace(rendered, subject=self.render.subject_prefix + rendered.subject)
            self._by_set[chosen] = MessageTemplate(
                rendered, identity=self.identity,
                campaign=self.campaign, sent_at=self.sent_at, links=self.links,
            )
        return self._by_set[chosen]
