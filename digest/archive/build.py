"""The library behind ``digest archive``: every issue the state records as
sent, as a static site in one folder.

    issues/<campaign>.html   each issue, as the email showed it, for everyone
    articles/<slug>.html     each story without a link of its own, in full
    index.html, page/N.html  the issues, newest first, PER_PAGE a page
    feed.xml                 Atom 1.0, the newest issues
    sitemap.xml              every page, by its absolute URL

The same state and articles give the same bytes, and a rebuild writes only the
files that changed (see write.py). ``digest send --archive`` calls
``build_archive`` with an ``ArchiveRequest`` after a send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from digest.archive.collect import Collected, Warn, collect
from digest.archive.feed import atom_feed, sitemap
from digest.archive.pages import Site, article_html, index_html, issue_html
from digest.archive.write import prepare, write_tree
from digest.content.folder import Source, load
from digest.delivery.history import published
from digest.email.links import site_base
from digest.email.options import RenderOptions
from digest.email.render import make_environment
from digest.errors import ConfigError
from digest.model import StateLocation


@dataclass(frozen=True, slots=True)
class ArchiveRequest:
    """Where the issues are recorded (``state``) and their articles kept
    (``source``: the folder, and the URL template that gave stories their
    links), how they look (``render``: the name, ``archive_url``, ``site_url``,
    templates) and the folder to write (``out``, given by the option ``flag``)."""

    state: StateLocation
    source: Source
    render: RenderOptions
    out: Path
    flag: str = "--out"


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    issues: int
    articles: int  # article pages
    written: int
    unchanged: int
    removed: int
    out: Path

    def summary(self) -> str:
        return (f"Archive: {self.issues} issues, {self.articles} articles; {self.written} "
                f"written, {self.unchanged} unchanged, {self.removed} removed in {self.out}")


def build_archive(request: ArchiveRequest, *, warn: Warn) -> ArchiveResult:
    """Build (or bring up to date) the archive in ``request.out``."""
    site = site_of(request.render)
    request.render.check()
    issues = published(request.state)
    prepare(request.out, request.flag)
    loaded = load(request.source, warn)
    env = make_environment(request.render.templates)
    collected = collect(issues, loaded, request.source, request.render, env, warn)
    written = write_tree(request.out, render_files(env, site, collected), warn, request.flag)
    return ArchiveResult(len(collected.issues), len(collected.articles), written.written,
                         written.unchanged, written.removed, request.out)


def site_of(render: RenderOptions) -> Site:
    """The archive's name and URLs; it needs its own URL for the feed and sitemap."""
    identity = render.identity
    if not identity.archive_url:
        raise ConfigError("the archive needs the URL it is published at, for its feed and "
                          "sitemap; set it like 'https://news.example.org/archive'",
                          source="--archive-url")
    base = site_base(identity.archive_url, "--archive-url").rstrip("/")
    subscribe = site_base(identity.site_url) if identity.site_url else None
    return Site(identity.name, base, subscribe)


def render_files(env: jinja2.Environment, site: Site, collected: Collected) -> dict[str, bytes]:
    """Every file of the archive, by its path in the folder."""
    files: dict[str, bytes] = {}
    dated: list[tuple[str, datetime | None]] = []
    for page in collected.articles:
        files[page.page] = article_html(env, site, page).encode()
        dated.append((page.page, page.article.date))
    for issue in collected.issues:
        files[issue.page] = issue_html(env, site, issue).encode()
        dated.append((issue.page, issue.updated))
    for path, html in index_html(env, site, collected.issues).items():
        files[path] = html.encode()
        dated.append((path, None))
    files["feed.xml"] = atom_feed(env, site, collected.issues)
    files["sitemap.xml"] = sitemap(site, sorted(dated, key=lambda pair: pair[0]))
    return files
