"""The archive's Atom 1.0 feed (RFC 4287) and its sitemap (sitemaps.org 0.9),
built as element trees, so every value is escaped by the serialiser.

Ids are the pages' archive URLs, which never change for an issue; every time
comes from the data (an issue's as-of, an article's date), never the clock,
so a rebuild of the same issues gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urljoin
from xml.etree import ElementTree as ET

import jinja2

from digest.archive.collect import ArchivedIssue
from digest.archive.pages import Site
from digest.email.render import render_template

ATOM = "http://www.w3.org/2005/Atom"
SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"
FEED_ENTRIES = 50
# The feed's time when no issue is published yet: fixed, so it is still reproducible.
_NOTHING_YET = datetime(1970, 1, 1, tzinfo=UTC)


def atom_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ET.Element, tag: str, text: str | None = None,
         **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def atom_feed(env: jinja2.Environment, site: Site, issues: Sequence[ArchivedIssue]) -> bytes:
    """The newest FEED_ENTRIES issues, newest first, each with its stories."""
    # The namespace as a plain xmlns attribute: ElementTree's default_namespace
    # refuses the unqualified attribute names (rel, href) that Atom uses.
    feed = ET.Element("feed", xmlns=ATOM)
    _add(feed, "id", site.url(""))
    _add(feed, "title", site.name)
    _add(feed, "updated", atom_stamp(issues[0].updated if issues else _NOTHING_YET))
    _add(feed, "link", rel="self", type="application/atom+xml", href=site.url("feed.xml"))
    _add(feed, "link", rel="alternate", type="text/html", href=site.url("index.html"))
    _add(_add(feed, "author"), "name", site.name)
    _add(feed, "generator", "digest")
    for issue in issues[:FEED_ENTRIES]:
        entry = _add(feed, "entry")
        url = site.url(issue.page)
        _add(entry, "id", url)
        _add(entry, "title", issue.title)
        _add(entry, "published", atom_stamp(issue.updated))
        _add(entry, "updated", atom_stamp(issue.updated))
        _add(entry, "link", rel="alternate", type="text/html", href=url)
        _add(entry, "content", _content(env, issue, url), type="html")
    ET.indent(feed)
    data: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _content(env: jinja2.Environment, issue: ArchivedIssue, url: str) -> str:
    """The issue's stories as HTML, every link absolute (a feed reader has no base)."""
    stories = [{"href": urljoin(url, item.article.url) if item.article.url else None,
                "title": item.article.title, "author": item.article.author,
                "summary": item.summary} for item in issue.digest.items]
    return render_template(env, "archive/entry.html.j2",
                           {"intro": issue.digest.intro, "stories": stories}).strip()


def sitemap(site: Site, pages: Sequence[tuple[str, datetime | None]]) -> bytes:
    """Every page, by its absolute URL, with the date of what it shows when one applies."""
    urlset = ET.Element("urlset", xmlns=SITEMAP)
    for page, changed in pages:
        url = _add(urlset, "url")
        _add(url, "loc", site.url(page))
        if changed is not None:
            _add(url, "lastmod", changed.astimezone(UTC).date().isoformat())
    ET.indent(urlset)
    data: bytes = ET.tostring(urlset, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
