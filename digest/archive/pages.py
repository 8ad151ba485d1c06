"""The archive's HTML pages, rendered through the email's Jinja environment
(the user's ``--templates`` first, autoescaped, StrictUndefined).

- An issue page is ``digest.html.j2`` itself with ``web`` set: the greeting and
  the reader's footer give way to a subscribe note and the feed, and no
  ``recipient`` is passed at all, so no template can put a reader on a page.
  Its CSS is inlined as the email's is, so it looks the same.
- Article and index pages are ``archive/*.html.j2``.

Every link between pages is relative, so the folder can be served under any
path, or opened from disk; only ``<link rel="canonical">`` is absolute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import jinja2

from digest.archive.collect import ArchivedIssue, ArticlePage
from digest.content.compose import Digest, DigestItem
from digest.content.urls import archive_link
from digest.email.render import TEMPLATES, inline_css, render_template
from digest.model import Article

PER_PAGE = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a frame's date, never shown


@dataclass(frozen=True, slots=True)
class Site:
    """The archive as a whole: the newsletter's name, where the archive is
    published (absolute, no trailing slash) and where readers subscribe."""

    name: str
    base: str
    subscribe_url: str | None = None

    def url(self, page: str) -> str:
        return archive_link(self.base, page)


def root_of(page: str) -> str:
    """From ``page`` back to the archive's root: ``""`` or ``"../"``."""
    return "../" * page.count("/")


def index_path(number: int) -> str:
    return "index.html" if number == 1 else f"page/{number}.html"


def language(articles: Sequence[Article]) -> str:
    """The articles' most common language tag, as an issue's ``<html lang>`` has it."""
    frame = Digest("", _EPOCH, tuple(DigestItem(a, "", None) for a in articles))
    return frame.language


def issue_html(env: jinja2.Environment, site: Site, issue: ArchivedIssue) -> str:
    digest = issue.digest
    root = root_of(issue.page)
    context: dict[str, object] = {
        "digest": digest, "lead": digest.lead.article if digest.lead else None,
        "count": len(digest.items), "name": digest.name,
        "date": _longdate(env, digest), "web": True,
        "archive": {"subscribe_url": site.subscribe_url, "index_url": root + "index.html",
                    "feed_url": root + "feed.xml", "page_url": site.url(issue.page)},
    }
    return inline_css(render_template(env, TEMPLATES["html"], context))


def article_html(env: jinja2.Environment, site: Site, page: ArticlePage) -> str:
    root = root_of(page.page)
    issues = [{"href": root + issue.page, "title": issue.title, "date": issue.updated}
              for issue in page.issues]
    context: dict[str, object] = {
        "site": site, "root": root, "canonical": site.url(page.page),
        "lang": language([page.article]), "article": page.article, "issues": issues}
    return render_template(env, "archive/article.html.j2", context)


def index_html(env: jinja2.Environment, site: Site,
               issues: Sequence[ArchivedIssue]) -> dict[str, str]:
    """``index.html``, then ``page/2.html``...: PER_PAGE issues each, newest first."""
    chunks = [issues[i : i + PER_PAGE] for i in range(0, len(issues), PER_PAGE)] or [[]]
    pages = {}
    for number, chunk in enumerate(chunks, start=1):
        path = index_path(number)
        root = root_of(path)
        entries = [{"href": root + issue.page, "title": issue.title, "date": issue.updated,
                    "stories": [item.article.title for item in issue.digest.items]}
                   for issue in chunk]
        context: dict[str, object] = {
            "site": site, "root": root, "canonical": site.url(path),
            "lang": language([item.article for issue in chunk for item in issue.digest.items]),
            "issues": entries, "number": number, "count": len(chunks),
            "newer": root + index_path(number - 1) if number > 1 else None,
            "older": root + index_path(number + 1) if number < len(chunks) else None,
        }
        pages[path] = render_template(env, "archive/index.html.j2", context)
    return pages


def _longdate(env: jinja2.Environment, digest: Digest) -> str:
    longdate = env.filters["longdate"]
    return str(longdate(digest.as_of))

