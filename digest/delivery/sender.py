"""The sending engine: workers, rate limit, retries, and the journal.

``concurrency`` workers each own one connection. A global token bucket caps
the rate and halves it whenever a server answers 421 or 454. A transient
failure goes back in the queue after an exponential backoff with jitter, up
to ``max_attempts`` tries in this run; after that the recipient stays
``deferred`` for the next run. Journal writes ride together: every commit
carries whatever results are waiting plus the next recipient's ``inflight``
mark, which must be on disk before its DATA; results that no mark follows
within a tenth of a second commit by themselves. Where a commit waits on a server
(PostgreSQL), it runs in a thread, one at a time, while the loop goes on with
the other connections; the marks made meanwhile ride in the next commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from digest.delivery.rate import STOP_POLL, TokenBucket
from digest.delivery.transport import Connection, Delivery, Transport
from digest.email.message import Envelope
from digest.errors import DigestError, TooManyConnectionErrors
from digest.state.records import Update

# Seconds a result may wait for a commit to ride in before it commits alone.
RESULTS_WAIT = 0.1


@dataclass(frozen=True, slots=True)
class SendOptions:
    concurrency: int = 8
    rate: float | None = None
    max_attempts: int = 3
    max_connection_errors: int = 50
    retry_delay: float = 1.0  # the first backoff step, in seconds
    workers: int | None = None  # sender processes; None: see workers.worker_count
    lease: float = 60.0  # seconds a claim holds its recipients for a sender that stops renewing


@dataclass(frozen=True, slots=True)
class Job:
    """One recipient to send to in this run."""

    envelope: Envelope
    resend: bool = False  # an ambiguous recipient's one extra try


@dataclass(slots=True)
class Tally:
    """What this run did, for progress lines and the report."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    retries: int = 0

    def add(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    @property
    def sent(self) -> int:
        return self.counts.get("sent", 0)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Recorder(Protocol):
    """Where the sender writes its marks: the journal, or a sender's claims over it."""

    @property
    def apply_in_thread(self) -> bool:
        """Whether ``apply`` may run in a thread while the loop uses the journal."""

    def apply(self, campaign: str, updates: Sequence[Update]) -> None: ...


class Sender:
    """Send jobs through ``transport``, recording every step in ``journal``.

    Jobs are pulled lazily from an iterator, so a list of any size streams
    through; retries wait in a timer, then jump the queue.
    """

    def __init__(self, journal: Recorder, campaign: str, transport: Transport,
                 options: SendOptions, tally: Tally,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.journal = journal
        self.campaign = campaign
        self._stopping = stopping  # a signal came: begin nothing more, not even a retry
        self.transport = transport
        self.options = options
        self.tally = tally
        self.bucket = TokenBucket(options.rate)
        self._waiting: list[Update] = []
        self._ready: deque[tuple[Job, int]] = deque()
        self._backing_off = 0
        self._wakeup = asyncio.Event()
        self._connection_errors = 0
        self._fatal: BaseException | None = None
        self._flushed: asyncio.Future[None] | None = None  # the next commit, awaited by marks
        self._committing: asyncio.Future[None] | None = None  # a commit in the thread
        self._thread = ThreadPoolExecutor(1, "marks") if journal.apply_in_thread else None
        self._results_due: asyncio.TimerHandle | None = None
        self._unbegun: set[asyncio.Task[None]] = set()  # workers yet to ask a message's mark
        self._cut: set[asyncio.Task[None]] = set()  # those a stop cancelled

    def _commit(self, *extra: Update) -> None:
        updates = [*self._waiting, *extra]
        self._waiting = []
        if not updates:
            return
        try:
            self.journal.apply(self.campaign, updates)
        except Exception:
            # Keep the results for a later commit, but not the in-flight marks:
            # those recipients will not reach DATA now, and a mark written later
            # would make the rerun report them as "sent again".
            self._waiting = [u for u in updates if u.status != "inflight"]
            raise

    async def run(self, jobs: Iterable[Job]) -> None:
        source = iter(jobs)
        workers = [asyncio.create_task(self._worker(source))
                   for _ in range(self.options.concurrency)]
        watch = asyncio.create_task(self._cut_unbegun_on_stop())
        try:
            await asyncio.gather(*workers)
        finally:
            watch.cancel()
            while self._committing is not None:
                await asyncio.wait([self._committing])
            if self._results_due is not None:
                self._results_due.cancel()
            if self._thread is not None:
                self._thread.shutdown()
            self._commit()
        if self._fatal is not None:
            raise self._fatal

    async def _next(self, source: Iterator[Job]) -> tuple[Job, int] | None:
        """The next job: a retry whose backoff is over, else the next from ``source``.
        A retry left waiting when the run stops is already journalled as deferred."""
        while self._fatal is None and not self._stopping():
            if self._ready:
                return self._ready.popleft()
            job = next(source, None)
            if job is not None:
                return job, 1
            if not self._backing_off:
                return None
            self._wakeup.clear()
            # A signal's handler cannot wake the loop, so a backoff is waited in steps.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), STOP_POLL)
        return None

    async def _worker(self, source: Iterator[Job]) -> None:
        async with _connection(self.transport) as connection:
            while (item := await self._next(source)) is not None:
                job, attempt = item
                await self.bucket.acquire(self._halted)
                if self._halted():  # stopped while waiting its turn: not yet begun
                    break
                try:
                    delivery = await self._deliver(connection, job, attempt)
                except asyncio.CancelledError:
                    if not self._cut_here():
                        raise
                    break  # stopped while the message had not begun
                except DigestError as exc:
                    # A transport raises only for a message it did not deliver, so an
                    # in-flight mark already written must not read as "maybe sent".
                    self._waiting.append(Update(job.envelope.recipient, "deferred",
                                                reply=f"not sent: {exc}"))
                    self._stop(exc)
                    break
                await self._record(job, attempt, delivery)
        self._wakeup.set()  # let idle workers re-check whether anything is left

    def _halted(self) -> bool:
        """Whether to begin nothing more: a signal came, or an error stopped the run."""
        return self._fatal is not None or self._stopping()

    async def _deliver(self, connection: Connection, job: Job, attempt: int) -> Delivery:
        task = asyncio.current_task()
        assert task is not None
        self._unbegun.add(task)

        def begin() -> asyncio.Future[None]:
            self._unbegun.discard(task)
            return self._mark_inflight(job, attempt)

        try:
            return await connection.deliver(job.envelope, begin)
        finally:
            self._unbegun.discard(task)

    async def _cut_unbegun_on_stop(self) -> None:
        """A connection still opening, or waiting on a slow server's replies to MAIL
        and RCPT, has begun no message: a stop cancels it, rather than wait for it up
        to --timeout. A message whose mark was asked for goes on to its end. The cut
        is made again at each look: on Python 3.11 a wait_for whose reply had just
        come drops the cancel, and the connection goes on to MAIL."""
        while True:
            await asyncio.sleep(STOP_POLL)
            if self._stopping():
                for task in self._unbegun:
                    self._cut.add(task)
                    task.cancel()

    def _cut_here(self) -> bool:
        task = asyncio.current_task()
        if task not in self._cut:
            return False
        assert task is not None
        while task.cancelling():
            task.uncancel()
        return True

    def _mark_inflight(self, job: Job, attempt: int) -> asyncio.Future[None]:
        """Mark this recipient in flight; the future is done once the mark is committed.

        Group commit: every worker that asks in the same turn of the event loop
        joins one transaction, with whatever results are waiting.
        """
        self._waiting.append(Update(job.envelope.recipient, "inflight",
                                    resend=job.resend and attempt == 1))
        if self._flushed is None:
            self._flushed = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._group_commit)
        return self._flushed

    def _group_commit(self) -> None:
        if self._thread is not None:
            if self._committing is None and self._flushed is not None:
                self._commit_in_thread(self._thread)
            return
        flushed, self._flushed = self._flushed, None
        assert flushed is not None
        try:
            self._commit()
        except Exception as exc:  # the journal failed: no one may go to DATA
            flushed.set_exception(exc)
        else:
            flushed.set_result(None)

    def _commit_in_thread(self, thread: ThreadPoolExecutor) -> None:
        flushed, self._flushed = self._flushed, None
        assert flushed is not None
        updates, self._waiting = self._waiting, []
        self._committing = asyncio.get_running_loop().run_in_executor(
            thread, self.journal.apply, self.campaign, updates)
        self._committing.add_done_callback(
            functools.partial(self._committed, thread, flushed, updates))

    def _committed(self, thread: ThreadPoolExecutor, flushed: asyncio.Future[None],
                   updates: list[Update], done: asyncio.Future[None]) -> None:
        self._committing = None
        failed = done.exception()
        if failed is not None:  # as in _commit: keep the results, not the in-flight marks
            self._waiting[:0] = [u for u in updates if u.status != "inflight"]
            flushed.set_exception(failed)
        else:
            flushed.set_result(None)
        if self._flushed is not None:  # marks made during this commit: the next one
            self._commit_in_thread(thread)

    async def _record(self, job: Job, attempt: int, delivery: Delivery) -> None:
        if delivery.connection:
            self._connection_errors += 1
            if self._connection_errors >= self.options.max_connection_errors:
                last = f"{delivery.code or ''} {delivery.reply}".strip()
                self._stop(TooManyConnectionErrors(self._connection_errors, last))
        else:
            self._connection_errors = 0
        if delivery.throttled:
            self.bucket.slow_down(self.tally.sent / max(self.tally.elapsed, 0.001))
        elif delivery.status == "sent":
            self.bucket.speed_up()
        retry = (delivery.status == "deferred" and attempt < self.options.max_attempts
                 and self._fatal is None)
        self._waiting.append(Update(job.envelope.recipient, delivery.status, delivery.code,
                                    delivery.reply or None, attempted=not delivery.connection,
                                    bounced=delivery.bounce))
        if self._results_due is None:
            self._results_due = asyncio.get_running_loop().call_later(RESULTS_WAIT,
                                                                      self._commit_results)
        if not retry:
            self.tally.add(delivery.status)
            return
        self.tally.retries += 1
        delay = self.options.retry_delay * 2 ** (attempt - 1) * (0.5 + random.random())
        self._backing_off += 1
        asyncio.get_running_loop().call_later(delay, self._retry, job, attempt + 1)
        if delivery.connection:  # the connection failed: give the server a rest too
            resting = time.monotonic() + delay
            while not self._stopping() and (left := resting - time.monotonic()) > 0:
                await asyncio.sleep(min(left, STOP_POLL))

    def _commit_results(self) -> None:
        """Results ride in the commit of the next in-flight mark. When none has come
        within RESULTS_WAIT (the tail of a run backing off to retry, a slow --rate),
        they commit by themselves: a recipient already delivered must not sit in
        flight, where a kill would have the rerun send them a second copy."""
        self._results_due = None
        if self._waiting and self._flushed is None:
            flushed = self._flushed = asyncio.get_running_loop().create_future()
            # No one waits on this commit; a failure keeps the results for the next one.
            flushed.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._group_commit()

    def _retry(self, job: Job, attempt: int) -> None:
        self._backing_off -= 1
        self._ready.append((job, attempt))
        self._wakeup.set()

    def _stop(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._wakeup.set()


@asynccontextmanager
async def _connection(transport: Transport) -> AsyncIterator[Connection]:
    connection = transport.connection()
    try:
        yield connection
    finally:
        await connection.close()


def run_jobs(sender: Sender, jobs: Iterable[Job],
             on_tick: Callable[[Tally], None] | None = None, tick: float = 1.0,
             keepalive: tuple[float, Callable[[], None]] | None = None) -> None:
    """Run ``sender`` over ``jobs`` to completion; ``on_tick`` hears its tally
    every ``tick`` seconds, and ``keepalive`` is (every how many seconds, what to
    call): a sender's claims renew their leases so."""
    tally = sender.tally

    async def main() -> None:
        timers = [asyncio.create_task(_every(tick, functools.partial(on_tick, tally)))
                  for _ in [on_tick] if on_tick is not None]
        if keepalive is not None:
            timers.append(asyncio.create_task(_every(*keepalive)))
        try:
            await sender.run(jobs)
        finally:
            for timer in timers:
                timer.cancel()

    asyncio.run(main())


async def _every(seconds: float, call: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        call()
