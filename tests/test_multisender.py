"""Many `digest send` processes on one PostgreSQL state, as on many machines: they
share one campaign through the journal's claims and leases (delivery/claims.py).

Each test runs real `digest send` processes against one real SMTP server and a
throwaway PostgreSQL cluster (tests/postgres.py). The server is slowed a little, so
that a kill, an unsubscribe, or a database that goes away lands mid-run.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from digest.content.selection import series_of
from digest.delivery.claims import Claims
from digest.delivery.sender import SendOptions
from digest.state.records import Entry, now_stamp
from digest.state.store import open_store
from tests.helpers import REPO, copies, digest_env, wait_for, write_list
from tests.smtpd import FaultyServer

CONCURRENCY = 4
LEASE = "2"  # seconds: a dead sender's recipients wait this long for the others


def command(server: FaultyServer, state: str, report: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "digest", "send", "--articles", str(REPO / "articles"),
            "--as-of", "2026-11-28", "--limit", "1", "--list", "many.csv", "--transport",
            f"smtp://{server.host}:{server.port}", "--concurrency", str(CONCURRENCY),
            "--workers", "1", "--lease", LEASE, "--state", state, "--report", report,
            "--quiet", *extra]



def holders(url: str) -> dict[str, set[str]]:
    """Sender id -> the addresses it holds in flight now."""
    with psycopg.connect(url) as db:
        try:
            rows = db.execute("SELECT claimed_by, email, status FROM deliveries"
                              " WHERE claimed_by IS NOT NULL").fetchall()
        except psycopg.errors.UndefinedTable:  # no sender has made the schema yet
            return {}
    held: dict[str, set[str]] = defaultdict(set)
    for holder, email, status in rows:
        held[holder].update([email] if status == "inflight" else [])
    return held


def of(pid: int, held: dict[str, set[str]]) -> set[str]:
    """What the sender with ``pid`` holds in flight."""
    mine = [emails for holder, emails in held.items() if holder.split(":")[1] == str(pid)]
    return mine[0] if mine else set()


@pytest.mark.parametrize("folders", ["one folder", "two folders"])
def test_two_senders_one_killed_mid_run_mail_everyone_once(
    tmp_path: Path, smtp_server: FaultyServer, postgres_url: str, folders: str,
) -> None:
    recipients = 3000
    here = tmp_path / "a"
    there = tmp_path / "b" if folders == "two folders" else here  # as on two machines
    for folder in {here, there}:
        folder.mkdir(exist_ok=True)
        emails = write_list(folder / "many.csv", recipients, local="m", width=4)
    smtp_server.delay_data(0.002, times=2 * recipients)
    env = digest_env()
    doomed = subprocess.Popen(command(smtp_server, postgres_url, "doomed.json"), cwd=here,
                              env=env)
    survivor = subprocess.Popen(command(smtp_server, postgres_url, "survivor.json"), cwd=there,
                                env=env)
    both = (doomed, survivor)
    wait_for("both senders at work", lambda: len(holders(postgres_url)) >= 2, *both)
    wait_for("a third of the deliveries", lambda: len(smtp_server.received) >= recipients / 3,
             *both)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    uncertain = of(doomed.pid, holders(postgres_url))
    assert len(uncertain) <= CONCURRENCY
    assert len(smtp_server.received) < recipients

    # The survivor waits out the dead sender's leases, then sends what it held.
    assert survivor.wait(timeout=120) == 0
    report = json.loads((there / "survivor.json").read_text())
    assert (report["sent"], report["resent_after_crash"]) == (recipients, len(uncertain))
    sent = copies(smtp_server)
    assert set(sent) == set(emails), "someone was lost"
    twice = {email for email, ids in sent.items() if len(ids) > 1}
    assert twice <= uncertain, "a journalled delivery was sent again"
    assert all(len(ids) == 2 and len(set(ids)) == 1 for email, ids in sent.items()
               if email in twice), "a resend must keep its Message-ID"


def test_an_unsubscribe_mid_run_reaches_every_sender_within_a_batch(
    tmp_path: Path, smtp_server: FaultyServer, postgres_url: str,
) -> None:
    emails = write_list(tmp_path / "many.csv", 400, local="u", width=4)
    leaver = emails[-1]  # the last in key order: claimed last, by whichever sender
    env = digest_env()
    senders = [subprocess.Popen(command(smtp_server, postgres_url, f"{n}.json", "--rate",
                                        "150"), cwd=tmp_path, env=env) for n in range(2)]
    wait_for("both senders at work", lambda: len(holders(postgres_url)) >= 2, *senders)
    with closing(open_store(postgres_url)) as store:  # as `digest serve` writes it
        store.suppressions.add([(leaver, "unsubscribed", "web:test")])
    assert [s.wait(timeout=120) for s in senders] == [0, 0]
    sent = copies(smtp_server)
    assert set(sent) == set(emails) - {leaver}
    assert all(len(ids) == 1 for ids in sent.values())
    reports = [json.loads((tmp_path / f"{n}.json").read_text()) for n in range(2)]
    assert [r["sent_this_run"] > 0 for r in reports] == [True, True]
    assert sum(r["sent_this_run"] for r in reports) == len(emails) - 1
    assert [r["suppressed"] for r in reports] == [1, 1]


def test_a_database_gone_mid_run_stops_the_send_in_one_line_and_the_rerun_finishes(
    tmp_path: Path, smtp_server: FaultyServer, postgres_url: str,
) -> None:
    """Marks go to PostgreSQL from a thread while the loop sends: a mark that
    cannot be written must still stop its recipient before DATA, and end the run
    with one line, so that the rerun resends only what was in flight."""
    recipients = 600
    emails = write_list(tmp_path / "many.csv", recipients, local="g", width=4)
    smtp_server.delay_data(0.002, times=recipients)
    first = subprocess.Popen(command(smtp_server, postgres_url, "first.json"), cwd=tmp_path,
                             env=digest_env(), stderr=subprocess.PIPE)
    wait_for("a sixth of the deliveries", lambda: len(smtp_server.received) >= recipients / 6,
             first)
    with psycopg.connect(postgres_url, autocommit=True) as db:  # both of its connections
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE application_name = %s", (f"digest pid {first.pid} on "
                                                     f"{socket.gethostname()}"[:63],))
    _, err = first.communicate(timeout=60)
    assert first.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the "), err
    assert "run again" in lines[0]
    with psycopg.connect(postgres_url) as db:
        in_flight = {email for (email,) in db.execute(
            "SELECT email FROM deliveries WHERE status='inflight'").fetchall()}
    assert len(in_flight) <= CONCURRENCY

    rerun = subprocess.run(command(smtp_server, postgres_url, "rerun.json"), cwd=tmp_path,
                           env=digest_env(), check=False)
    assert rerun.returncode == 0
    sent = copies(smtp_server)
    assert set(sent) == set(emails), (f"lost {sorted(set(emails) - set(sent))[:5]}, "
                                      f"others {sorted(set(sent) - set(emails))[:5]}")
    twice = {email for email, ids in sent.items() if len(ids) > 1}
    assert twice <= in_flight, "a delivery not marked in flight was sent again"
    assert all(len(set(sent[email])) == 1 for email in twice), "a resend keeps its Message-ID"



@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_lease_that_ends_after_the_last_claim_is_still_taken_over(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str,
) -> None:
    """A sender whose last claim found everything held by a dead sender's live
    lease, and whose look at the leases comes after that lease ended, claims
    again: it must not end the run and leave the dead sender's recipients."""
    state = (request.getfixturevalue("postgres_url") if backend == "postgresql"
             else tmp_path / "state")
    people = [f"d{i}@example.org" for i in range(3)]
    with closing(open_store(state)) as store:
        store.journal.add("c1", [Entry(e, "", "", f"<{e}>", "pending", None) for e in people])
        assert len(store.journal.claim("c1", "dead", 3, 0.2, datetime.now(UTC))) == 3
        claims = Claims(store, "c1", SendOptions(concurrency=2, lease=60), now_stamp())
        assert list(claims.pending()) == []  # all three under the dead sender's lease
        time.sleep(0.3)  # which ends now
        assert claims.wait()
        assert sorted(p.email for p in claims.pending()) == people


@pytest.mark.parametrize(("ahead_by", "workers"), [("+10m", "1"), ("+5d", "1"), ("+5d", "2")])
def test_a_sender_whose_clock_runs_ahead_leaves_a_live_senders_work_alone(
    tmp_path: Path, smtp_server: FaultyServer, postgres_url: str, ahead_by: str, workers: str,
) -> None:
    """Leases end, and queued recipients expire, by the database server's clock. A
    machine whose clock is ten minutes fast would otherwise find every lease of a live
    sender ended, take its recipients in flight as ambiguous, and send them a second
    copy; one five days fast would expire everyone still owed the issue (--max-age)."""
    recipients = 600
    emails = write_list(tmp_path / "many.csv", recipients, local="k", width=4)
    smtp_server.delay_data(0.01, times=recipients)  # 1.5 s at least: time for both to start
    env = digest_env()
    right = subprocess.Popen(command(smtp_server, postgres_url, "right.json"), cwd=tmp_path,
                             env=env)
    wait_for("the first sender at work", lambda: len(holders(postgres_url)) >= 1, right)
    ahead = subprocess.Popen(["faketime", "-f", ahead_by,
                              *command(smtp_server, postgres_url, "ahead.json", "--workers",
                                       workers)],
                             cwd=tmp_path, env=env)
    assert [right.wait(timeout=120), ahead.wait(timeout=120)] == [0, 0]
    sent = copies(smtp_server)
    assert set(sent) == set(emails)
    assert [email for email, ids in sent.items() if len(ids) > 1] == []
    reports = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("right", "ahead")]
    assert [r["resent_after_crash"] for r in reports] == [0, 0]
    assert all(r["sent_this_run"] > 0 for r in reports)  # both sent: they shared the list


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_sender_stopped_by_a_signal_gives_its_claims_back_at_once(
    tmp_path: Path, smtp_server: FaultyServer, postgres_url: str, how: signal.Signals,
) -> None:
    """SIGTERM or Ctrl-C to one of two senders: it sends what it has in hand and gives
    the rest back, so the other finishes without waiting out a long lease, and no one
    is mailed twice."""
    recipients = 600
    emails = write_list(tmp_path / "many.csv", recipients, local="t", width=4)
    smtp_server.delay_data(0.01, times=recipients)
    senders = [subprocess.Popen(command(smtp_server, postgres_url, f"{n}.json", "--lease", "60"),
                                cwd=tmp_path, env=digest_env(), stderr=subprocess.PIPE, text=True)
               for n in ("stopped", "other")]
    wait_for("both senders at work", lambda: len(holders(postgres_url)) >= 2, *senders)
    started = time.monotonic()
    senders[0].send_signal(how)
    _, err = senders[0].communicate(timeout=60)
    assert (senders[0].returncode, err) == (3, (
        f"Error: stopped by {how.name}: this sender sent the messages it had in hand and "
        "claimed no more; progress is saved, run again to send the rest\n"))
    assert senders[1].wait(timeout=60) == 0
    assert time.monotonic() - started < 30  # not the 60 s lease
    sent = copies(smtp_server)
    assert set(sent) == set(emails)
    assert [email for email, ids in sent.items() if len(ids) > 1] == []


def test_two_senders_either_side_of_a_weeks_turn_send_one_issue(
    tmp_path: Path, smtp_server: FaultyServer, postgres_url: str,
) -> None:
    """Started together by cron at Monday 00:00 on two machines whose clocks are
    a second apart, one plans the issue of week 48 and the other that of week 49.
    Here both have planned before either pins: the test holds the series' pin
    lock until both wait on it. Whichever pins first, the other joins its issue."""
    emails = write_list(tmp_path / "many.csv", 200, local="w", width=4)
    smtp_server.delay_data(0.005, times=200)  # the joiner joins before the issue is all sent
    env = digest_env()
    with psycopg.connect(postgres_url, autocommit=True) as gate, gate.transaction():
        gate.execute("SELECT pg_advisory_xact_lock(hashtextextended('digest pin '"
                     " || current_database() || '.' || current_schema() || ' ' || %s, 0))",
                     (series_of([Path("many.csv")], ()),))
        senders = [subprocess.Popen(
            [arg for arg in command(smtp_server, postgres_url, f"{n}.json", "--as-of", as_of)
             if arg != "--quiet"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
            for n, as_of in enumerate(["2026-11-29T23:59:59+00:00", "2026-11-30T00:00:01+00:00"])]
        wait_for("both senders waiting to pin", lambda: gate.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted"
        ).fetchone() == (2,), *senders)
    said = [s.communicate(timeout=120)[0] for s in senders]
    assert [s.returncode for s in senders] == [0, 0]
    with psycopg.connect(postgres_url) as db:
        pinned = db.execute("SELECT campaign FROM campaigns").fetchall()
    joining = f"Joining campaign {pinned[0][0]}, which another sender on this state began at "
    assert sorted(joining in out for out in said) == [False, True], said
    assert len(pinned) == 1 and pinned[0][0][:8] in {"2026-W48", "2026-W49"}
    sent = copies(smtp_server)
    assert set(sent) == set(emails)
    assert all(len(ids) == 1 for ids in sent.values()), "someone got both weeks' issues"
    reports = [json.loads((tmp_path / f"{n}.json").read_text()) for n in range(2)]
    assert {r["campaign"] for r in reports} == {pinned[0][0]}
