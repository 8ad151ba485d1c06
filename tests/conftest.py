"""Shared fixtures: Article values and digests built directly, no files involved."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.content.compose import Digest, compose
from digest.model import Article, Block, Tag

# The real SMTP server fixtures (smtp_server, tls_smtp_server, tls_ca, ...) live in
# tests/smtpd.py.
pytest_plugins = ["tests.smtpd"]

AS_OF = datetime(2026, 11, 28, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]

ArticleFactory = Callable[..., Article]
DigestFactory = Callable[..., Digest]


def build_article(
    title: str = "Harbour wall approved",
    *,
    date: datetime = datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    tags: Iterable[str] = (),
    author: str = "Amina Traoré",
    source: str | None = None,
    paragraphs: Iterable[str] = ("The council voted on Monday. The wall will be built by 2028.",),
    **fields: Any,
) -> Article:
    """An Article with sensible defaults; any Article field can be overridden."""
    return Article(
        title=title,
        author=author,
        date=date,
        tags=tuple(Tag.of(t) for t in tags),
        source=Path(source or f"articles/{title.lower().replace(' ', '-')}.md"),
        body=tuple(Block("paragraph", p) for p in paragraphs),
        **fields,
    )


def build_digest(
    articles: Iterable[Article],
    *,
    name: str = "Harbour Weekly",
    as_of: datetime = AS_OF,
    summary_words: int = 40,
    site_url: str | None = None,
) -> Digest:
    return compose(
        list(articles), name=name, as_of=as_of, summary_words=summary_words, site_url=site_url
    )


# Articles and digests are frozen values, so one instance can serve a whole session.


@pytest.fixture(scope="session")
def make_article() -> ArticleFactory:
    return build_article


@pytest.fixture(scope="session")
def make_digest() -> DigestFactory:
    return build_digest


@pytest.fixture(scope="session")
def sample_articles() -> tuple[Article, ...]:
    """Three articles covering the optional fields: url, section, bio, explicit
    summary, and a title that needs HTML escaping."""
    return (
        build_article(
            "Harbour wall approved",
            date=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
            tags=("Local Government", "Climate"),
            url="https://news.example.org/2026/harbour-wall",
            section="Local",
            author_bio="Amina covers the council and the coast.",
        ),
        build_article(
            "Ferry timetable changes",
            date=datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
            author="Bo Lindqvist",
            tags=("Transport",),
            summary="Winter sailings start on 1 December, with fewer evening crossings.",
        ),
        build_article(
            "Q&A: what the new budget means",
            date=datetime(2026, 11, 23, 16, 45, tzinfo=UTC),
            tags=("Budget",),
            paragraphs=(
                "The mayor answered readers' questions. Most were about parking.",
                "A second paragraph that the summary never reaches.",
            ),
        ),
    )


@pytest.fixture(scope="session")
def sample_digest(sample_articles: tuple[Article, ...]) -> Digest:
    return build_digest(sample_articles)


@pytest.fixture
def make_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A factory for a working folder: a copy of the sample articles plus the
    given files, as the current directory, with no DIGEST_* variables set."""

    def make(*files: Path, rename: dict[str, str] | None = None) -> Path:
        shutil.copytree(REPO / "articles", tmp_path / "articles")
        for path in files:
            shutil.copy(path, tmp_path / (rename or {}).get(path.name, path.name))
        monkeypatch.chdir(tmp_path)
        for key in [k for k in os.environ if k.startswith("DIGEST_")]:
            monkeypatch.delenv(key)
        return tmp_path

    return make
