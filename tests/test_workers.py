"""`digest send --workers N` on a state folder: N real sender processes under one
`digest send`, which holds the folder's lock for them all.

The server is slowed a little (each message's final dot waits), so a test can look at
the run while it is going: its worker processes, a second send refused with 75, a
worker killed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from digest.delivery.workers import start
from tests.helpers import REPO, copies, digest_env, journal, wait_for, write_list
from tests.smtpd import FaultyServer

RECIPIENTS = 200
DELAY = 0.01  # seconds each message waits at its final dot: 4 connections, ~400/s at most


def command(server: FaultyServer, *extra: str) -> list[str]:
    return [sys.executable, "-m", "digest", "send", "--articles", str(REPO / "articles"),
            "--as-of", "2026-11-28", "--list", "workers.csv", "--transport",
            f"smtp://{server.host}:{server.port}", "--concurrency", "4", "--quiet", *extra]


def workers_of(pid: int) -> list[int]:
    """The worker processes of the `digest send` ``pid`` (not multiprocessing's own helper)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in map(int, children):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except FileNotFoundError:
            continue
    return found



def test_two_workers_mail_everyone_once_and_a_second_send_is_refused(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    emails = write_list(tmp_path / "workers.csv", RECIPIENTS, local="w", width=4)
    smtp_server.delay_data(DELAY, times=10 * RECIPIENTS)
    env = digest_env()
    send = subprocess.Popen(command(smtp_server, "--workers", "2", "--report", "report.json"),
                            cwd=tmp_path, env=env)
    wait_for("two workers", lambda: len(workers_of(send.pid)) == 2, send)
    wait_for("a delivery", lambda: smtp_server.received, send)
    second = subprocess.run(command(smtp_server), cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert (second.returncode, second.stdout) == (75, "")
    assert second.stderr.startswith("Error: another digest run holds ")
    assert send.wait(timeout=120) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["sent"], report["sent_this_run"], report["stopped"]) == (RECIPIENTS,) * 2 + (
        None,)
    assert Counter(r for m in smtp_server.received for r in m.rcpt_tos) == Counter(emails)


def test_a_killed_worker_is_reported_and_the_other_takes_over(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    emails = write_list(tmp_path / "workers.csv", RECIPIENTS, local="w", width=4)
    smtp_server.delay_data(DELAY, times=10 * RECIPIENTS)
    send = subprocess.Popen(command(smtp_server, "--workers", "2", "--lease", "1", "--report",
                                    "report.json"),
                            cwd=tmp_path, env=digest_env(), stderr=subprocess.PIPE, text=True)
    wait_for("two workers", lambda: len(workers_of(send.pid)) == 2, send)
    victim = workers_of(send.pid)[0]
    wait_for("a quarter of the deliveries", lambda: len(smtp_server.received) >= RECIPIENTS / 4,
             send)
    os.kill(victim, signal.SIGKILL)
    rows = journal(tmp_path, "status", "claimed_by")
    uncertain = {email for email, (status, holder) in rows.items()
                 if status == "inflight" and holder.split(":")[1] == str(victim)}
    assert len(uncertain) <= 2  # its share of the 4 connections
    _, err = send.communicate(timeout=120)
    assert send.returncode == 3  # the run stopped part-way: one of its workers died
    assert re.fullmatch(
        rf"Error: worker [12] of 2 \(pid {victim}\) died \(killed by SIGKILL\); its recipients "
        r"go to the other workers once its leases end \(--lease\), or to the next run\n", err)
    # The survivor waited for the dead worker's leases to end, then sent what it held.
    sent = copies(smtp_server)
    assert set(sent) == set(emails), "someone was lost"
    twice = {email for email, ids in sent.items() if len(ids) > 1}
    assert twice <= uncertain, "a journalled delivery was sent again"
    assert all(len(set(sent[email])) == 1 for email in twice)
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["sent"], report["resent_after_crash"]) == (RECIPIENTS, len(uncertain))


def test_sigterm_reaches_the_workers_which_finish_what_they_hold(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    emails = write_list(tmp_path / "workers.csv", RECIPIENTS, local="w", width=4)
    smtp_server.delay_data(DELAY, times=10 * RECIPIENTS)
    send = subprocess.Popen(command(smtp_server, "--workers", "2"), cwd=tmp_path,
                            env=digest_env(), stderr=subprocess.PIPE, text=True)
    wait_for("two workers", lambda: len(workers_of(send.pid)) == 2, send)
    wait_for("a few deliveries", lambda: len(smtp_server.received) >= 20, send)
    send.send_signal(signal.SIGTERM)
    _, err = send.communicate(timeout=60)
    assert (send.returncode, err) == (3, (
        "Error: stopped by SIGTERM: the workers sent the messages they had in hand and "
        "claimed no more; progress is saved, run again to send the rest\n"))
    statuses = journal(tmp_path, "status")
    assert {s for (s,) in statuses.values()} == {"sent", "pending"}  # none left in flight
    assert len(smtp_server.received) < RECIPIENTS
    rerun = subprocess.run(command(smtp_server), cwd=tmp_path, env=digest_env(), timeout=120)
    assert rerun.returncode == 0
    assert Counter(r for m in smtp_server.received for r in m.rcpt_tos) == Counter(emails)


def test_workers_die_with_a_send_killed_by_sigkill_and_the_rerun_finishes(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    """kill -9 of the cron job's `digest send` is a crash of the whole send: workers left
    running would keep sending beside the rerun, which clears their claims."""
    emails = write_list(tmp_path / "workers.csv", RECIPIENTS, local="w", width=4)
    smtp_server.delay_data(DELAY, times=10 * RECIPIENTS)
    send = subprocess.Popen(command(smtp_server, "--workers", "2"), cwd=tmp_path,
                            env=digest_env(), stderr=subprocess.DEVNULL)
    wait_for("two workers", lambda: len(workers_of(send.pid)) == 2, send)
    workers = workers_of(send.pid)
    wait_for("a few deliveries", lambda: len(smtp_server.received) >= 20, send)
    send.kill()
    send.wait(timeout=10)
    wait_for("the workers to die", lambda: not any(Path(f"/proc/{w}").exists() for w in workers))
    assert len(smtp_server.received) < RECIPIENTS
    rerun = subprocess.run(command(smtp_server), cwd=tmp_path, env=digest_env(), timeout=120)
    assert rerun.returncode == 0
    received = Counter(r for m in smtp_server.received for r in m.rcpt_tos)
    assert set(received) == set(emails)
    assert sum(received.values()) - len(emails) <= 4  # at most one in flight per connection


def test_a_signal_that_comes_while_the_workers_start_reaches_every_one() -> None:
    """The parent forwards a signal to the workers running when it comes; those it
    starts afterwards are told once all have started, not left to send everything."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=time.sleep, args=(60,)) for _ in range(3)]
    try:
        start(processes, [signal.SIGTERM])  # came before any had started
        for process in processes:
            process.join(30)
        assert [p.exitcode for p in processes] == [-signal.SIGTERM] * 3
    finally:
        for process in processes:
            process.kill()


def test_a_worker_starts_with_ctrl_c_blocked() -> None:
    """A terminal's Ctrl-C reaches the whole process group. A worker keeps it out from
    its first instruction (the parent forwards it as SIGTERM): one that took it while its
    interpreter started would print a traceback above the run's one-line error."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=time.sleep, args=(60,))
    try:
        start([process], [])
        status = Path(f"/proc/{process.pid}/status").read_text()
        blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M)[1], 16)  # type: ignore[index]
        assert blocked & 1 << (signal.SIGINT - 1)
    finally:
        process.kill()
        process.join()


ORPHAN = """
import multiprocessing, os, sys, time
from digest.delivery.workers import die_with_parent

def worker(kernel):
    die_with_parent(kernel=kernel)
    print(os.getpid(), flush=True)
    time.sleep(120)

if __name__ == "__main__":
    multiprocessing.get_context("spawn").Process(target=worker, args=(sys.argv[1] == "kernel",)
                                                 ).start()
    time.sleep(120)
"""


@pytest.mark.parametrize("how", ["kernel", "watch"])
def test_a_worker_dies_with_its_parent_with_or_without_the_kernels_help(
    tmp_path: Path, how: str,
) -> None:
    """On Linux the kernel's parent-death signal kills a worker whose `digest send` was
    killed; elsewhere a thread in the worker watches for it being handed to a new parent."""
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    parent = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE,
                              env=digest_env())
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    wait_for("the worker to die", lambda: not alive(worker))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: not gone, and not a zombie waiting for its new parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
