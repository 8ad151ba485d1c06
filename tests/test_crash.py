"""Kill -9 a real `digest send` mid-run, run it again, and count what arrived.

The promise: no one is lost, and no one whose delivery was journalled gets the
issue twice. Only the recipients in flight at the kill (at most one per
connection) may get a second copy, and then with the same Message-ID.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import closing
from pathlib import Path

import pytest

from tests.helpers import REPO, digest_env, in_flight, write_list
from tests.smtpd import FaultyServer

RECIPIENTS = 300
LONG_LIST = 100_000  # rows: seconds to read into the journal
CONCURRENCY = 4


def command(server: FaultyServer, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "digest", "send", "--articles", str(REPO / "articles"),
            "--as-of", "2026-11-28", "--list", "crash.csv", "--transport",
            f"smtp://{server.host}:{server.port}", "--concurrency", str(CONCURRENCY),
            "--report", "report.json", "--quiet"]


def test_sigkill_mid_run_then_rerun_loses_no_one(tmp_path: Path, smtp_server: FaultyServer) -> None:
    emails = write_list(tmp_path / "crash.csv", RECIPIENTS, local="crash", width=4)
    env = digest_env()
    # After a third of the list the server holds one message on each connection, so the
    # kill lands mid-run however fast the sender is.
    smtp_server.delay_data(120, times=CONCURRENCY, after=RECIPIENTS // 3)
    first = subprocess.Popen(command(smtp_server, tmp_path), cwd=tmp_path, env=env)
    deadline = time.monotonic() + 60
    while smtp_server.pending_faults:
        assert first.poll() is None, "the sender finished before it could be killed"
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    delivered_before = len(smtp_server.received)
    assert delivered_before == RECIPIENTS // 3 + CONCURRENCY
    uncertain = in_flight(tmp_path)
    print("in flight at the kill:", len(uncertain), "delivered:", delivered_before)
    assert len(uncertain) <= CONCURRENCY

    second = subprocess.run(command(smtp_server, tmp_path), cwd=tmp_path, env=env, timeout=120)
    assert second.returncode == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["sent"] == RECIPIENTS

    copies: dict[str, list[str | None]] = defaultdict(list)
    for message in smtp_server.received:
        for rcpt in message.rcpt_tos:
            copies[rcpt].append(message.message_id)
    counts = Counter({email: len(ids) for email, ids in copies.items()})
    assert set(counts) == set(emails), "someone was lost"
    twice = {email for email, n in counts.items() if n > 1}
    assert max(counts.values()) <= 2
    assert twice <= uncertain, "a journalled delivery was sent again"
    for email in twice:
        assert len(set(copies[email])) == 1, "a resend must keep its Message-ID"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_sends_what_is_in_hand_and_the_rerun_mails_no_one_twice(
    tmp_path: Path, smtp_server: FaultyServer, how: signal.Signals,
) -> None:
    """SIGTERM (systemd, a container's stop) or Ctrl-C: the sender finishes the
    messages it has begun, begins no more, writes its report and exits 3. Unlike a
    kill, it leaves no one in flight, so the rerun has no one to send twice."""
    emails = write_list(tmp_path / "crash.csv", RECIPIENTS, local="stop", width=4)
    smtp_server.delay_data(1, times=CONCURRENCY, after=RECIPIENTS // 3)
    first = subprocess.Popen(command(smtp_server, tmp_path), cwd=tmp_path, env=digest_env(),
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while smtp_server.pending_faults:
        assert first.poll() is None, "the sender finished before the signal"
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)
    first.send_signal(how)
    _, err = first.communicate(timeout=60)
    assert (first.returncode, err) == (3, (
        f"Error: stopped by {how.name}: the messages in hand were sent and no more begun; "
        "progress is saved, run again to send the rest\n"))
    assert len(smtp_server.received) == RECIPIENTS // 3 + CONCURRENCY
    assert in_flight(tmp_path) == set()
    assert json.loads((tmp_path / "report.json").read_text())["sent"] == len(
        smtp_server.received)

    second = subprocess.run(command(smtp_server, tmp_path), cwd=tmp_path, env=digest_env(),
                            timeout=120)
    assert second.returncode == 0
    sent = Counter(rcpt for message in smtp_server.received for rcpt in message.rcpt_tos)
    assert set(sent) == set(emails)
    assert max(sent.values()) == 1


def test_a_kill_while_the_run_backs_off_to_retry_resends_no_one_delivered(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    """Results ride in the next in-flight mark's commit. At the tail of a run only a
    retry is left, and no mark comes for as long as it backs off; the results commit
    by themselves meanwhile, so a kill then makes no delivered recipient ambiguous."""
    emails = write_list(tmp_path / "crash.csv", 40, local="tail", width=4)
    smtp_server.fail_rcpt(emails[-1], 451, "try again later", times=1)
    slow_retry = [*command(smtp_server, tmp_path), "--retry-delay", "60"]
    first = subprocess.Popen(slow_retry, cwd=tmp_path, env=digest_env())
    deadline = time.monotonic() + 60
    while len(smtp_server.received) < len(emails) - 1:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(1)  # ten times the wait, and still backing off for 30 s or more
    assert first.poll() is None
    assert in_flight(tmp_path) == set()
    first.send_signal(signal.SIGKILL)
    first.wait()
    rerun = subprocess.run(command(smtp_server, tmp_path), cwd=tmp_path, env=digest_env(),
                           timeout=120)
    assert rerun.returncode == 0
    sent = Counter(rcpt for message in smtp_server.received for rcpt in message.rcpt_tos)
    assert set(sent) == set(emails)
    assert max(sent.values()) == 1


def test_a_signal_while_only_a_retry_is_left_stops_at_once(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    """The retry still backing off is not "in hand": it is journalled as deferred,
    so the run stops now, not after --retry-delay, and the rerun sends it."""
    emails = write_list(tmp_path / "crash.csv", 40, local="late", width=4)
    smtp_server.fail_rcpt(emails[-1], 451, "try again later", times=1)
    first = subprocess.Popen([*command(smtp_server, tmp_path), "--retry-delay", "60"],
                             cwd=tmp_path, env=digest_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(smtp_server.received) < len(emails) - 1 or smtp_server.pending_faults:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    signalled = time.monotonic()
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert time.monotonic() - signalled < 10  # not the 30 s or more of the backoff
    assert (first.returncode, err) == (3, (
        "Error: stopped by SIGTERM: the messages in hand were sent and no more begun; "
        "progress is saved, run again to send the rest\n"))
    assert len(smtp_server.received) == len(emails) - 1
    rerun = subprocess.run(command(smtp_server, tmp_path), cwd=tmp_path, env=digest_env(),
                           timeout=120)
    assert rerun.returncode == 0
    sent = Counter(rcpt for message in smtp_server.received for rcpt in message.rcpt_tos)
    assert set(sent) == set(emails) and max(sent.values()) == 1


def test_a_signal_under_a_slow_rate_begins_nothing_more(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    """Under --rate, each connection waits its turn for a token. A turn that comes
    after the signal is not taken: the run ends at once, not a message per token later."""
    write_list(tmp_path / "crash.csv", 40, local="rate", width=4)
    first = subprocess.Popen([*command(smtp_server, tmp_path), "--rate", "2"], cwd=tmp_path,
                             env=digest_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(smtp_server.received) < 3:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    begun, signalled = len(smtp_server.received), time.monotonic()
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert time.monotonic() - signalled < 2
    assert first.returncode == 3, err
    assert len(smtp_server.received) - begun <= 1  # one begun as the signal came, at most
    assert in_flight(tmp_path) == set()


def test_a_signal_while_resting_after_a_connection_failure_stops_at_once(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    """After a connection fails, the sender rests for the backoff before it tries
    again. A signal then ends the run within a moment, and with 3 (run again), not 1
    (nothing sent: bad input), though nothing was sent."""
    write_list(tmp_path / "crash.csv", 5, local="rest", width=4)
    smtp_server.fail_greeting(421, times=1)
    first = subprocess.Popen([*command(smtp_server, tmp_path), "--concurrency", "1",
                              "--retry-delay", "40"], cwd=tmp_path, env=digest_env(),
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while smtp_server.pending_faults:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.5)
    signalled = time.monotonic()
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert time.monotonic() - signalled < 5  # not the 20 s or more of the backoff
    assert (first.returncode, err) == (3, (
        "Error: stopped by SIGTERM: the messages in hand were sent and no more begun; "
        "progress is saved, run again to send the rest\n"))
    assert smtp_server.received == []


def _stall_after_ehlo(listener: socket.socket) -> None:
    """A server that greets and answers EHLO, then never answers MAIL."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        connection.sendall(b"220 slow.example.org ESMTP\r\n")
        connection.recv(1024)
        connection.sendall(b"250 slow.example.org\r\n")


@pytest.mark.parametrize("stall", ["greeting", "mail"])
def test_a_signal_while_a_slow_server_has_begun_no_message_stops_at_once(
    tmp_path: Path, smtp_server: FaultyServer, stall: str,
) -> None:
    """A connection still waiting for the server's greeting, or for its reply to
    MAIL, has begun no message; a signal does not wait out --timeout for it."""
    write_list(tmp_path / "crash.csv", 5, local="slow", width=4)
    with socket.socket() as slow:  # the kernel accepts for it; it says nothing itself
        slow.bind(("127.0.0.1", 0))
        slow.listen()
        if stall == "mail":
            threading.Thread(target=_stall_after_ehlo, args=(slow,), daemon=True).start()
        first = subprocess.Popen(
            [*command(smtp_server, tmp_path), "--transport",
             f"smtp://127.0.0.1:{slow.getsockname()[1]}", "--timeout", "60"],
            cwd=tmp_path, env=digest_env(), stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # the render, and then the connections' wait
        signalled = time.monotonic()
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=90)
        slow.shutdown(socket.SHUT_RDWR)
    assert time.monotonic() - signalled < 5  # not the 60 s of --timeout
    assert (first.returncode, err) == (3, (
        "Error: stopped by SIGTERM: the messages in hand were sent and no more begun; "
        "progress is saved, run again to send the rest\n"))
    assert in_flight(tmp_path) == set()


def test_a_signal_while_the_lists_are_read_stops_before_sending_and_the_rerun_finishes(
    tmp_path: Path, smtp_server: FaultyServer,
) -> None:
    """SIGTERM while a long list is read into the journal: the batches recorded stay,
    nothing is sent, the report is written and the exit is 3; the rerun reads the
    list again and mails everyone once."""
    emails = [f"reader{n:03d}@example.org" for n in range(100)]
    with (tmp_path / "crash.csv").open("w", encoding="utf-8") as out:
        out.write("email,name,tags,status\n")
        out.writelines(f"gone{n:06d}@example.org,,,unsubscribed\n" for n in range(LONG_LIST))
        out.writelines(f"{email},,,\n" for email in emails)
    aloud = [arg for arg in command(smtp_server, tmp_path) if arg != "--quiet"]
    first = subprocess.Popen(aloud, cwd=tmp_path, env=digest_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    journal_file = tmp_path / ".digest" / "journal.sqlite3"

    def recorded() -> int:
        try:
            with closing(sqlite3.connect(journal_file)) as db:
                return int(db.execute("SELECT count(*) FROM deliveries").fetchone()[0])
        except sqlite3.OperationalError:  # not made yet
            return 0

    deadline = time.monotonic() + 60
    while recorded() == 0:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=60)
    assert (first.returncode, err) == (3, (
        "Error: stopped by SIGTERM: the lists were read in part, and nothing was sent; "
        "progress is saved, run again to send the rest\n"))
    # Not "already finished": the suppressed rows read so far are all it has recorded.
    assert re.fullmatch(r"Sent 0 messages via smtp://\S+, then stopped \(campaign "
                        r"2026-W48-crash-all; now \d+ suppressed\)\.\n", out), out
    assert smtp_server.received == []
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stopped"].startswith("stopped by SIGTERM: the lists were read in part")
    assert 0 < recorded() < LONG_LIST
    second = subprocess.run(command(smtp_server, tmp_path), cwd=tmp_path, env=digest_env(),
                            timeout=600)
    assert second.returncode == 0
    assert Counter(r for m in smtp_server.received for r in m.rcpt_tos) == Counter(emails)
