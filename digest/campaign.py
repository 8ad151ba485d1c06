"""The library behind ``digest send``: one campaign, start to finish.

1. Select the articles, once.
2. Stream the subscriber lists into the journal, deciding each person's
   status on the way: pending, skipped (no article matches their tags, with
   the reason) or suppressed (the suppression list, or the list itself says
   they left).
3. Send to whoever the journal says is still to do, each with the variant
   of the digest that their preferences select.
4. Feed permanent failures back into the suppression list as bounces.

The clock is read by the caller and passed in as ``now``.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from digest.config import Settings
from digest.journal import Entry, Journal
from digest.lock import StateLock
from digest.message import message_id
from digest.model import Article
from digest.pipeline import (
    Warn,
    campaign_id,
    check_templates,
    identity,
    journal_path,
    known_tags,
    load,
)
from digest.selection import select
from digest.send import Job, SendOptions, Tally, TooManyConnectionErrors, run_jobs
from digest.subscribers import Row, Subscriber, iter_subscribers
from digest.suppression import Suppressions
from digest.transports import Transport
from digest.variants import Variants

REPORTED_SKIPS = 100


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Everything ``send`` needs beyond the digest's Settings."""

    lists: tuple[Path, ...]
    transport: Transport
    state: Path = Path(".digest")
    campaign: str | None = None
    dry_run: bool = False
    options: SendOptions = field(default_factory=SendOptions)
    list_format: str | None = None
    journal: bool = True  # off only for the benchmark that measures its cost


@dataclass(frozen=True, slots=True)
class SendReport:
    """The outcome of one ``digest send``; ``counts`` is the campaign's state
    after this run (sent, failed, deferred, ambiguous, skipped, suppressed)."""

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
    variants: int = 0
    skips: tuple[tuple[str, str], ...] = ()
    send_s: float = 0.0  # the delivery phase alone, after the lists are read
    retries: int = 0  # transient failures retried within this run

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
            "retries_this_run": self.retries,
            "articles": self.articles,
            "variants": self.variants,
            "skips": [{"email": e, "reason": r} for e, r in self.skips],
            "dry_run": self.dry_run,
            "aborted": self.aborted,
            "duration_s": round(self.duration_s, 3),
            "send_s": round(self.send_s, 3),
        }


class SuppressionCheck(Protocol):
    def add(self, entries: Iterable[tuple[str, str, str]]) -> int: ...

    def reason(self, email: str) -> str | None: ...


def _entries(rows: Iterator[Row], variants: Variants, suppressions: SuppressionCheck,
             warn: Warn) -> Iterator[Entry]:
    """Journal entries for the list's rows, with each person's status decided."""
    domain = variants.identity.domain
    said: list[tuple[str, str, str]] = []  # unsubscribes from the lists, added in batches
    for row in rows:
        for warning in row.warnings:
            warn(str(warning))
        subscriber = row.subscriber
        if row.problem is not None or subscriber is None:
            warn(f"skipped {row.problem}")
            continue
        email, tags = subscriber.email, ";".join(subscriber.tags)
        if row.suppress:
            said.append((email, row.suppress, f"list:{row.path.name}"))
            if len(said) >= 10_000:
                suppressions.add(said)
                said = []
        mid = message_id(variants.campaign, email, domain)
        reason = row.suppress or suppressions.reason(email)
        if reason:
            yield email, subscriber.name, tags, mid, "suppressed", reason
        elif variants.template(subscriber.tags) is None:
            why = f"no article matches their tags ({', '.join(subscriber.tags)})"
            yield email, subscriber.name, tags, mid, "skipped", why
        else:
            yield email, subscriber.name, tags, mid, "pending", None
    suppressions.add(said)


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
    loaded = load(settings, warn)
    articles = select(loaded.articles, settings.criteria())
    if not articles:
        return SendReport(campaign, 0, 0, {}, dry_run=request.dry_run)
    check_templates(settings)
    variants = Variants(settings, articles, identity=identity(settings), campaign=campaign,
                        sent_at=now)
    variants.template(())  # the full digest: a template error stops us before any list work
    rows = iter_subscribers(list(request.lists), list_format=request.list_format,
                            known_tags=known_tags(loaded))
    if request.dry_run:
        return _dry_run(campaign, len(articles), rows, variants, request.state, warn)
    with StateLock(request.state), Suppressions(request.state) as suppressions:
        journal = Journal(journal_path(request.state), enabled=request.journal)
        try:
            journal.pin(campaign, selection_key(settings.articles, articles))
            journal.add(campaign, _entries(rows, variants, suppressions, warn))
            recovered = journal.recover(campaign)
            journal.apply_suppressions(campaign, suppressions.path)
            todo = journal.count_todo(campaign)
            tally = Tally()
            aborted = None
            sending = time.monotonic()
            try:
                run_jobs(journal, campaign, request.transport, _jobs(journal, campaign, variants),
                         request.options, tally,
                         on_tick=(lambda t: on_tick(t, todo)) if on_tick else None)
            except TooManyConnectionErrors as exc:
                aborted = str(exc)
            send_s = time.monotonic() - sending
            suppressions.add((email, "bounced", f"campaign:{campaign}")
                             for email in journal.bounced(campaign))
            counts = journal.counts(campaign)
            # One per person in the journal: a list row that only suppresses someone
            # already listed (in any letter case) is not a second recipient.
            recipients = sum(counts.values())
            skipped = journal.rows(campaign, ("skipped",))
            skips = tuple((r.email, r.last_reply or "")
                          for r in itertools.islice(skipped, REPORTED_SKIPS))
        finally:
            journal.close()
    return SendReport(campaign, len(articles), recipients, counts, tally.sent, recovered,
                      time.monotonic() - started, todo=todo, aborted=aborted,
                      variants=len(variants), skips=skips, send_s=send_s,
                      retries=tally.retries)


def selection_key(root: Path, articles: Sequence[Article]) -> str:
    """What identifies an issue's articles: their files (relative to the articles
    folder) and dates, not their text, so fixing a typo between a crash and the
    rerun is fine."""
    listing = "\n".join(f"{a.source.relative_to(root)}\t{a.date.isoformat()}"
                        for a in articles)
    return hashlib.sha256(listing.encode()).hexdigest()


def _jobs(journal: Journal, campaign: str, variants: Variants) -> Iterator[Job]:
    for email, name, tags, resend in journal.todo(campaign):
        prefs = tuple(t for t in tags.split(";") if t)
        template = variants.template(prefs)
        if template is not None:
            yield Job(template.personalize(Subscriber(email, name, prefs)), resend=resend)


def _dry_run(campaign: str, articles: int, rows: Iterator[Row], variants: Variants,
             state: Path, warn: Warn) -> SendReport:
    """Count what a send would do, from the lists, the suppression list and
    what the journal says was done already, writing nothing."""
    counts: dict[str, int] = {}
    store = Suppressions(state) if (state / "suppressions.sqlite3").is_file() else None
    journal = Journal(journal_path(state)) if journal_path(state).is_file() else None
    try:
        for entry in _entries(rows, variants, _ReadOnly(store), warn):
            status = entry[4]
            if status == "pending" and journal is not None:
                to_do, known = journal.still_to_do(variants.campaign, entry[0])
                status = "pending" if to_do else known or status
            counts[status] = counts.get(status, 0) + 1
    finally:
        for opened in (store, journal):
            if opened is not None:
                opened.close()
    return SendReport(campaign, articles, sum(counts.values()), counts, dry_run=True,
                      todo=counts.get("pending", 0), variants=len(variants))


class _ReadOnly:
    """A suppression list that answers questions but records nothing (dry runs)."""

    def __init__(self, inner: Suppressions | None) -> None:
        self._inner = inner

    def add(self, entries: Iterable[tuple[str, str, str]]) -> int:
        return 0

    def reason(self, email: str) -> str | None:
        return self._inner.reason(email) if self._inner is not None else None
