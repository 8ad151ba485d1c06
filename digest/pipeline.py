"""The library behind each command: load, select, compose, render, deliver.

Data flows one way: the CLI calls one function here, and these call the
transports. The clock is read by the caller and passed in as ``now``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from digest.articles import load_articles
from digest.compose import Digest, compose
from digest.config import Settings
from digest.errors import ConfigError, DigestError
from digest.journal import Journal, Row
from digest.lock import StateLock
from digest.message import Identity, MessageTemplate, fill, message_id
from digest.model import Article, slugify
from digest.render import Rendered, make_environment, render_digest
from digest.selection import select
from digest.send import Job, SendOptions, Tally, TooManyConnectionErrors, run_jobs
from digest.subscribers import Subscriber, iter_subscribers
from digest.transports import Transport

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


def write_atomic(path: Path, data: bytes) -> None:
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


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Everything ``send`` needs beyond the digest's Settings."""

    lists: tuple[Path, ...]
    transport: Transport
    state: Path = Path(".digest")
    campaign: str | None = None
    dry_run: bool = False
    options: SendOptions = field(default_factory=SendOptions)
    journal: bool = True  # off only for the benchmark that measures its cost


@dataclass(frozen=True, slots=True)
class SendReport:
    """The outcome of one ``digest send``; ``counts`` is the campaign's state
    after this run (sent, failed, deferred, ambiguous, ...)."""

    campaign: str
    articles: int
    recipients: int
    counts: dict[str, int]
    sent_now: int = 0
    recovered: int = 0
    duration_s: float = 0.0
    dry_run: bool = False
    todo: int = 0
    aborted: str | None = None

    @property
    def exit_code(self) -> int:
        """69 when the run gave up on the server; 3 when it left anyone failed,
        deferred or ambiguous; else 0 (including "nothing left to send")."""
        if self.aborted:
            return TooManyConnectionErrors.exit_code
        if self.dry_run or self.todo == 0:
            return 0
        unsettled = sum(self.counts.get(s, 0) for s in ("failed", "deferred", "ambiguous"))
        return 3 if unsettled else 0

    def as_json(self) -> dict[str, object]:
        keys = ("sent", "failed", "deferred", "ambiguous", "skipped", "suppressed")
        return {
            "campaign": self.campaign,
            "recipients": self.recipients,
            **{key: self.counts.get(key, 0) for key in keys},
            "sent_this_run": self.sent_now,
            "articles": self.articles,
            "dry_run": self.dry_run,
            "aborted": self.aborted,
            "duration_s": round(self.duration_s, 3),
        }


def journal_path(state: Path) -> Path:
    return state / "journal.sqlite3"


def send(
    settings: Settings,
    request: SendRequest,
    *,
    now: datetime,
    warn: Warn,
    on_tick: Callable[[Tally, int], None] | None = None,
) -> SendReport:
    """One personalised message per subscriber, through the transport, with
    every step journalled so that a rerun finishes the job."""
    started = time.monotonic()
    campaign = request.campaign or campaign_id(settings.as_of, request.lists, settings.tags)
    digest = make_digest(settings, gather(settings, warn))
    if not digest.items:
        return SendReport(campaign, 0, 0, {}, dry_run=request.dry_run)
    template = MessageTemplate(
        render(settings, digest), identity=identity(settings), campaign=campaign, sent_at=now
    )
    subscribers = _checked_subscribers(request.lists, warn)
    if request.dry_run:
        count = sum(1 for _ in subscribers)
        return SendReport(campaign, len(digest.items), count, {}, dry_run=True, todo=count)
    with StateLock(request.state):
        journal = Journal(journal_path(request.state), enabled=request.journal)
        try:
            recipients = journal.add(campaign, (
                (s.email, s.name, message_id(campaign, s.email, template.domain))
                for s in subscribers
            ))
            recovered = journal.recover(campaign)
            todo = journal.count_todo(campaign)
            jobs = (
                Job(template.personalize(Subscriber(email, name)), resend=resend)
                for email, name, resend in journal.todo(campaign)
            )
            tally = Tally()
            tick = (lambda t: on_tick(t, todo)) if on_tick else None
            aborted = None
            try:
                run_jobs(journal, campaign, request.transport, jobs, request.options, tally,
                         on_tick=tick)
            except TooManyConnectionErrors as exc:
                aborted = str(exc)
            counts = journal.counts(campaign)
        finally:
            journal.close()
    return SendReport(campaign, len(digest.items), recipients, counts, tally.sent, recovered,
                      time.monotonic() - started, todo=todo, aborted=aborted)


def _checked_subscribers(lists: Sequence[Path], warn: Warn) -> Iterator[Subscriber]:
    for row in iter_subscribers(list(lists)):
        if row.problem is not None:
            warn(f"skipped {row.problem}")
        elif row.subscriber is not None:
            yield row.subscriber


@dataclass(frozen=True, slots=True)
class Status:
    campaign: str
    counts: dict[str, int]
    problems: tuple[Row, ...]


def status(state: Path, campaign: str | None) -> Status:
    """A campaign's counts and its failed, deferred and ambiguous recipients."""
    path = journal_path(state)
    if not path.is_file():
        raise ConfigError(f"no journal in {state}; nothing has been sent from here yet",
                          source="--state")
    journal = Journal(path)
    try:
        known = journal.campaigns()
        chosen = campaign or (known[0] if known else None)
        if chosen is None or chosen not in known:
            listed = ", ".join(known[:10]) or "none"
            raise ConfigError(f"no campaign {chosen!r} in the journal; known: {listed}",
                              source="--campaign")
        problems = tuple(journal.rows(chosen, ("failed", "deferred", "ambiguous")))
        return Status(chosen, journal.counts(chosen), problems)
    finally:
        journal.close()
