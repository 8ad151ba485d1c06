"""Links for articles that carry none: ``url-template``.

A template such as ``https://example.org/{section}/{slug}`` names article
fields in braces. It is checked once, when the run starts, so a typo in a
field name is one error about the flag rather than a digest of dead ends.
An article whose own ``url`` is set keeps it; one that lacks a field the
template needs (no section) gets no link, which ``digest check`` reports.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, urlsplit

from digest.errors import ConfigError
from digest.model import Article, shown, slugify

FIELDS = ("slug", "section", "author", "year", "month", "day", "lang")


def _fields(article: Article) -> Mapping[str, str | None]:
    when = article.date
    return {
        "slug": slugify(article.source.stem) or None,
        "section": slugify(article.section) if article.section else None,
        "author": slugify(article.author) or None,
        "year": f"{when.year:04d}",
        "month": f"{when.month:02d}",
        "day": f"{when.day:02d}",
        "lang": article.language,
    }


def check_template(template: str) -> None:
    """Raise a ConfigError naming ``--url-template`` unless the template is an
    http(s) URL with a host, whose every ``{field}`` is one this module fills."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{shown(template)}: {exc}; write fields as {{slug}}",
                          source="--url-template") from exc
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in FIELDS:
            raise ConfigError(f"unknown field {_braced(field)}; known fields: "
                              + ", ".join("{" + f + "}" for f in FIELDS),
                              source="--url-template")
        if spec or conversion:
            # A link's parts are slugs and numbers: a spec could only garble them.
            raise ConfigError(f"{_braced(field, spec, conversion)} has a format spec; "
                              f"write {{{field}}}", source="--url-template")
    # Filled with a stand-in, so a host made of fields ({lang}.example.org) passes
    # and a template without one (https:///{slug}) does not.
    try:
        sample = urlsplit(template.format_map(dict.fromkeys(FIELDS, "x")))
        usable = sample.scheme in ("http", "https") and bool(sample.hostname)
    except ValueError:  # urlsplit refuses some hosts outright: https://[::1/{slug}
        usable = False
    if not usable:
        raise ConfigError(f"{shown(template)} is not an http(s) URL with a host, e.g. "
                          "https://example.org/{section}/{slug}", source="--url-template")


def _braced(field: str, spec: str | None = None, conversion: str | None = None) -> str:
    """The field as written, cut like any quoted value so the error stays one line."""
    inner = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
    return "{" + (inner if len(inner) <= 40 else inner[:40] + "…") + "}"


def link(article: Article, template: str) -> str | None:
    """The article's URL from the template, or None when a field it needs is missing."""
    values = _fields(article)
    needed = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    if any(not values[field] for field in needed):
        return None
    return template.format_map({k: quote(v or "", safe="") for k, v in values.items()})


def with_urls(articles: Iterable[Article], template: str | None) -> list[Article]:
    """The articles, each without a URL given one from ``template`` where it can be."""
    if not template:
        return list(articles)
    return [a if a.url else replace(a, url=link(a, template)) for a in articles]


# --- The web archive's layout: where each page lives under --archive-url -------------


def article_page(article: Article, root: Path) -> str:
    """``articles/<slug>.html``: the archive page of an article with no URL of its
    own. The slug is the file's path in the articles folder, so two ``notes.md``
    in different subfolders get two pages."""
    try:
        relative = article.source.relative_to(root).with_suffix("")
    except ValueError:
        relative = Path(article.source.stem)
    slug = "-".join(filter(None, (slugify(part) for part in relative.parts))) or "article"
    return f"articles/{slug}.html"


def issue_page(campaign: str) -> str:
    """``issues/<campaign>.html``: the archive page of one issue."""
    return f"issues/{slugify(campaign) or 'issue'}.html"


def archive_link(archive_url: str, page: str) -> str:
    return archive_url.rstrip("/") + "/" + page


def with_archive_links(articles: Iterable[Article], root: Path,
                       archive_url: str | None) -> list[Article]:
    """The articles, each still without a URL given its archive page's, so no
    story is a dead end once the archive is published."""
    if not archive_url:
        return list(articles)
    return [a if a.url else replace(a, url=archive_link(archive_url, article_page(a, root)))
            for a in articles]
