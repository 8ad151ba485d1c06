"""``digest send --workers N``: N sender processes under one send.

The parent does what one send does up to the sending: it holds the state's
lock (shared on PostgreSQL), pins the campaign, records the lists and applies
the suppressions. Then it starts N worker processes (multiprocessing, spawn)
and waits. Each worker makes the request again from the command's options
(``Rebuild``: the messages' keys and signers cannot cross a process boundary),
resumes the pinned campaign, and claims its recipients through the store
(delivery/claims.py) with its share of --concurrency and --rate. No
coordinator hands out work: the journal's claims are the coordination, on
SQLite as on PostgreSQL.

The parent adds the workers' tallies into one report and forwards SIGTERM and
SIGINT to them as SIGTERM, on which a worker claims nothing more, finishes
the messages in hand and stops. A worker that dies is reported; its leases
end and the others, or the next run, take its recipients over.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from typing import Any

from digest.content.folder import load
from digest.delivery.claims import (
    Claims,
    Run,
    Tick,
    deliver_claimed,
    stopping_signals,
    variants_for,
)
from digest.delivery.issues import journal_now, plan_issue
from digest.delivery.request import SendRequest
from digest.delivery.sender import SendOptions, Tally
from digest.errors import DigestError, Interrupted
from digest.state.store import open_store

Rebuild = Callable[[], SendRequest]
_TICK = 0.5  # seconds between two looks at whether the workers are still alive
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LINUX = sys.platform.startswith("linux")
_WATCH = 0.2  # seconds between a worker's looks at its parent, where prctl is not offered
Messages = Any  # a multiprocessing queue of (kind, worker index, body)


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What every worker is told: how to make the request again, which campaign,
    how many of them, the run's clock, and the suppression mark to start from."""

    rebuild: Rebuild
    campaign: str
    count: int
    now: datetime
    mark: str


class WorkerStopped(DigestError):
    """What stopped a worker (or all of them), as the parent reports it."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def worker_count(request: SendRequest, todo: int, can_spawn: bool) -> int:
    """--workers, capped by --concurrency (each worker needs a connection) and by
    the recipients to send. Without it, one: measured on two cores against a
    local sink, a second worker was slower, not faster (README, "Scaling out"),
    so more processes are the operator's choice, not a default."""
    options = request.options
    if not can_spawn or not request.journal or todo < 2:
        return 1  # an in-memory journal (the benchmark's) cannot be shared
    return max(1, min(options.workers or 1, options.concurrency, todo))


def share(options: SendOptions, index: int, count: int) -> SendOptions:
    """Worker ``index`` of ``count``'s connections and rate: together, the options'."""
    connections = options.concurrency // count + (index < options.concurrency % count)
    rate = None if options.rate is None else options.rate / count
    return dataclasses.replace(options, concurrency=connections, rate=rate, workers=1)


def run_workers(plan: WorkerPlan, options: SendOptions, todo: int, on_tick: Tick | None) -> Run:
    """Start ``plan.count`` workers, wait for them all, and add up what they did."""
    context = multiprocessing.get_context("spawn")
    results: Messages = context.Queue()
    processes = [context.Process(target=work, args=(plan, index, results),
                                 name=f"digest-send-worker-{index + 1}")
                 for index in range(plan.count)]
    tallies: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    started = time.monotonic()
    readied: list[float] = []
    with _forwarding(processes) as signals:
        start(processes, signals)
        for kind, index, body in _messages(results, processes):
            if kind == "ready":
                # The sending starts when the first worker starts it, as one sender's
                # does after its render: each worker's start-up and render come first.
                readied.append(float(body["at"]))
                started = min(readied)
                continue
            tallies[index] = body
            if kind == "done":
                done[index] = body
            if on_tick is not None:
                on_tick(_total(tallies, started), todo)
    tally = _total(tallies, started)
    stopped = _stopped(processes, done, signals)
    aborted = next((str(d["aborted"]) for d in done.values() if d.get("aborted")), None)
    recovered = sum(int(d.get("recovered", 0)) for d in done.values())
    return Run(tally, todo, time.monotonic() - started, aborted, stopped, recovered)


def _messages(results: Messages,
              processes: Sequence[BaseProcess]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The workers' messages until every worker has said it is done, or ended."""
    said_done: set[int] = set()
    while len(said_done) < len(processes):
        try:
            kind, index, body = results.get(timeout=_TICK)
        except queue.Empty:
            if not any(p.is_alive() for p in processes):
                break
            continue
        if kind == "done":
            said_done.add(index)
        yield kind, index, body
    for process in processes:
        process.join()
    while True:  # what a worker put just before it ended
        try:
            yield results.get(timeout=0.05)
        except queue.Empty:
            return


def _total(tallies: dict[int, dict[str, Any]], started: float) -> Tally:
    tally = Tally(started=started)
    for body in tallies.values():
        for status, count in body.get("counts", {}).items():
            tally.counts[status] = tally.counts.get(status, 0) + int(count)
        tally.retries += int(body.get("retries", 0))
    return tally


def _stopped(processes: Sequence[BaseProcess], done: dict[int, dict[str, Any]],
             signals: list[int]) -> DigestError | None:
    """The first reason the run stopped part-way: a signal, a worker's error, or a
    worker that died without a word."""
    if signals:
        return Interrupted(signals[0], "the workers sent the messages they had in hand and "
                           "claimed no more")
    for index, process in enumerate(processes):
        body = done.get(index)
        if body is None:
            code = process.exitcode or 0
            how = (f"killed by {signal.Signals(-code).name}" if code < 0
                   else f"exit status {code}")
            return WorkerStopped(
                f"worker {index + 1} of {len(processes)} (pid {process.pid}) died ({how}); "
                "its recipients go to the other workers once its leases end (--lease), "
                "or to the next run")
        if body.get("stopped"):
            return WorkerStopped(str(body["stopped"]), int(body.get("code", 1)))
    return None


def start(processes: Sequence[BaseProcess], signals: list[int]) -> None:
    """Start the workers. A signal that came while they started reached only those
    already running, so the rest hear it once they are. Each starts with SIGINT
    blocked, as it keeps it (the parent forwards it): else a terminal's Ctrl-C
    reaching the process group as a worker's interpreter starts would print its
    traceback."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for process in processes:
            process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    if signals:
        _forward(processes)


def _forwarding(processes: Sequence[BaseProcess]) -> AbstractContextManager[list[int]]:
    """SIGTERM and SIGINT reach the workers as SIGTERM; the list says which came."""
    return stopping_signals(functools.partial(_forward, processes))


def _forward(processes: Sequence[BaseProcess]) -> None:
    for process in processes:
        if process.pid is not None and process.exitcode is None:
            os.kill(process.pid, signal.SIGTERM)


def die_with_parent(kernel: bool = _LINUX) -> None:
    """Kill this worker when the parent dies, as a ``kill -9`` of the cron job's
    ``digest send`` does: a worker left running would go on sending beside the
    rerun, which clears every claim on the folder it then holds. On Linux the
    kernel does it (prctl's parent-death signal); elsewhere a thread watches for
    the worker being handed to another parent, within ``_WATCH``."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if kernel:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent.pid,), daemon=True,
                         name="digest parent watch").start()
    if os.getppid() != parent.pid:  # it died before we asked
        os._exit(1)


def _watch_parent(pid: int) -> None:
    while os.getppid() == pid:
        time.sleep(_WATCH)
    os.kill(os.getpid(), signal.SIGKILL)  # a crash, as the kernel's signal would be


def work(plan: WorkerPlan, index: int, results: Messages) -> None:
    """A worker process: its share of the campaign, then one "done" message."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards it as SIGTERM

    def tick(tally: Tally, todo: int) -> None:
        results.put(("tick", index, {"counts": dict(tally.counts), "retries": tally.retries}))

    def ready() -> None:
        results.put(("ready", index, {"at": time.monotonic()}))

    try:
        run = _work(plan, index, tick, ready)
    except DigestError as exc:
        results.put(("done", index, {"stopped": str(exc), "code": exc.exit_code}))
        return
    body: dict[str, Any] = {"counts": dict(run.tally.counts), "retries": run.tally.retries,
                            "recovered": run.recovered, "aborted": run.aborted}
    if run.stopped is not None:
        body.update(stopped=str(run.stopped), code=run.stopped.exit_code)
    results.put(("done", index, body))


def _work(plan: WorkerPlan, index: int, tick: Tick, ready: Callable[[], None]) -> Run:
    request = plan.rebuild()
    request = dataclasses.replace(request, campaign=plan.campaign,
                                  options=share(request.options, index, plan.count))
    loaded = load(request.source, lambda message: None)  # the parent warned already
    store = open_store(request.state)
    try:
        issue = plan_issue(store.journal, request, loaded, now=journal_now(store, plan.now))
        if issue.wait or not issue.articles:  # closed since the parent looked
            return Run(Tally(), 0, 0.0)
        variants = variants_for(issue, request, plan.now)
        claims = Claims(store, plan.campaign, request.options, plan.mark)
        signal.signal(signal.SIGTERM, lambda signum, frame: claims.stop())
        ready()
        return deliver_claimed(claims, variants, request, 0, tick)
    finally:
        store.close()
