"""A folder of articles as the commands see it: load it, warn about (or with
``strict``, stop at) the files that cannot be parsed, select, and list its tags."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.content.articles import LoadResult, load_articles
from digest.content.selection import IssueOptions, select
from digest.content.urls import check_template, with_archive_links, with_urls
from digest.model import Article

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Source:
    """Where the articles are, whether a bad one stops the run, and what
    gives a link to articles without one (the URL template, the archive)."""

    folder: Path
    strict: bool = False
    url_template: str | None = None
    archive_url: str | None = None

    def __post_init__(self) -> None:
        if self.url_template:
            check_template(self.url_template)

    def linked(self, articles: Sequence[Article]) -> list[Article]:
        """The articles, each linked: its own URL, else the URL template's,
        else its page in the web archive (when ``archive_url`` is set)."""
        return with_archive_links(with_urls(articles, self.url_template), self.folder,
                                  self.archive_url)


def load(source: Source, warn: Warn) -> LoadResult:
    """Every article in the folder, warning about (or with ``strict``, stopping
    at) the files that cannot be parsed."""
    result = load_articles(source.folder)
    if (result.problems or result.warnings) and source.strict:
        raise (result.problems or result.warnings)[0]
    for problem in result.problems:
        warn(f"skipped {problem}")
    for warning in result.warnings:
        warn(str(warning))
    return result


def gather(source: Source, options: IssueOptions, warn: Warn) -> list[Article]:
    """The articles an issue with these options selects, linked by the URL template."""
    return source.linked(select(load(source, warn).articles, options.criteria()))


def known_tags(result: LoadResult) -> frozenset[str]:
    """The slugs of every tag in the articles folder."""
    return frozenset(slug for article in result.articles for slug in article.tag_slugs)
