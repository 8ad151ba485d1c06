"""The README's cron line, run as cron runs it: the clock decides --as-of.

Each run is a real `digest send` process under libfaketime (Debian's
`faketime`), so "Monday 06:00" and "Sunday 23:50" are what the program itself
reads from the clock. The SMTP server is the real aiosmtpd FaultyServer.

What is promised (README, "Cron"): a rerun finishes the issue it began, even
after an article was published in between, after the window's edge crossed an
article, or across midnight into the next ISO week; a new issue waits for
--min-interval; a recipient still owed the issue after --max-age expires; a
campaign can be closed on purpose.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers import TESTS, digest_env, in_flight, write_list
from tests.smtpd import FaultyServer

FIXTURES = TESTS / "fixtures" / "campaigns"
# The README's line, with the test server's address in place of the smarthost's.
CRON = ("digest send --since 7d --list subscribers.csv --transport smtp://{host}:{port} "
        "--report reports/last.json >> send.log 2>&1")

pytestmark = [
    pytest.mark.skipif(
        shutil.which("faketime") is None and not os.environ.get("CI"),
        reason="needs faketime (apt-get install faketime); .ci/run installs it",
    ),
    pytest.mark.workdir(FIXTURES / "subscribers.csv", FIXTURES / "fast-retries.toml",
                        articles=FIXTURES / "articles",
                        rename={"fast-retries.toml": "digest.toml"}),
]


@pytest.fixture
def newsroom(workdir: Path) -> Path:
    """A working folder as an operator keeps one: articles, a list, reports/."""
    (workdir / "reports").mkdir()
    return workdir


def _env() -> dict[str, str]:
    env = {k: v for k, v in digest_env().items() if not k.startswith("FAKETIME")}
    # Only the wall clock is faked: asyncio's timers keep the real monotonic clock.
    return {**env, "TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def _digest() -> str:
    return "digest" if shutil.which("digest") else f"{sys.executable} -m digest"


def cron_command(workdir: Path, server: FaultyServer, at: str) -> list[str]:
    line = CRON.format(host=server.host, port=server.port).replace("digest ", _digest() + " ", 1)
    return ["faketime", at, "bash", "-c", f"cd {workdir} && {line}"]


def cron(workdir: Path, server: FaultyServer, at: str) -> tuple[int, str]:
    """Run the cron line at ``at`` (UTC); return its exit code and what it logged."""
    log = workdir / "send.log"
    before = log.read_text() if log.exists() else ""
    done = subprocess.run(cron_command(workdir, server, at), env=_env(), timeout=120)
    return done.returncode, log.read_text()[len(before):]


def kill_under_faketime(wrapper: subprocess.Popen[bytes]) -> None:
    """SIGKILL everything in the wrapper's session but faketime itself, which then exits
    as usual and removes its semaphore from /dev/shm. Killed with the rest, it leaves the
    semaphore behind, and a later faketime that gets the same pid fails ("sem_open: File
    exists")."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone already
        pid = int(stat.parent.name)
        if int(fields[3]) == wrapper.pid and pid != wrapper.pid:  # fields[3]: the session
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wrapper.wait(timeout=30)


def digest_at(workdir: Path, at: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["faketime", at, *_digest().split(), *args], cwd=workdir, env=_env(),
                          capture_output=True, text=True, timeout=60)


def report(workdir: Path) -> dict[str, object]:
    data = json.loads((workdir / "reports" / "last.json").read_text())
    assert isinstance(data, dict)
    return data


def copies(server: FaultyServer) -> dict[str, list[bytes]]:
    seen: dict[str, list[bytes]] = defaultdict(list)
    for message in server.received:
        for rcpt in message.rcpt_tos:
            seen[rcpt].append(message.data)
    return seen


def title_in(data: bytes, title: str) -> bool:
    return title.encode() in data.replace(b"=\r\n", b"")


EVERYONE = {"ada@example.org", "ben@example.org", "cleo@example.org", "dev@example.org",
            "eli@example.org"}


def test_the_same_week_rerun_finishes_the_issue_it_began(
    newsroom: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("cleo@example.org", 451, "mailbox busy", times=3)
    code, log = cron(newsroom, smtp_server, "2026-11-30 06:00:00")
    assert code == 3, log
    first = report(newsroom)
    assert (first["campaign"], first["sent"], first["deferred"]) == (
        "2026-W49-subscribers-all", 4, 1)
    issue = first["issue"]
    assert isinstance(issue, dict)
    assert issue["as_of"].startswith("2026-11-30T06:00:0")
    assert (issue["since"], issue["limit"], issue["summary_words"]) == ("7d", 10, 60)
    assert issue["articles"] == ["allotment-waiting-list.md", "market-hall-roof.md",
                                 "window-edge-ferry-fares.md"]

    # Between the runs an article is published, and the window's start moves
    # past the ferry story (23 Nov 07:00). The issue must not change.
    shutil.copy(FIXTURES / "late" / "published-between-runs.md", newsroom / "articles")
    code, log = cron(newsroom, smtp_server, "2026-11-30 08:00:00")
    assert code == 0, log
    assert log.startswith("Resuming campaign 2026-W49-subscribers-all, begun 2026-11-30T06:00:")
    second = report(newsroom)
    assert (second["sent"], second["sent_this_run"], second["deferred"]) == (5, 1, 0)
    assert second["issue"] == issue

    got = copies(smtp_server)
    assert {email: len(messages) for email, messages in got.items()} == dict.fromkeys(
        EVERYONE, 1)
    cleo = got["cleo@example.org"][0]
    assert title_in(cleo, "Ferry Fares Frozen Until Spring")
    assert not title_in(cleo, "Night Bus Route Extended")


def test_a_new_issue_waits_for_the_minimum_interval(
    newsroom: Path, smtp_server: FaultyServer
) -> None:
    assert cron(newsroom, smtp_server, "2026-11-29 06:00:00")[0] == 0
    assert report(newsroom)["campaign"] == "2026-W48-subscribers-all"
    # A day later, in the next ISO week: a cron line that runs too often.
    code, log = cron(newsroom, smtp_server, "2026-11-30 06:00:00")
    assert code == 0
    # The clock starts at 06:00:00 and runs on while Python starts: allow a few seconds.
    assert re.fullmatch(
        r"The last issue of these lists, campaign 2026-W48-subscribers-all, is as of "
        r"2026-11-29T06:00:0\d\+00:00; the next one is due from 2026-12-05T06:00:0\d\+00:00 "
        r"\(--min-interval\)\. Nothing to do yet\.\n", log), log
    assert report(newsroom)["waiting"] == log.strip()
    assert len(smtp_server.received) == 5

    shutil.copy(FIXTURES / "late" / "published-between-runs.md", newsroom / "articles")
    code, log = cron(newsroom, smtp_server, "2026-12-05 07:00:00")
    assert code == 0, log
    assert report(newsroom)["campaign"] == "2026-W49-subscribers-all"
    assert len(smtp_server.received) == 10


def test_a_recipient_still_owed_after_max_age_expires(
    newsroom: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("cleo@example.org", 451, "mailbox busy", times=100)
    assert cron(newsroom, smtp_server, "2026-11-30 06:00:00")[0] == 3
    rcpts_before = smtp_server.pending_faults
    code, log = cron(newsroom, smtp_server, "2026-12-03 07:00:00")
    assert code == 3, log
    assert log.startswith("1 recipients of campaign 2026-W49-subscribers-all expired: they "
                          "were still owed the issue after --max-age.\n")
    assert smtp_server.pending_faults == rcpts_before, "an expired recipient was tried again"
    assert (report(newsroom)["expired"], report(newsroom)["expired_this_run"]) == (1, 1)

    status = digest_at(newsroom, "2026-12-03 07:05:00", "status", "--format", "json")
    problems = json.loads(status.stdout)["problems"]
    assert [(p["email"], p["status"], p["reply"]) for p in problems] == [
        ("cleo@example.org", "expired", "still not delivered after 3 days (--max-age)")]

    # The campaign is over, so next week's issue starts on time.
    code, log = cron(newsroom, smtp_server, "2026-12-07 06:00:00")
    assert report(newsroom)["campaign"] == "2026-W50-subscribers-all"


def test_a_closed_campaign_is_set_aside_and_recorded(
    newsroom: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("cleo@example.org", 451, "mailbox busy", times=3)
    assert cron(newsroom, smtp_server, "2026-11-30 06:00:00")[0] == 3
    closed = digest_at(newsroom, "2026-11-30 06:30:00", "campaign", "close",
                       "2026-W49-subscribers-all", "--reason", "a correction goes out instead")
    assert (closed.returncode, closed.stdout) == (0, (
        "Closed campaign 2026-W49-subscribers-all; 1 recipients it still owed will not get "
        "this issue.\n"))

    status = json.loads(digest_at(newsroom, "2026-11-30 08:05:00", "status", "--format",
                                  "json").stdout)
    closed_at = status["closed"]["at"]
    assert re.fullmatch(r"2026-11-30T06:30:0\d\+00:00", closed_at)
    assert status["closed"]["reason"] == "a correction goes out instead"

    code, log = cron(newsroom, smtp_server, "2026-11-30 08:00:00")
    assert (code, log) == (0, (
        f"Campaign 2026-W49-subscribers-all was closed at {closed_at} (a correction goes out "
        "instead); it sends nothing more. Nothing to do.\n"))
    assert len(smtp_server.received) == 4

    again = digest_at(newsroom, "2026-11-30 08:10:00", "campaign", "close",
                      "2026-W49-subscribers-all")
    assert (again.returncode, again.stderr) == (1, (
        "Error: CAMPAIGN: campaign 2026-W49-subscribers-all was already closed at "
        f"{closed_at}\n"))


def test_killed_on_sunday_night_and_rerun_on_monday_finishes_last_weeks_issue(
    newsroom: Path, smtp_server: FaultyServer
) -> None:
    emails = write_list(newsroom / "subscribers.csv", 200, width=4)
    with (newsroom / "digest.toml").open("a") as config:
        config.write("concurrency = 4\n")
    # After 60 messages the server holds one on each connection, so the kill lands mid-run.
    smtp_server.delay_data(120, times=4, after=60)
    # Its own session, so the kill reaches the sender under bash and faketime.
    first = subprocess.Popen(cron_command(newsroom, smtp_server, "2026-11-29 23:50:00"),
                             env=_env(), start_new_session=True)
    deadline = time.monotonic() + 60
    while smtp_server.pending_faults:
        assert first.poll() is None, "the sender finished before it could be killed"
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.002)
    kill_under_faketime(first)
    uncertain = in_flight(newsroom)
    assert len(uncertain) <= 4
    assert len(smtp_server.received) == 64

    code, log = cron(newsroom, smtp_server, "2026-11-30 00:10:00")
    assert code == 0, log
    assert "Resuming campaign 2026-W48-subscribers-all" in log
    assert report(newsroom)["campaign"] == "2026-W48-subscribers-all"
    assert report(newsroom)["sent"] == len(emails)

    ids: dict[str, set[str | None]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for message in smtp_server.received:
        for rcpt in message.rcpt_tos:
            ids[rcpt].add(message.message_id)
            counts[rcpt] += 1
    assert set(counts) == set(emails), "someone was lost"
    twice = {email for email, n in counts.items() if n > 1}
    assert twice <= uncertain, "someone got the issue twice who was not in flight"
    assert all(len(found) == 1 for found in ids.values()), "a copy had another Message-ID"

