"""What the archive shows: each published issue with the articles it pinned,
as they read now, and the pages of the articles that have no link of their own.

A pinned article that is gone, no longer parses or has a new date is left out
of its issue's page with a warning: the rest of the issue is still what was
sent. An issue none of whose articles is left is skipped, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from digest.content.articles import LoadResult
from digest.content.compose import Digest
from digest.content.folder import Source
from digest.content.urls import article_page, issue_page, with_archive_links, with_urls
from digest.delivery.history import PublishedIssue
from digest.email.build import make_digest
from digest.email.options import RenderOptions
from digest.email.render import render_subject
from digest.model import Article

Warn = Callable[[str], None]
# Issue pages live in issues/, article pages in articles/: one folder up, then down.
FROM_ISSUE = ".."


@dataclass(frozen=True, slots=True)
class ArchivedIssue:
    """One issue as its page shows it. The stories without a link of their
    own link to their article pages, relative to the issue's page."""

    campaign: str
    page: str  # issues/<campaign>.html
    digest: Digest
    title: str  # the subject the email had
    updated: datetime  # the issue's as-of: the data's time, never the clock


@dataclass(frozen=True, slots=True)
class ArticlePage:
    """An article without a link of its own, and the issues that carried it."""

    page: str  # articles/<slug>.html
    article: Article
    issues: tuple[ArchivedIssue, ...]  # newest first


@dataclass(frozen=True, slots=True)
class Collected:
    issues: tuple[ArchivedIssue, ...]  # newest first
    articles: tuple[ArticlePage, ...]  # by page path


def collect(published: Sequence[PublishedIssue], loaded: LoadResult, source: Source,
            render: RenderOptions, env: jinja2.Environment, warn: Warn) -> Collected:
    """The issues to publish and the article pages they need."""
    by_path = {_relative(source.folder, a): a for a in loaded.articles}
    issues: list[ArchivedIssue] = []
    pages: dict[str, tuple[Article, list[ArchivedIssue]]] = {}
    taken: set[str] = set()
    for issue in published:
        articles = _pinned(issue, by_path, source.folder, warn)
        page = issue_page(issue.campaign)
        if not articles or page in taken:
            why = "none of its articles is left" if not articles else f"{page} is taken"
            warn(f"issue {issue.campaign} is not in the archive: {why}")
            continue
        taken.add(page)
        own = with_urls(articles, source.url_template)
        linked = with_archive_links(own, source.folder, FROM_ISSUE)
        digest = make_digest(issue.definition.options(), render, linked)
        archived = ArchivedIssue(issue.campaign, page, digest,
                                 render_subject(env, digest, render.subject),
                                 issue.definition.as_of)
        issues.append(archived)
        for article in own:
            if article.url is None:
                _add_page(pages, article, archived, source.folder, warn)
    return Collected(tuple(issues), tuple(ArticlePage(page, pages[page][0], tuple(pages[page][1]))
                                          for page in sorted(pages)))


def _pinned(issue: PublishedIssue, by_path: dict[str, Article], root: Path,
            warn: Warn) -> list[Article]:
    """The issue's articles as they read now; the gone or redated left out."""
    found = []
    for path, date in issue.definition.articles:
        article = by_path.get(path)
        if article is not None and article.date.isoformat() == date:
            found.append(article)
            continue
        problem = "is gone or no longer parses" if article is None else "has a new date"
        warn(f"issue {issue.campaign} pinned {root / path}, which {problem}; its page "
             "leaves the story out until the file is restored")
    return found


def _add_page(pages: dict[str, tuple[Article, list[ArchivedIssue]]], article: Article,
              issue: ArchivedIssue, root: Path, warn: Warn) -> None:
    page = article_page(article, root)
    known = pages.setdefault(page, (article, []))
    if known[0].source == article.source:
        known[1].append(issue)
    else:
        warn(f"{article.source} and {known[0].source} share the archive page {page}; "
             f"only the first is written: rename one of them")


def _relative(root: Path, article: Article) -> str:
    """The article's path in the folder, as a campaign pins it."""
    try:
        return article.source.relative_to(root).as_posix()
    except ValueError:
        return article.source.as_posix()
