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

On a shared state (PostgreSQL), any number of sends run one campaign at once:
whoever starts first pins it, the others join, and each claims its recipients
in batches (delivery/claims.py). ``--workers N`` runs N sender processes under
one send, on either backend (delivery/workers.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from digest.audience.subscribers import ListRow, iter_subscribers
from digest.content.articles import LoadResult
from digest.content.folder import Warn, known_tags, load
from digest.delivery.claims import (
    PAGE,
    Claims,
    Run,
    Tick,
    deliver_until_stopped,
    jobs_for,
    stopped_by_signal,
    stopping_signals,
    variants_for,
)
from digest.delivery.issues import IssuePlan, journal_now, pin_issue, plan_issue
from digest.delivery.report import SendReport
from digest.delivery.request import SendRequest
from digest.delivery.sender import Sender, Tally, run_jobs
from digest.delivery.workers import Rebuild, WorkerPlan, run_workers, worker_count
from digest.email.message import message_id
from digest.email.variants import Variants
from digest.errors import ConfigError, DigestError, Interrupted, TooManyConnectionErrors
from digest.model import StateLocation, Subscriber
from digest.state.records import Entry, Pending, stamp
from digest.state.store import LOOKUP_PAGE, JournalStore, Store, SuppressionStore, open_store

REPORTED_SKIPS = 100


class SuppressionCheck(Protocol):
    def add(self, entries: Iterable[tuple[str, str, str]]) -> int: ...

    def reasons(self, emails: Sequence[str]) -> dict[str, str]: ...


class Chosen(Protocol):
    def chosen(self, emails: Sequence[str]) -> dict[str, tuple[str, ...]]: ...


def journal_entries(rows: Iterator[ListRow], variants: Variants, suppressions: SuppressionCheck,
                    preferences: Chosen, warn: Warn) -> Iterator[Entry]:
    """Journal entries for the list's rows, with each person's status decided.
    A subscriber's own choice on the preferences page overrides the tags their
    list gives them. The state is asked about a page of rows at a time: over a
    network, a question per row would cost a round trip per row."""
    domain = variants.identity.domain
    said: list[tuple[str, str, str]] = []  # unsubscribes from the lists, added in batches
    valid = _valid(rows, warn)
    while page := list(itertools.islice(valid, LOOKUP_PAGE)):
        emails = [subscriber.email for _, subscriber in page]
        listed, chosen = suppressions.reasons(emails), preferences.chosen(emails)
        for row, subscriber in page:
            own = chosen.get(subscriber.key)
            if own is not None:
                subscriber = Subscriber(subscriber.email, subscriber.name, own)
            email, tags = subscriber.email, ";".join(subscriber.tags)
            if row.suppress:
                said.append((email, row.suppress, f"list:{row.path.name}"))
            mid = message_id(variants.campaign, email, domain)
            reason = row.suppress or listed.get(subscriber.key)
            if reason:
                yield Entry(email, subscriber.name, tags, mid, "suppressed", reason)
            elif variants.template(subscriber.tags) is None:
                why = f"no article matches their tags ({', '.join(subscriber.tags)})"
                yield Entry(email, subscriber.name, tags, mid, "skipped", why)
            else:
                yield Entry(email, subscriber.name, tags, mid, "pending", None)
        if len(said) >= 10_000:
            suppressions.add(said)
            said = []
    suppressions.add(said)


def _valid(rows: Iterator[ListRow], warn: Warn) -> Iterator[tuple[ListRow, Subscriber]]:
    """The rows with a subscriber; each row's warnings, and the others, said."""
    for row in rows:
        for warning in row.warnings:
            warn(str(warning))
        if row.problem is not None or row.subscriber is None:
            warn(f"skipped {row.problem}")
            continue
        yield row, row.subscriber


def send(
    request: SendRequest,
    *,
    now: datetime,
    warn: Warn,
    say: Warn | None = None,
    on_tick: Tick | None = None,
    rebuild: Rebuild | None = None,
) -> SendReport:
    """One personalised message per subscriber, through the transport, with
    every step journalled so that a rerun finishes the job. ``say`` hears
    which issue the run is for when that is not simply a new one. ``rebuild``
    makes this request again in another process: without it, one process sends.
    SIGTERM or Ctrl-C while the lists are read stops the run before it sends."""
    started = time.monotonic()
    loaded = load(request.source, warn)
    if request.dry_run:
        return _dry_run(request, loaded, now, warn)
    store = open_store(request.state, memory_journal=not request.journal)
    stop = threading.Event()
    with store.send_lock(), stopping_signals(stop.set) as came:
        try:
            suppressions = store.suppressions  # opened under the lock, then the journal
            journal = store.journal
            kept = journal_now(store, now)
            plan = plan_issue(journal, request, loaded, now=kept)
            if plan.expired and say is not None:
                say(f"{plan.expired} recipients of campaign {plan.campaign} expired: they "
                    "were still owed the issue after --max-age.")
            if plan.wait or not plan.articles:
                return _nothing_to_send(journal, plan)
            variants = variants_for(plan, request, now)
            # Opened before anything is written: a list or a TMPDIR that fails, fails here.
            rows = iter_subscribers(list(request.lists), list_format=request.list_format,
                                    known_tags=known_tags(loaded))
            joined = pin_issue(journal, plan, request, loaded, now=kept)
            if joined is not plan:
                plan = joined
                if plan.wait or not plan.articles:
                    return _nothing_to_send(journal, plan)
                variants = variants_for(plan, request, now)
            listing = _Listing(rows, variants, stop, came, kept)
            run, recovered = _list_then_send(store, plan, request, listing,
                                             _Senders(now, on_tick, rebuild, say), warn)
            suppressions.add((email, "bounced", f"campaign:{plan.campaign}")
                             for email in journal.bounced(plan.campaign))
            counts = journal.counts(plan.campaign)
            skipped = journal.rows(plan.campaign, ("skipped",))
            skips = tuple((r.email, r.last_reply or "")
                          for r in itertools.islice(skipped, REPORTED_SKIPS))
        finally:
            store.close()
    # One per person in the journal: a list row that only suppresses someone
    # already listed (in any letter case) is not a second recipient.
    return SendReport(plan.campaign, len(plan.articles), sum(counts.values()), counts,
                      run.tally.sent, recovered, time.monotonic() - started, todo=run.todo,
                      aborted=run.aborted, variants=len(variants), skips=skips,
                      send_s=run.seconds, retries=run.tally.retries, stopped=run.stopped,
                      expired_now=plan.expired, issue=plan.definition.as_dict(),
                      resumed=plan.resumed is not None)


class _ListStopped(Exception):
    """A signal came while the lists were read into the journal."""


@dataclass(frozen=True, slots=True)
class _Listing:
    """The list rows to record, and what stops the recording: a signal's event,
    with the signals that came."""

    rows: Iterator[ListRow]
    variants: Variants
    stop: threading.Event
    came: list[int]
    queued: datetime

    def until_stopped(self) -> Iterator[ListRow]:
        for row in self.rows:
            if self.stop.is_set():  # the batch in hand is dropped whole; the rerun reads it
                raise _ListStopped
            yield row


def _list_then_send(store: Store, plan: IssuePlan, request: SendRequest, listing: _Listing,
                    senders: _Senders, warn: Warn) -> tuple[Run, int]:
    """Record the lists in the journal, then send to whoever is owed the issue;
    the run, and how many left in flight by an earlier one were sent again."""
    journal = store.journal
    entries = journal_entries(listing.until_stopped(), listing.variants, store.suppressions,
                              store.preferences, warn)
    what = "nothing was sent"  # a signal after the lists were in, before the sending
    try:
        journal.add(plan.campaign, entries, queued_at=stamp(listing.queued))
    except _ListStopped:
        what = "the lists were read in part, and nothing was sent"
    # Unsubscribes from here on reach the senders a batch at a time.
    senders = dataclasses.replace(senders, mark=stamp(store.clock()))
    recovered = _recover(store, plan.campaign)
    store.apply_suppressions(plan.campaign)
    todo = journal.count_todo(plan.campaign)
    if listing.stop.is_set():
        return Run(Tally(), todo, 0.0, stopped=Interrupted(listing.came[0], what)), recovered
    if todo and plan.resumed is not None and senders.say is not None:
        senders.say(_resuming(plan))
    run = _sending(store, plan.campaign, listing.variants, request, todo, senders)
    return run, recovered + run.recovered


@dataclass(frozen=True, slots=True)
class _Senders:
    """How the sending runs: the run's clock, who hears the tally, how a worker
    process makes the request, who hears which issue is being resumed, and the
    suppression mark the senders start from (stamped once the lists are in)."""

    now: datetime
    on_tick: Tick | None
    rebuild: Rebuild | None
    say: Warn | None
    mark: str = ""


def _sending(store: Store, campaign: str, variants: Variants, request: SendRequest,
             todo: int, senders: _Senders) -> Run:
    """Send to the ``todo`` people owed the issue: in worker processes, in this one
    through claims (a shared state), or in this one alone under the lock."""
    workers = worker_count(request, todo, senders.rebuild is not None)
    if workers > 1 and senders.rebuild is not None:
        work = WorkerPlan(senders.rebuild, campaign, workers, senders.now, senders.mark)
        return run_workers(work, request.options, todo, senders.on_tick)
    if store.shared:
        claims = Claims(store, campaign, request.options, senders.mark)
        return deliver_until_stopped(claims, variants, request, todo, senders.on_tick)
    return _deliver(store, campaign, variants, request, todo, senders.on_tick)


def _nothing_to_send(journal: JournalStore, plan: IssuePlan) -> SendReport:
    return SendReport(plan.campaign, 0, 0, journal.counts(plan.campaign), waiting=plan.wait,
                      expired_now=plan.expired, issue=plan.definition.as_dict())


def _recover(store: Store, campaign: str) -> int:
    """Who was left in flight, now ambiguous: everyone so on a state whose lock
    excludes every other sender (whose claims are cleared too); on a shared
    state, only those whose sender's lease has ended."""
    journal = store.journal
    if store.shared:
        return journal.reclaim(campaign, store.clock())
    recovered = journal.recover(campaign)
    journal.release(campaign, None)
    return recovered


def _resuming(plan: IssuePlan) -> str:
    record = plan.resumed
    assert record is not None
    if plan.joined:
        return (f"Joining campaign {plan.campaign}, which another sender on this state began "
                f"at {record.created_at}: the issue as of {record.as_of}, with its "
                f"{len(plan.articles)} pinned articles.")
    return (f"Resuming campaign {plan.campaign}, begun {record.created_at}: the issue as of "
            f"{record.as_of}, with its {len(plan.articles)} pinned articles, whatever the "
            f"clock says now. 'digest campaign close {plan.campaign}' sets it aside.")


def _deliver(store: Store, campaign: str, variants: Variants, request: SendRequest,
             todo: int, on_tick: Tick | None) -> Run:
    """Send to the ``todo`` people still owed the issue. An error that stops the
    run part-way is kept, not raised, so the bounces seen so far are still
    suppressed and the report is still written."""
    tally = Tally()
    sending = time.monotonic()
    stop = threading.Event()  # SIGTERM or Ctrl-C: send what is in hand, begin no more
    with stopping_signals(stop.set) as came:
        try:
            jobs = jobs_for(_todo(store, campaign), variants, request.wrappers)
            sender = Sender(store.journal, campaign, request.transport, request.options, tally,
                            stop.is_set)
            run_jobs(sender, jobs, on_tick=(lambda t: on_tick(t, todo)) if on_tick else None)
            run = Run(tally, todo, time.monotonic() - sending)
        except TooManyConnectionErrors as exc:
            run = Run(tally, todo, time.monotonic() - sending, aborted=str(exc))
        except DigestError as exc:
            run = Run(tally, todo, time.monotonic() - sending, stopped=exc)
    return stopped_by_signal(run, came, "the messages in hand were sent and no more begun")


def _todo(store: Store, campaign: str) -> Iterator[Pending]:
    """Each recipient still owed the issue, for a lone sender. Before each page
    of them, the unsubscribes made since the last look (on the web, say) are
    applied, so they stop mail to anyone not yet sent within one page."""
    mark = stamp(store.clock())
    for index, pending in enumerate(store.journal.todo(campaign, chunk=PAGE), start=1):
        yield pending
        if index % PAGE == 0:  # the journal reads its next page after this
            looked, mark = mark, stamp(store.clock())
            store.apply_suppressions(campaign, since=looked)


def _dry_run(request: SendRequest, loaded: LoadResult, now: datetime,
             warn: Warn) -> SendReport:
    """Count what a send would do, from the lists, the suppression list and
    what the journal says was done already, writing nothing."""
    store = open_store(request.state, readonly=True)
    try:
        suppressions = store.suppressions
        journal = store.journal  # an empty one where nothing was sent yet
        plan = plan_issue(journal, request, loaded, now=now)
        if plan.wait or not plan.articles:
            return SendReport(plan.campaign, 0, 0, {}, dry_run=True, waiting=plan.wait,
                              issue=plan.definition.as_dict())
        variants = variants_for(plan, request, now)
        rows = iter_subscribers(list(request.lists), list_format=request.list_format,
                                known_tags=known_tags(loaded))
        counts: dict[str, int] = {}
        entries = journal_entries(rows, variants, ReadOnly(suppressions), store.preferences,
                                  warn)
        for entry in entries:
            status = entry.status
            if status == "pending":
                to_do, known = journal.still_to_do(plan.campaign, entry.email)
                status = "pending" if to_do else known or status
            counts[status] = counts.get(status, 0) + 1
    finally:
        store.close()
    return SendReport(plan.campaign, len(plan.articles), sum(counts.values()), counts,
                      dry_run=True, todo=counts.get("pending", 0), variants=len(variants),
                      issue=plan.definition.as_dict(), resumed=plan.resumed is not None)


class ReadOnly:
    """A suppression list that answers questions but records nothing (dry runs
    and test sends)."""

    def __init__(self, inner: SuppressionStore) -> None:
        self._inner = inner

    def add(self, entries: Iterable[tuple[str, str, str]]) -> int:
        return 0

    def reasons(self, emails: Sequence[str]) -> dict[str, str]:
        return self._inner.reasons(emails)


def close_campaign(state: StateLocation, campaign: str, reason: str, *, now: datetime) -> int:
    """Set an unfinished campaign aside on purpose, under the state's lock so
    no send is running it; return how many recipients it still owed.

    The journal keeps the campaign, with when and why it was closed, so the
    next send starts the next issue instead of resuming this one.
    """
    store = open_store(state)
    if not store.has_journal():
        raise ConfigError(f"no journal in {state}; nothing has been sent from here yet",
                          source="--state")
    with store.lock():
        try:
            journal = store.journal
            record = journal.campaign(campaign)
            if record is None:
                known = ", ".join(journal.campaigns()[:10]) or "none"
                raise ConfigError(f"no campaign {campaign!r} in the journal; known: {known}",
                                  source="CAMPAIGN")
            owed = journal.unfinished(campaign)
            if not journal.close_campaign(campaign, reason, stamp(now)):
                raise ConfigError(f"campaign {campaign} was already closed at "
                                  f"{record.closed_at}", source="CAMPAIGN")
            return owed
        finally:
            store.close()
