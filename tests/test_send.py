"""`digest send` over SMTP against a real aiosmtpd server on 127.0.0.1 whose
faults are scripted per test (tests/smtpd.py). Nothing mocks the client."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli.main import cli
from digest.state.store import open_store
from tests.helpers import AS_OF, TESTS, journal, recipients, send, suppressed
from tests.smtpd import FaultyServer, server_tls_context

FIXTURES = TESTS / "fixtures" / "send"
pytestmark = pytest.mark.workdir(FIXTURES / "five.csv", FIXTURES / "bounce.csv")


def test_all_sent_and_reported(workdir: Path, smtp_server: FaultyServer) -> None:
    code, out, _ = send(smtp_server, "--report", "run.json")
    assert code == 0
    assert out.startswith("Sent 5 messages via smtp://127.0.0.1:")
    assert recipients(smtp_server) == Counter(
        {f"reader{i}@example.org": 1 for i in range(1, 6)}
    )
    report = json.loads((workdir / "run.json").read_text())
    assert {k: report[k] for k in ("recipients", "sent", "failed", "deferred", "ambiguous")} == {
        "recipients": 5, "sent": 5, "failed": 0, "deferred": 0, "ambiguous": 0}
    assert report["campaign"] == "2026-W48-five-all"
    ids = {m.message_id for m in smtp_server.received}
    assert len(ids) == 5 and None not in ids
    assert smtp_server.connections <= 8


def test_connections_are_reused(workdir: Path, smtp_server: FaultyServer) -> None:
    code, _, _ = send(smtp_server, "--concurrency", "1")
    assert code == 0
    assert smtp_server.connections == 1
    assert len(smtp_server.received) == 5


def test_451_then_success(workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt("reader2@example.org", 451, "try again later")
    code, _, _ = send(smtp_server)
    assert code == 0
    assert recipients(smtp_server)["reader2@example.org"] == 1
    assert journal(workdir)["reader2@example.org"][:2] == ("sent", 2)


def test_transient_until_attempts_run_out_is_deferred_then_sent_next_run(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("reader3@example.org", 452, "mailbox busy", times=2)
    code, out, _ = send(smtp_server, "--max-attempts", "2")
    assert code == 3
    assert "1 deferred" in out
    status, attempts, reply_code, reply = journal(workdir)["reader3@example.org"]
    assert (status, attempts, reply_code, reply) == ("deferred", 2, 452, "mailbox busy")
    code, _, _ = send(smtp_server)
    assert code == 0
    assert recipients(smtp_server)["reader3@example.org"] == 1
    assert sum(recipients(smtp_server).values()) == 5


def test_550_is_permanent(workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt("reader4@example.org", 550, "no such user", times=5)
    code, _, _ = send(smtp_server)
    assert code == 3
    assert journal(workdir)["reader4@example.org"] == ("failed", 1, 550, "no such user")
    assert "reader4@example.org" not in recipients(smtp_server)
    result = CliRunner().invoke(cli, ["status", "--format", "json"])
    problems = json.loads(result.stdout)["problems"]
    assert [(p["email"], p["status"], p["code"]) for p in problems] == [
        ("reader4@example.org", "failed", 550)]
    # A permanent failure is never retried automatically: the rerun has nothing to do.
    code, out, _ = send(smtp_server)
    assert code == 0
    assert out.startswith("Campaign 2026-W48-five-all is already finished")


def test_552_on_rcpt_is_transient(workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt("reader1@example.org", 552, "too many recipients")
    code, _, _ = send(smtp_server)
    assert code == 0
    assert journal(workdir)["reader1@example.org"][:2] == ("sent", 2)


def test_421_on_connect_is_retried(workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.fail_greeting(421, times=2)
    code, _, _ = send(smtp_server, "--concurrency", "1")
    assert code == 0
    assert sum(recipients(smtp_server).values()) == 5


def test_throttling_reply_slows_down_and_still_delivers(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.throttle(454, times=2)
    code, _, _ = send(smtp_server, "--concurrency", "2")
    assert code == 0
    assert recipients(smtp_server) == Counter({f"reader{i}@example.org": 1 for i in range(1, 6)})


def test_disconnect_after_354_is_retried_in_the_same_run(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.disconnect_after_354()
    code, _, _ = send(smtp_server, "--concurrency", "1")
    assert code == 0, [v for v in journal(workdir).values() if v[0] != "sent"]
    assert recipients(smtp_server) == Counter({f"reader{i}@example.org": 1 for i in range(1, 6)})


def test_disconnect_after_final_dot_is_ambiguous_and_resent_once(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.disconnect_after_dot("reader5@example.org")
    code, out, _ = send(smtp_server)
    assert code == 3
    assert "1 ambiguous" in out
    assert journal(workdir)["reader5@example.org"][0] == "ambiguous"
    first_id = next(m.message_id for m in smtp_server.received
                    if m.rcpt_tos == ["reader5@example.org"])
    code, _, _ = send(smtp_server)
    assert code == 0
    copies = [m for m in smtp_server.received if m.rcpt_tos == ["reader5@example.org"]]
    assert len(copies) == 2
    assert {m.message_id for m in copies} == {first_id}
    assert sum(recipients(smtp_server).values()) == 6
    code, _, _ = send(smtp_server)
    assert code == 0
    assert sum(recipients(smtp_server).values()) == 6


def test_slow_server_hits_the_timeout(workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.delay_data(3.0)
    code, _, _ = send(smtp_server, "--concurrency", "1", "--timeout", "0.5")
    assert code == 3
    rows = journal(workdir)
    assert sorted(status for status, *_ in rows.values()) == ["ambiguous"] + ["sent"] * 4


def test_starttls_with_a_private_ca(workdir: Path, tls_smtp_server: FaultyServer,
                                    tls_ca_file: Path) -> None:
    code, _, _ = send(tls_smtp_server, "--ca-file", str(tls_ca_file), "--tls-policy", "require")
    assert code == 0
    assert len(tls_smtp_server.received) == 5


def test_unknown_ca_is_refused_and_nothing_sent(
    workdir: Path, tls_smtp_server: FaultyServer
) -> None:
    code, _, err = send(tls_smtp_server, "--tls-policy", "require")
    assert code == 1
    assert err.startswith("Error: the certificate of 127.0.0.1 failed verification")
    assert tls_smtp_server.received == []


def test_smtps_implicit_tls(workdir: Path, tls_ca_file: Path, tls_ca: object) -> None:
    pytest.importorskip("trustme")
    with FaultyServer(tls_context=server_tls_context(tls_ca), implicit_tls=True) as server:
        code, _, _ = send(server, "--ca-file", str(tls_ca_file), scheme="smtps")
    assert code == 0
    assert len(server.received) == 5


def test_required_tls_without_starttls_sends_nothing(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, _, err = send(smtp_server, "--tls-policy", "require")
    assert code == 1
    assert err == (
        f"Error: 127.0.0.1:{smtp_server.port} does not offer STARTTLS, and the TLS policy "
        "(require) forbids sending in the clear; nothing was sent. Use smtps://, a server "
        "with STARTTLS, or set tls-policy = \"allow-plaintext\" in the config if you must\n"
    )
    assert smtp_server.received == []


def test_never_auth_in_plaintext(workdir: Path) -> None:
    with FaultyServer(auth=("news", "s3cret")) as server:
        args = ["send", "--as-of", AS_OF, "--list", "five.csv",
                "--transport", f"smtp://news@{server.host}:{server.port}"]
        result = CliRunner().invoke(cli, args, env={"DIGEST_SMTP_PASSWORD": "s3cret"})
        assert result.exit_code == 1
        assert "forbids sending and AUTH in the clear" in result.stderr
        assert "s3cret" not in result.output
        assert server.auth_attempts == 0
        assert server.received == []


def test_auth_over_starttls(workdir: Path, tls_ca: object, tls_ca_file: Path) -> None:
    with FaultyServer(tls_context=server_tls_context(tls_ca), auth=("news", "s3cret")) as server:
        code, out, err = send(server, "--ca-file", str(tls_ca_file), user="news",
                              env={"DIGEST_SMTP_PASSWORD": "s3cret"})
        assert code == 0, err
        assert server.auth_attempts >= 1
        assert len(server.received) == 5
        assert "s3cret" not in out + err


def test_password_in_the_url_is_refused(workdir: Path, smtp_server: FaultyServer) -> None:
    result = CliRunner().invoke(cli, [
        "send", "--as-of", AS_OF, "--list", "five.csv",
        "--transport", f"smtp://news:hunter2@{smtp_server.host}:{smtp_server.port}"])
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert result.stderr.startswith("Error: --transport: a password does not belong in the")


def test_a_second_run_is_locked_out(workdir: Path, smtp_server: FaultyServer) -> None:
    with open_store(workdir / ".digest").lock():
        code, _, err = send(smtp_server)
    assert code == 75
    assert err.startswith(f"Error: another digest run holds .digest/lock (pid {os.getpid()}, "
                          "started ")
    assert smtp_server.received == []


def test_rerun_of_a_finished_campaign_sends_nothing(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    assert send(smtp_server)[0] == 0
    code, out, _ = send(smtp_server, "--report", "again.json")
    assert code == 0
    assert out == "Campaign 2026-W48-five-all is already finished: nothing left to send (5 sent).\n"
    assert len(smtp_server.received) == 5
    assert json.loads((workdir / "again.json").read_text())["sent_this_run"] == 0


def test_too_many_connection_errors_stop_the_run(workdir: Path) -> None:
    server = FaultyServer()
    server.start()
    host, port = server.host, server.port
    server.stop()  # nothing listens there any more
    result = CliRunner().invoke(cli, [
        "send", "--as-of", AS_OF, "--list", "five.csv", "--transport", f"smtp://{host}:{port}",
        "--max-connection-errors", "3", "--retry-delay", "0", "--concurrency", "1",
        "--report", "run.json"])
    assert result.exit_code == 69
    assert "stopped after 3 connection errors in a row" in result.stderr
    report = json.loads((workdir / "run.json").read_text())
    assert report["sent"] == 0 and report["recipients"] == 5
    assert {status for status, *_ in journal(workdir).values()} <= {"pending", "deferred"}


def test_bad_address_rows_are_skipped_with_file_and_line(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, _, err = send(smtp_server, lists="bounce.csv")
    assert code == 0
    assert "warning: skipped bounce.csv:3: bad address 'not-an-address'" in err
    assert len(smtp_server.received) == 2


@pytest.mark.parametrize("offered", [True, False])
def test_internationalised_address_needs_smtputf8(workdir: Path, offered: bool) -> None:
    (workdir / "idn.csv").write_text("email,name\nzoë@exämple.org,Zoë\nplain@example.org,P\n",
                                     encoding="utf-8")
    with FaultyServer(smtputf8=offered) as server:
        code, _, _ = send(server, lists="idn.csv")
        delivered = recipients(server)
    rows = journal(workdir)
    assert delivered["plain@example.org"] == 1
    if offered:
        assert code == 0
        assert rows["zoë@exämple.org"][0] == "sent"
    else:
        assert code == 3
        assert rows["zoë@exämple.org"] == (
            "failed", 1, None, "internationalised address, and the server lacks SMTPUTF8")
        assert "zoë@exämple.org" not in delivered


def test_quiet_prints_nothing_but_the_exit_code_still_speaks(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("reader1@example.org", 550, "no such user")
    code, out, err = send(smtp_server, "--quiet")
    assert (code, out, err) == (3, "", "")


def test_progress_is_logged_off_a_terminal_and_summarised(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.delay_data(1.5, times=1)
    code, out, err = send(smtp_server, "--concurrency", "2", "--timeout", "10",
                          "--progress-every", "0.5")
    assert code == 0
    assert "progress: " in err and " sent, " in err and "ETA" in err
    assert out.startswith("Sent 5 messages via smtp://")


def test_only_a_refused_recipient_is_a_bounce(workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt("reader1@example.org", 550, "no such user", times=5)
    smtp_server.fail_data("reader2@example.org", 554, "message looks like spam", times=5)
    code, _, _ = send(smtp_server)
    assert code == 3
    rows = journal(workdir)
    assert rows["reader1@example.org"][0] == rows["reader2@example.org"][0] == "failed"
    assert suppressed() == ["reader1@example.org"]


def test_a_refusing_greeting_defers_everyone_and_bounces_no_one(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_greeting(554, times=50)
    code, _, err = send(smtp_server, "--concurrency", "1", "--max-connection-errors", "4")
    assert code == 69
    assert "stopped after 4 connection errors in a row (last: 554" in err
    assert {status for status, *_ in journal(workdir).values()} <= {"pending", "deferred"}
    assert suppressed() == []


def test_a_refused_sender_stops_the_run_without_blaming_recipients(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.throttle(550, times=50)  # a 5xx to MAIL FROM
    code, _, err = send(smtp_server, "--concurrency", "1")
    assert code == 1
    assert err.startswith("Error: 127.0.0.1 refused the sender digest@example.org: 550 ")
    assert err.rstrip().endswith("the run stopped. Check --from")
    assert "failed" not in {status for status, *_ in journal(workdir).values()}
    assert suppressed() == []


def test_a_campaign_keeps_its_articles(workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt("reader3@example.org", 451, "later", times=1)
    assert send(smtp_server, "--max-attempts", "1")[0] == 3
    code, out, err = send(smtp_server, "--since", "1d", "--campaign", "2026-W48-five-all")
    assert (code, err) == (0, "")
    assert out.startswith("Resuming campaign 2026-W48-five-all, begun ")
    assert recipients(smtp_server)["reader3@example.org"] == 1
    # The rerun sends the pinned issue, not what --since 1d would select today.
    subjects = {m.data.split(b"\r\nSubject: ", 1)[1].split(b"\r\nDate:", 1)[0]
                for m in smtp_server.received}
    assert len(subjects) == 1
