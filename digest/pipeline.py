"""The library behind ``articles``, ``build`` and ``status``: load, select,
compose, render. Sending lives in ``campaign``.

The CLI calls one function here. The clock is read by the caller and passed
in as ``now``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.articles import LoadResult, load_articles
from digest.compose import Digest, compose
from digest.config import Settings
from digest.errors import ConfigError, DigestError
from digest.issues import Definition, campaign_id
from digest.journal import CampaignRecord, Journal, Row
from digest.message import Identity, MessageTemplate, fill
from digest.model import Article
from digest.render import Rendered, make_environment, render_digest
from digest.selection import select
from digest.subscribers import Subscriber

Warn = Callable[[str], None]
SAMPLE = Subscriber("reader@example.org", "Sample Reader")


def gather(settings: Settings, warn: Warn) -> list[Article]:
    """The selected articles. Unparseable files are warnings, or with
    ``strict`` the first one is an error."""
    return select(load(settings, warn).articles, settings.criteria())


def load(settings: Settings, warn: Warn) -> LoadResult:
    """Every article in the folder, warning about (or with ``strict``, stopping
    at) the files that cannot be parsed."""
    result = load_articles(settings.articles)
    if result.problems and settings.strict:
        raise result.problems[0]
    for problem in result.problems:
        warn(f"skipped {problem}")
    return result


def known_tags(result: LoadResult) -> frozenset[str]:
    """The slugs of every tag in the articles folder."""
    return frozenset(slug for article in result.articles for slug in article.tag_slugs)


def identity(settings: Settings) -> Identity:
    return Identity(settings.name, settings.sender, settings.reply_to, settings.site_url)


def make_digest(settings: Settings, articles: Sequence[Article]) -> Digest:
    return compose(
        articles,
        name=settings.name,
        as_of=settings.as_of,
        summary_words=settings.summary_words,
        site_url=settings.site_url,
    )


def check_templates(settings: Settings) -> None:
    if settings.templates is not None and not settings.templates.is_dir():
        raise ConfigError(
            f"{settings.templates} is not a folder; point it at a folder of templates",
            source="--templates",
        )


def render(settings: Settings, digest: Digest) -> Rendered:
    check_templates(settings)
    return render_digest(make_environment(settings.templates), digest)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so no
    reader ever sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DigestError(f"cannot write {path}: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class BuildResult:
    digest: Digest
    files: tuple[Path, ...]


def build(settings: Settings, out: Path, *, now: datetime, warn: Warn) -> BuildResult:
    """Write digest.html, digest.txt and sample.eml into ``out``."""
    digest = make_digest(settings, gather(settings, warn))
    if not digest.items:
        return BuildResult(digest, ())
    rendered = render(settings, digest)
    template = MessageTemplate(
        rendered,
        identity=identity(settings),
        campaign=campaign_id(settings.as_of, [], settings.tags),
        sent_at=now,
    )
    values = template.values(SAMPLE)
    files = {
        "digest.html": fill(rendered.html, values, html=True).encode(),
        "digest.txt": fill(rendered.text, values, html=False).encode(),
        "sample.eml": template.personalize(SAMPLE).data,
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_atomic(out / name, data)
    except OSError as exc:
        raise DigestError(f"cannot write to {out}: {exc.strerror}; check --out") from exc
    return BuildResult(digest, tuple(out / name for name in files))


def journal_path(state: Path) -> Path:
    return state / "journal.sqlite3"


@dataclass(frozen=True, slots=True)
class Status:
    campaign: str
    counts: dict[str, int]
    problems: tuple[Row, ...]  # failed, deferred, ambiguous, expired and skipped recipients
    record: CampaignRecord | None = None

    @property
    def issue(self) -> dict[str, object]:
        """The campaign's pinned definition: as-of, since, tags, limit, articles..."""
        if self.record is None or self.record.definition is None:
            return {}
        return Definition.from_json(self.record.definition).as_dict()


PROBLEMS = ("failed", "deferred", "ambiguous", "expired", "skipped")


def status(state: Path, campaign: str | None) -> Status:
    """A campaign's counts, definition and recipients in trouble. It only reads,
    so it works on a full disk."""
    path = journal_path(state)
    if not path.is_file():
        raise ConfigError(f"no journal in {state}; nothing has been sent from here yet",
                          source="--state")
    journal = Journal(path, readonly=True)
    try:
        known = journal.campaigns()
        chosen = campaign or (known[0] if known else None)
        if chosen is None or chosen not in known:
            listed = ", ".join(known[:10]) or "none"
            raise ConfigError(f"no campaign {chosen!r} in the journal; known: {listed}",
                              source="--campaign")
        problems = tuple(journal.rows(chosen, PROBLEMS))
        return Status(chosen, journal.counts(chosen), problems, journal.campaign(chosen))
    finally:
        journal.close()
