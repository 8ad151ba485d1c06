"""``digest send --test ADDR``: the current issue to a few addresses, now, for
the editor to look at before the real send.

A test is not a campaign. It selects the articles as a new issue would, but
plans nothing (no resume, no --min-interval wait), writes nothing to the
state (no journal, no campaign record, no suppression, and a state folder
that does not exist is not created) and can be repeated after every edit:
each run has its own campaign name, so each message has a fresh Message-ID
and no receiver takes a second test for a duplicate of the first.

An address in ``--list`` gets the variant and the greeting a real send would
give it, its own choice on the preferences page included: the rows go
through the dry run's read-only path in campaign.py. Any other address gets
the whole digest as a sample reader. A suppressed address still gets the
test, since the editor asked for it, and the result says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from digest.audience.subscribers import ListRow, iter_subscribers
from digest.audience.suppression import checked_addresses
from digest.content.folder import Warn, known_tags, load
from digest.delivery.campaign import ReadOnly, journal_entries
from digest.delivery.issues import plan_issue
from digest.delivery.report import UNSETTLED, UNSETTLED_STATUSES
from digest.delivery.request import SendRequest
from digest.delivery.transport import Delivery, Transport
from digest.email.message import Envelope
from digest.email.signing import new_rid
from digest.email.variants import Variants
from digest.email.wrap import wrap
from digest.errors import ConfigError, DigestError
from digest.model import Subscriber, address_key
from digest.state.store import Store, open_store

PREFIX = "[Test] "
SAMPLE_NAME = "Test Reader"  # the greeting of an address that is in no list
# "built": a dry run's message; "unsent": one an error stopped the run before.
Outcome = Literal["sent", "failed", "deferred", "ambiguous", "skipped", "built", "unsent"]


@dataclass(frozen=True, slots=True)
class SendTestResult:
    """What became of one ``--test`` address. ``stories`` is the size of its
    variant; ``reply`` the server's answer, or why nothing was sent; ``note``
    what a real send would have done differently (a suppression)."""

    address: str
    stories: int
    status: Outcome
    reply: str = ""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SendTestReport:
    """One ``--test`` run; ``stopped`` is the error that ended it part-way."""

    articles: int
    results: tuple[SendTestResult, ...] = ()
    stopped: DigestError | None = None

    @property
    def sent(self) -> int:
        return sum(result.status == "sent" for result in self.results)

    @property
    def exit_code(self) -> int:
        """The codes of ``digest send``: 1 (or the error's own) when an error
        stopped the run before anything went out, 3 when it stopped later or
        any address was refused or deferred, else 0."""
        if self.stopped is not None:
            return UNSETTLED if self.sent else self.stopped.exit_code
        if any(result.status in UNSETTLED_STATUSES for result in self.results):
            return UNSETTLED
        return 0


@dataclass(frozen=True, slots=True)
class _Reader:
    """Who one ``--test`` address is: a subscriber as a real send sees them,
    and why a real send would not mail them (None: it would)."""

    subscriber: Subscriber
    suppressed: str | None = None


def send_test(request: SendRequest, addresses: Sequence[str], *, now: datetime,
              warn: Warn) -> SendTestReport:
    """The issue the options select now, to each of ``addresses``, at once.
    With ``request.dry_run`` the messages are built and nothing is delivered."""
    wanted = _checked(addresses)
    loaded = load(request.source, warn)
    plan = plan_issue(None, request, loaded, now=now)  # no journal: a new issue, always
    if not plan.articles:
        return SendTestReport(0)
    request.render.check()
    campaign = f"test-{secrets.token_hex(8)}-{plan.campaign}"  # a fresh Message-ID per run
    render = dataclasses.replace(request.render, subject_prefix=PREFIX)
    variants = Variants(render, plan.options, plan.articles, campaign=campaign, sent_at=now)
    variants.template(())  # the full digest: a template error stops us before any list work
    store = open_store(request.state, readonly=True)  # creates and writes nothing
    try:
        readers = _readers(store, request, known_tags(loaded), variants, wanted, warn)
    finally:
        store.close()
    built = [_build(variants, readers[address_key(address)], request) for address in wanted]
    envelopes = [envelope for _, envelope in built if envelope is not None]
    if request.dry_run or not envelopes:
        return SendTestReport(len(plan.articles), tuple(result for result, _ in built))
    delivered, stopped = asyncio.run(_deliver(request.transport, envelopes))
    outcomes = iter(delivered)
    results = tuple(_outcome(result, next(outcomes, None)) if envelope is not None else result
                    for result, envelope in built)
    return SendTestReport(len(plan.articles), results, stopped)


def _checked(addresses: Sequence[str]) -> list[str]:
    """The addresses, validated as list rows are; each person once."""
    try:
        checked = checked_addresses(addresses)
    except ConfigError as exc:
        raise ConfigError(exc.message, source="--test") from exc
    unique: dict[str, str] = {}
    for address in checked:
        unique.setdefault(address_key(address), address)
    return list(unique.values())


def _readers(store: Store, request: SendRequest, tags: frozenset[str], variants: Variants,
             wanted: Sequence[str], warn: Warn) -> dict[str, _Reader]:
    """The ``wanted`` addresses as a real send would see them, by address key:
    their list rows with the preferences stored in the state applied, and any
    suppression, by a list or by the state's suppression list."""
    keys = {address_key(address) for address in wanted}
    readers: dict[str, _Reader] = {}
    if request.lists:
        rows = iter_subscribers(list(request.lists), list_format=request.list_format,
                                known_tags=tags)
        mine = _rows_of(rows, keys)
        # The dry run's read-only reading of rows, reused rather than copied, so a test
        # sees a subscriber exactly as a send does.
        for entry in journal_entries(mine, variants, ReadOnly(store.suppressions),
                                     store.preferences, warn):
            key = address_key(entry.email)
            first = readers.get(key)
            suppressed = entry.reason if entry.status == "suppressed" else None
            if first is None:
                prefs = tuple(t for t in entry.tags.split(";") if t)
                readers[key] = _Reader(Subscriber(entry.email, entry.name, prefs), suppressed)
            elif suppressed and not first.suppressed:  # a later row that unsubscribes them
                readers[key] = _Reader(first.subscriber, suppressed)
    for address in wanted:
        key = address_key(address)
        if key not in readers:
            reason = store.suppressions.reason(address)
            readers[key] = _Reader(Subscriber(address, SAMPLE_NAME), reason)
    return readers


def _rows_of(rows: Iterator[ListRow], keys: set[str]) -> Iterator[ListRow]:
    """Only the rows of these people, so the rest of a long list stays quiet."""
    for row in rows:
        if row.subscriber is not None and row.subscriber.key in keys:
            yield row


def _build(variants: Variants, reader: _Reader,
           request: SendRequest) -> tuple[SendTestResult, Envelope | None]:
    subscriber = reader.subscriber
    note = None
    if reader.suppressed:
        note = (f"{subscriber.email} is suppressed ({reader.suppressed}): a real send skips "
                "them; this test goes to them because you asked for it")
    chosen = variants.chosen(subscriber.tags)
    template = variants.template(subscriber.tags)
    if template is None:
        why = f"no article matches their tags ({', '.join(subscriber.tags)})"
        return SendTestResult(subscriber.email, 0, "skipped", why, note), None
    # A fresh recipient id: signed links that lead to no one in the state.
    envelope = template.personalize(subscriber, new_rid())
    if request.wrappers:
        envelope = wrap(envelope, request.wrappers)
    return SendTestResult(subscriber.email, len(chosen), "built", note=note), envelope


async def _deliver(transport: Transport,
                   envelopes: Sequence[Envelope]) -> tuple[list[Delivery], DigestError | None]:
    """Each envelope in turn over one connection; no retries, since the editor
    is watching. An error that no retry could help stops the run there."""
    delivered: list[Delivery] = []
    connection = transport.connection()
    try:
        for envelope in envelopes:
            try:
                delivered.append(await connection.deliver(envelope, _no_journal))
            except DigestError as exc:
                return delivered, exc
    finally:
        await connection.close()
    return delivered, None


async def _no_journal() -> None:
    """A test marks nothing before DATA: nothing of it is recorded."""


def _outcome(result: SendTestResult, delivery: Delivery | None) -> SendTestResult:
    """``result`` as the transport left it; None: the run stopped before it."""
    if delivery is None:
        return dataclasses.replace(result, status="unsent", reply="the run stopped before it")
    reply = f"{delivery.code or ''} {delivery.reply}".strip()
    return dataclasses.replace(result, status=delivery.status, reply=reply)
