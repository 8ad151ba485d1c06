"""One sender's share of a campaign: the jobs it sends and, where senders share
the campaign, the batches it claims.

Senders share a campaign through the journal's claims (``JournalStore.claim``):
each takes a batch of recipients under a lease, renews the lease while it works
through them, and writes its results as a lone sender does. A sender that dies
stops renewing; once its leases end, the others take its recipients over, and
those it had in flight are sent once more as ``ambiguous``, with the same
Message-ID. Before each claim the sender applies the unsubscribes made since
its last look, so they reach every sender within one batch.

When nothing is left to claim but another sender still holds recipients it
has not sent, or has in flight, this one waits for that lease: if its holder
dies, the survivors finish the campaign, with no rerun needed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from digest.delivery.issues import IssuePlan
from digest.delivery.request import SendRequest
from digest.delivery.sender import Job, Sender, SendOptions, Tally, run_jobs
from digest.email.variants import Variants
from digest.email.wrap import Wrapper, wrap
from digest.errors import DigestError, Interrupted, TooManyConnectionErrors
from digest.model import Subscriber
from digest.state.records import Pending, Update, stamp
from digest.state.store import Store

PAGE = 256  # recipients between two looks at the suppression list, at most per claim
_POLL = 0.1  # seconds between two looks at whether another sender's work is done
_KEEP = ("inflight", "deferred")  # a row in these stays claimed (see JournalStore.apply)

Tick = Callable[[Tally, int], None]


@dataclass(frozen=True, slots=True)
class Run:
    """What one sender (or all the workers of one send) did."""

    tally: Tally
    todo: int
    seconds: float
    aborted: str | None = None
    stopped: DigestError | None = None
    recovered: int = 0  # in flight under a lease that ended, sent again by this run


def variants_for(plan: IssuePlan, request: SendRequest, now: datetime) -> Variants:
    request.render.check()
    variants = Variants(request.render, plan.options, plan.articles, campaign=plan.campaign,
                        sent_at=now)
    variants.template(())  # the full digest: a template error stops us before any list work
    return variants


def jobs_for(pendings: Iterable[Pending], variants: Variants,
             wrappers: Sequence[Wrapper]) -> Iterator[Job]:
    """One job per recipient, with the variant their preferences select; none
    for someone no article matches any more."""
    for pending in pendings:
        prefs = tuple(t for t in pending.tags.split(";") if t)
        template = variants.template(prefs)
        if template is not None:
            subscriber = Subscriber(pending.email, pending.name, prefs)
            envelope = template.personalize(subscriber, pending.rid)
            yield Job(wrap(envelope, wrappers) if wrappers else envelope, resend=pending.resend)


def sender_id() -> str:
    """This sender's name in the journal's claims: host and pid, for people, and a
    random part, since two containers may share both."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Claims:
    """The recipients one sender holds in ``campaign``, and the ``Recorder`` its
    Sender writes through, so that it knows which of them it still holds."""

    def __init__(self, store: Store, campaign: str, options: SendOptions, mark: str) -> None:
        self.store = store
        self.campaign = campaign
        self.lease = options.lease
        # Small enough that senders share the work evenly, and that a dead sender's
        # recipients are not held long; big enough to claim seldom. (Over PostgreSQL
        # a survivor reaches them when its claims come back round to their keys.)
        self.batch = max(16, min(PAGE, 8 * options.concurrency))
        self.me = sender_id()
        self.recovered = 0
        self._mark = mark  # the suppressions added from here on are still to apply
        self._held: set[str] = set()  # claimed and not yet done with: leases to renew
        self._holding = threading.Lock()  # the sender's marks may arrive from its thread
        self._stopping = False

    def stop(self) -> None:
        """Claim nothing more (a signal): the recipients in hand are still sent."""
        self._stopping = True

    def stopping(self) -> bool:
        return self._stopping

    def pending(self) -> Iterator[Pending]:
        journal = self.store.journal
        while not self._stopping:
            looked, self._mark = self._mark, stamp(self.store.clock())
            self.store.apply_suppressions(self.campaign, since=looked)
            now = self.store.clock()  # the state's: the other senders' leases are read by it
            self.recovered += journal.reclaim(self.campaign, now)
            batch = journal.claim(self.campaign, self.me, self.batch, self.lease, now)
            if not batch:
                return
            with self._holding:
                self._held.update(p.email for p in batch)
            for pending in batch:
                if self._stopping:
                    return
                yield pending

    @property
    def apply_in_thread(self) -> bool:
        return self.store.journal.apply_in_thread

    def apply(self, campaign: str, updates: Sequence[Update]) -> None:
        """The sender's marks; in a thread of its own where the journal allows."""
        self.store.journal.apply(campaign, updates)
        with self._holding:
            self._held.difference_update(u.email for u in updates if u.status not in _KEEP)

    def renew(self) -> None:
        with self._holding:
            held = sorted(self._held)
        if not held:
            return
        # A journal failing here fails the sender's next mark too, which stops the run.
        with contextlib.suppress(DigestError):
            self.store.journal.renew(self.campaign, self.me, held, self.lease,
                                     self.store.clock())

    def wait(self) -> bool:
        """Out of work: wait while another sender's live lease holds recipients not
        yet sent; True when there may be more to claim. A lease that ended since
        this sender's last claim counts too, as do recipients no one holds (given
        up by a sender that stopped, or reclaimed from a dead one): they would
        otherwise be left for the next run."""
        while not self._stopping:
            left = self.store.journal.held(self.campaign, self.me, self.store.clock())
            if left is None:
                return False
            pause = min(max(left, 0.05), _POLL, self.lease / 2)
            deadline = time.monotonic() + pause
            while not self._stopping and time.monotonic() < deadline:
                time.sleep(min(0.1, pause))
            if left <= pause:
                return True
        return False

    def release(self) -> None:
        self.store.journal.release(self.campaign, self.me)


@contextlib.contextmanager
def stopping_signals(stop: Callable[[], None]) -> Iterator[list[int]]:
    """While inside, SIGTERM and SIGINT call ``stop`` (which ends the run gently)
    instead of killing the process; the list says which came. Outside the main
    thread there are no signals to take: the caller has them."""
    came: list[int] = []

    def caught(signum: int, frame: object) -> None:
        came.append(signum)
        stop()

    try:
        before = {s: signal.signal(s, caught) for s in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:
        before = {}
    try:
        yield came
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def deliver_until_stopped(claims: Claims, variants: Variants, request: SendRequest, todo: int,
                          on_tick: Tick | None) -> Run:
    """``deliver_claimed`` in the process that took SIGTERM or Ctrl-C itself: the
    sender sends what it has in hand, claims no more, and gives back the rest at
    once, rather than leaving it to the other senders when its leases end."""
    with stopping_signals(claims.stop) as came:
        run = deliver_claimed(claims, variants, request, todo, on_tick)
    return stopped_by_signal(run, came, "this sender sent the messages it had in hand and "
                             "claimed no more")


def stopped_by_signal(run: Run, came: Sequence[int], what: str) -> Run:
    """``run``, as stopped by the first signal that came (``what`` the sender did
    then), unless none came or something else stopped it first."""
    if not came or run.stopped is not None:
        return run
    return replace(run, stopped=Interrupted(came[0], what))


def deliver_claimed(claims: Claims, variants: Variants, request: SendRequest, todo: int,
                    on_tick: Tick | None) -> Run:
    """Claim, send, and claim again until nothing is left that this sender may take.
    An error that stops it is kept, not raised, as ``campaign._deliver`` does."""
    tally = Tally()
    sending = time.monotonic()
    tick = (lambda t: on_tick(t, todo)) if on_tick else None
    aborted: str | None = None
    stopped: DigestError | None = None
    try:
        while True:
            sender = Sender(claims, claims.campaign, request.transport, request.options, tally,
                            claims.stopping)
            jobs = jobs_for(claims.pending(), variants, request.wrappers)
            run_jobs(sender, jobs, on_tick=tick, keepalive=(claims.lease / 3, claims.renew))
            if not claims.wait():
                break
    except TooManyConnectionErrors as exc:
        aborted = str(exc)
    except DigestError as exc:
        stopped = exc
    try:
        claims.release()
    except DigestError as exc:  # its leases end by themselves; the run is over anyway
        stopped = stopped or exc
    return Run(tally, todo, time.monotonic() - sending, aborted, stopped, claims.recovered)
