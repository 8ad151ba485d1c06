"""Shared fixtures: Article values and digests built directly, no files involved; the
working folder of a CLI test; tmpfs mounts; and the SMTP servers of tests/smtpd_fixtures.py.
Plain helper functions live in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.content.compose import Digest, compose
from digest.email.render import Rendered, make_environment, render_digest
from digest.model import Article, Block, Tag
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, REPO, TEST_SECRET, Mount

# The real SMTP server fixtures (smtp_server, tls_smtp_server, tls_ca, ...).
pytest_plugins = ["tests.smtpd_fixtures", "tests.dovecot", "tests.postgres"]

AS_OF = datetime(2026, 11, 28, tzinfo=UTC)
# The README's sample list, which a `workdir` holds as subscribers.csv unless marked.
SAMPLE_LIST = REPO / "subscribers.example.csv"

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
    return compose(list(articles), Digest(name, as_of, site_url=site_url), summary_words)


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


@pytest.fixture(scope="session")
def rendered(sample_digest: Digest) -> Rendered:
    return render_digest(make_environment(), sample_digest)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "workdir(*files, articles=REPO/'articles', rename=None): what the `workdir` "
        "fixture copies into the working folder (default: the README's sample list)")


@pytest.fixture
def make_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A factory for a working folder: a copy of an articles folder (the sample articles
    unless told) plus the given files, as the current directory, with no DIGEST_* variables
    set but the test link key (DIGEST_SECRET)."""

    def make(*files: Path, articles: Path = REPO / "articles",
             rename: dict[str, str] | None = None) -> Path:
        shutil.copytree(articles, tmp_path / "articles")
        for path in files:
            shutil.copy(path, tmp_path / (rename or {}).get(path.name, path.name))
        monkeypatch.chdir(tmp_path)
        for key in [k for k in os.environ if k.startswith("DIGEST_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("DIGEST_SECRET", TEST_SECRET)  # as an operator's cron has it
        return tmp_path

    return make


@pytest.fixture
def workdir(request: pytest.FixtureRequest, make_workdir: Callable[..., Path]) -> Path:
    """The working folder of a CLI test (see `make_workdir`). A module or a test picks what
    it holds with ``pytest.mark.workdir(*files, articles=..., rename=...)``; unmarked, it
    holds the sample articles and the README's sample list as subscribers.csv."""
    mark = request.node.get_closest_marker("workdir")
    if mark is None:
        return make_workdir(SAMPLE_LIST, rename={SAMPLE_LIST.name: "subscribers.csv"})
    return make_workdir(*mark.args, **mark.kwargs)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Mount]:
    """``mount(name, kib)``: a tmpfs of that size at tmp_path/name, unmounted after the
    test. Skipped where this machine cannot mount one (it needs root); under CI, where
    it can, a failure to mount fails the test instead."""
    mounted: list[Path] = []

    def mount(name: str, kib: int) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        path = tmp_path / name
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs",
                               str(path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs: {done.stderr.strip()}")
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """The system Chromium through Playwright, one per test module (the modules
    that use it call require_chromium() first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
