"""The library behind each command: load, select, compose, render, deliver.

Data flows one way: the CLI calls one function here, and these call the
transports. The clock is read by the caller and passed in as ``now``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from digest.articles import load_articles
from digest.compose import Digest, compose
from digest.config import Settings
from digest.errors import ConfigError, DigestError
from digest.message import Envelope, Identity, MessageTemplate, fill
from digest.model import Article, slugify
from digest.render import Rendered, make_environment, render_digest
from digest.selection import select
from digest.subscribers import Subscriber, read_subscribers
from digest.transports import Delivery, Transport

Warn = Callable[[str], None]
SAMPLE = Subscriber("reader@example.org", "Sample Reader")


def gather(settings: Settings, warn: Warn) -> list[Article]:
    """The selected articles. Unparseable files are warnings, or with
    ``strict`` the first one is an error."""
    result = load_articles(settings.articles)
    if result.problems and settings.strict:
        raise result.problems[0]
    for problem in result.problems:
        warn(f"skipped {problem}")
    return select(result.articles, settings.criteria())


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


def render(settings: Settings, digest: Digest) -> Rendered:
    if settings.templates is not None and not settings.templates.is_dir():
        raise ConfigError(
            f"{settings.templates} is not a folder; point it at a folder of templates",
            source="--templates",
        )
    return render_digest(make_environment(settings.templates), digest)


def campaign_id(as_of: datetime, lists: Sequence[Path], tags: Sequence[str]) -> str:
    """E.g. ``2026-W48-subscribers-climate``: one campaign per week, list and selection."""
    year, week, _ = as_of.isocalendar()
    names = "+".join(slugify(p.stem) for p in lists) or "sample"
    selection = "+".join(sorted({slugify(t) for t in tags})) or "all"
    return f"{year}-W{week:02d}-{names}-{selection}"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
        rendered, identity=identity(settings), campaign=campaign_id(settings.as_of, [], settings.tags),
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
            _write_atomic(out / name, data)
    except OSError as exc:
        raise DigestError(f"cannot write to {out}: {exc.strerror}; check --out") from exc
    return BuildResult(digest, tuple(out / name for name in files))


@dataclass(slots=True)
class SendReport:
    campaign: str
    articles: int
    recipients: int = 0
    sent: int = 0
    failed: list[Delivery] = field(default_factory=list)
    dry_run: bool = False


async def deliver_all(
    envelopes: Sequence[Envelope], transport: Transport, report: SendReport
) -> None:
    await transport.open()
    try:
        for envelope in envelopes:
            delivery = await transport.deliver(envelope)
            if delivery.status == "sent":
                report.sent += 1
            else:
                report.failed.append(delivery)
    finally:
        await transport.close()


@dataclass(frozen=True, slots=True)
class SendRequest:
    lists: tuple[Path, ...]
    transport: Transport
    campaign: str | None = None
    dry_run: bool = False


def send(settings: Settings, request: SendRequest, *, now: datetime, warn: Warn) -> SendReport:
    """One personalised message per subscriber, through the transport."""
    campaign = request.campaign or campaign_id(settings.as_of, request.lists, settings.tags)
    subscribers, problems = read_subscribers(list(request.lists))
    for problem in problems:
        warn(f"skipped {problem}")
    digest = make_digest(settings, gather(settings, warn))
    report = SendReport(campaign, len(digest.items), len(subscribers), dry_run=request.dry_run)
    if not digest.items or not subscribers:
        return report
    template = MessageTemplate(
        render(settings, digest), identity=identity(settings), campaign=campaign, sent_at=now
    )
    envelopes = [template.personalize(s) for s in subscribers]
    if not request.dry_run:
        asyncio.run(deliver_all(envelopes, request.transport, report))
    return report
