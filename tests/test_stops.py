"""Runs that stop part-way, and disks that fill up.

The promises (README, "Exit codes" and "The journal"): exit code 1 means
nothing was sent; a run that delivered some messages and then stopped says
so, exits 3, still writes --report and still suppresses the refusals it saw;
a failed journal write leaves no false in-flight marks; and nothing on a full
disk ever advises moving the journal aside, which would re-mail everyone.

Full disks are real: small tmpfs mounts (the tests run as root, as CI does).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli.main import cli
from tests.helpers import TESTS, Mount, journal_statuses, run_send, suppressed, write_list
from tests.smtpd import FaultyServer

FIXTURES = TESTS / "fixtures" / "campaigns"
pytestmark = pytest.mark.workdir(FIXTURES / "subscribers.csv", articles=FIXTURES / "articles")


def fill(folder: Path, leave: int) -> None:
    """Fill the disk under ``folder`` until about ``leave`` bytes are free."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with (folder / "filler").open("wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))


def test_a_full_maildir_after_some_messages_exits_3_with_the_summary(
    workdir: Path, tiny_disk: Mount
) -> None:
    disk = tiny_disk("mail", 1024)
    fill(disk, 100 * 1024)
    write_list(workdir / "many.csv", 60)
    code, out, err = run_send("--list", "many.csv", "--transport", f"maildir:{disk}/outbox",
                              "--report", "run.json")
    delivered = len(list((disk / "outbox" / "new").iterdir()))
    assert 0 < delivered < 60
    assert code == 3
    assert out.startswith(f"Sent {delivered} messages via maildir:{disk}/outbox, then stopped")
    assert err.endswith(f"Error: cannot write to the Maildir {disk}/outbox: No space left on "
                        "device\n")
    report = json.loads((workdir / "run.json").read_text())
    assert report["sent"] == report["sent_this_run"] == delivered
    assert report["stopped"] == (f"cannot write to the Maildir {disk}/outbox: No space left "
                                 "on device")
    statuses = Counter(journal_statuses(workdir).values())
    assert statuses["inflight"] == 0, "an undelivered message would be 'sent again'"
    assert statuses["sent"] == delivered


def test_a_report_that_cannot_be_written_after_sending_exits_3(
    workdir: Path, tiny_disk: Mount, smtp_server: FaultyServer
) -> None:
    disk = tiny_disk("reports", 64)
    fill(disk, 0)
    code, out, err = run_send("--list", "subscribers.csv", "--report", f"{disk}/run.json",
                              "--transport", f"smtp://{smtp_server.host}:{smtp_server.port}")
    assert code == 3
    assert err == (f"Error: cannot write {disk}/run.json: No space left on device\n")
    assert out.startswith("Sent 5 messages via smtp://")
    assert len(smtp_server.received) == 5


def _refuse_the_sender_after(server: FaultyServer, delivered: int) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 30
        while len(server.received) < delivered and time.monotonic() < deadline:
            time.sleep(0.001)
        server.throttle(550, times=100)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_refused_sender_mid_run_still_reports_and_suppresses(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    write_list(workdir / "many.csv", 20)
    smtp_server.fail_rcpt("reader000@example.org", 550, "no such user")
    watcher = _refuse_the_sender_after(smtp_server, 3)
    code, _, err = run_send("--list", "many.csv", "--concurrency", "1", "--rate", "5",
                              "--report", "run.json",
                              "--transport", f"smtp://{smtp_server.host}:{smtp_server.port}")
    watcher.join()
    assert code == 3
    assert err.startswith("Error: 127.0.0.1 refused the sender digest@example.org: 550 ")
    report = json.loads((workdir / "run.json").read_text())
    assert report["sent"] == len(smtp_server.received) >= 3
    assert report["failed"] == 1
    assert report["stopped"].startswith("127.0.0.1 refused the sender")
    assert suppressed() == ["reader000@example.org"]


def test_a_refused_sender_before_any_delivery_exits_1_and_still_reports(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    write_list(workdir / "many.csv", 5)
    smtp_server.fail_rcpt("reader000@example.org", 550, "no such user")
    smtp_server.throttle(550, times=100)
    # The first MAIL FROM is refused before the RCPT fault can fire: nothing is sent.
    code, _, err = run_send("--list", "many.csv", "--concurrency", "1", "--report", "run.json",
                            "--transport", f"smtp://{smtp_server.host}:{smtp_server.port}")
    assert code == 1
    assert err.startswith("Error: 127.0.0.1 refused the sender")
    report = json.loads((workdir / "run.json").read_text())
    assert (report["sent"], report["sent_this_run"]) == (0, 0)


def test_a_connection_waiting_its_turn_under_rate_begins_nothing_once_the_sender_is_refused(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    """The first MAIL FROM is refused for good, which stops the run; the other
    connection, waiting for its --rate turn, does not try the server once more."""
    write_list(workdir / "many.csv", 5)
    smtp_server.throttle(550, times=100)
    code, _, err = run_send("--list", "many.csv", "--concurrency", "2", "--rate", "1",
                            "--transport", f"smtp://{smtp_server.host}:{smtp_server.port}")
    assert code == 1
    assert err.startswith("Error: 127.0.0.1 refused the sender")
    assert 100 - smtp_server.pending_faults == 1


def test_a_journal_on_a_full_disk_leaves_no_false_in_flight_marks(
    workdir: Path, tiny_disk: Mount, smtp_server: FaultyServer
) -> None:
    state = tiny_disk("state", 16 * 1024)
    emails = write_list(workdir / "many.csv", 150)
    transport = f"smtp://{smtp_server.host}:{smtp_server.port}"
    # Enough room to start, not enough for every commit of the run.
    fill(state, 360 * 1024)
    code, out, err = run_send("--list", "many.csv", "--state", str(state), "--concurrency", "4",
                              "--transport", transport, "--report", "run.json")
    assert code in (1, 3), (out, err)
    assert "the journal could not be written (database or disk is full)" in err
    assert "move it aside" not in err
    got = Counter(r for m in smtp_server.received for r in m.rcpt_tos)
    journal = journal_statuses(workdir, state)
    in_flight = {email for email, status in journal.items() if status == "inflight"}
    assert in_flight <= set(got), "a recipient who never reached DATA is marked in flight"

    status = CliRunner().invoke(cli, ["status", "--state", str(state)])
    assert status.exit_code == 0, status.output
    assert "move it aside" not in status.output

    (state / "filler").unlink()
    code, out, err = run_send("--list", "many.csv", "--state", str(state), "--concurrency", "4",
                              "--transport", transport, "--report", "run.json")
    assert code == 0, err
    report = json.loads((workdir / "run.json").read_text())
    assert report["resent_after_crash"] == len(in_flight)
    assert report["sent"] == len(emails)
    got = Counter(r for m in smtp_server.received for r in m.rcpt_tos)
    assert set(got) == set(emails)
    assert {email for email, n in got.items() if n > 1} <= in_flight


def test_status_on_a_full_disk_reads_and_never_says_move_it_aside(
    workdir: Path, tiny_disk: Mount
) -> None:
    state = tiny_disk("state", 512)
    assert run_send("--list", "subscribers.csv", "--state", str(state))[0] == 0
    fill(state, 0)
    result = CliRunner().invoke(cli, ["status", "--state", str(state)])
    assert result.exit_code == 0, result.output
    assert "  sent              5" in result.output

    blocked = CliRunner().invoke(cli, ["send", "--as-of", "2026-12-12", "--list",
                                       "subscribers.csv", "--state", str(state)])
    assert blocked.exit_code == 1
    assert blocked.stderr.count("\n") == 1
    assert "move it aside" not in blocked.stderr


def test_status_table_shows_the_issue_counts_and_problems(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("ben@example.org", 550, "5.1.1 no such user")
    smtp_server.fail_rcpt("dev@example.org", 451, "4.2.1 mailbox busy", times=3)
    code, _, _ = run_send("--list", "subscribers.csv", "--since", "7d",
                          "--transport", f"smtp://{smtp_server.host}:{smtp_server.port}")
    assert code == 3
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0
    assert result.stdout == (
        "Campaign 2026-W48-subscribers-all\n"
        "  as-of:          2026-11-28T00:00:00+00:00\n"
        "  since:          7d\n"
        "  tags:           -\n"
        "  exclude-tags:   -\n"
        "  limit:          10\n"
        "  summary-words:  60\n"
        "  articles:       allotment-waiting-list.md, market-hall-roof.md, "
        "window-edge-ferry-fares.md\n"
        "  deferred          1\n"
        "  failed            1\n"
        "  sent              3\n"
        "  bounce rate 25.00%, complaint rate 0.00%\n"
        "\n"
        "  STATUS     EMAIL                                CODE  REPLY\n"
        "  failed     ben@example.org                      550   5.1.1 no such user\n"
        "  deferred   dev@example.org                      451   4.2.1 mailbox busy\n"
    )


def test_a_dry_run_counts_what_the_rerun_of_an_unfinished_campaign_would_send(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("dev@example.org", 451, "4.2.1 mailbox busy", times=3)
    transport = f"smtp://{smtp_server.host}:{smtp_server.port}"
    assert run_send("--list", "subscribers.csv", "--transport", transport)[0] == 3
    # Two days later, in the next ISO week: the rerun would resume last week's issue.
    code, out, _ = run_send("--list", "subscribers.csv", "--transport", transport, "--dry-run",
                            "--as-of", "2026-11-30")
    assert code == 0
    assert out.startswith("Dry run: would send 1 messages (3 articles, 1 variants) via "
                          f"{transport}, campaign 2026-W48-subscribers-all; ")
    assert len(smtp_server.received) == 4
