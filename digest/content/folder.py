"""A folder of articles as the commands see it: load it, warn about (or with
``strict``, stop at) the files that cannot be parsed, select, and list its tags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from digest.content.articles import LoadResult, load_articles
from digest.content.selection import IssueOptions, select
from digest.model import Article

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Source:
    """Where the articles are, and whether a bad one stops the run."""

    folder: Path
    strict: bool = False


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
    """The articles an issue with these options selects."""
    return select(load(source, warn).articles, options.criteria())


def known_tags(result: LoadResult) -> frozenset[str]:
    """The slugs of every tag in the articles folder."""
    return frozenset(slug for article in result.articles for slug in article.tag_slugs)
