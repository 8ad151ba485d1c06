"""Kill -9 a real `digest send` mid-run, run it again, and count what arrived.

The promise: no one is lost, and no one whose delivery was journalled gets the
issue twice. Only the recipients in flight at the kill (at most one per
connection) may get a second copy, and then with the same Message-ID.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.helpers import REPO, digest_env, in_flight, write_list
from tests.smtpd import FaultyServer

RECIPIENTS = 300
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
