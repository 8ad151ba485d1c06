"""How each SMTP fault is classified, against the real FaultyServer (tests/smtpd.py):
after the final dot, before it, at TLS and AUTH, in the transport URL, and the rate control
that 421 and 454 drive. Nothing on the client side is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from digest.cli.main import cli
from digest.delivery.rate import TokenBucket
from digest.delivery.sender import Job, Sender, SendOptions, Tally
from digest.delivery.smtp import SmtpTransport
from digest.delivery.smtp_config import SmtpConfig
from digest.delivery.transport import BeforeData, Delivery
from digest.email.message import Envelope
from digest.state.store import open_store
from tests.helpers import AS_OF, TESTS, envelope, journal, no_mark, send
from tests.smtpd import FaultyServer, server_tls_context

FIXTURES = TESTS / "fixtures" / "send"
GARBAGE = ("hello there", "2x0 ok")


pytestmark = pytest.mark.workdir(FIXTURES / "five.csv")


@pytest.fixture(params=[True, False], ids=["pipelined", "lockstep"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[FaultyServer]:
    """Every fault here, met by the client with MAIL, RCPT and DATA in one write
    (the server offers PIPELINING) and one at a time (it does not)."""
    with FaultyServer(pipelining=request.param) as server:
        yield server


def deliver(server: FaultyServer, count: int, *, timeout: float = 5.0,
            before_each: Callable[[int], None] = lambda n: None) -> list[Delivery]:
    """Deliver envelope(1..count) in turn over one reused SmtpConnection."""
    config = SmtpConfig(host=server.host, port=server.port, implicit_tls=False, timeout=timeout)
    connection = SmtpTransport(config).connection()

    async def run() -> list[Delivery]:
        results = []
        try:
            for n in range(1, count + 1):
                before_each(n)
                results.append(await connection.deliver(envelope(n), no_mark))
        finally:
            await connection.close()
        return results

    return asyncio.run(run())


def copies(server: FaultyServer, address: str) -> int:
    return sum(message.rcpt_tos == [address] for message in server.received)


# --- after the final dot: whatever happens, the server may have the message ---------------


@pytest.mark.parametrize("fault", ["close", "reset", "timeout", *GARBAGE])
def test_after_the_dot_every_failure_is_ambiguous(smtp_server: FaultyServer, fault: str) -> None:
    if fault == "close":
        smtp_server.disconnect_after_dot()
    elif fault == "reset":
        smtp_server.reset_after_dot()
    elif fault == "timeout":
        smtp_server.delay_data(3.0)
    else:
        smtp_server.garbage_reply("dot", fault)
    first, second = deliver(smtp_server, 2, timeout=0.5 if fault == "timeout" else 5.0)
    assert (first.status, first.code, first.connection) == ("ambiguous", None, False)
    assert first.reply.startswith("no valid reply after the final dot: ")
    assert second.status == "sent"  # on a new connection: the old one cannot be trusted
    assert smtp_server.connections == 2
    assert [m.rcpt_tos for m in smtp_server.received] == [["reader1@example.org"],
                                                          ["reader2@example.org"]]


def test_a_garbage_reply_after_the_dot_is_named_in_the_journal_reply(
    smtp_server: FaultyServer,
) -> None:
    smtp_server.garbage_reply("dot", "2x0 ok")
    [delivery] = deliver(smtp_server, 1)
    assert delivery.reply == "no valid reply after the final dot: malformed reply: '2x0 ok'"


def test_a_reset_after_the_dot_is_not_resent_in_the_same_run(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.reset_after_dot("reader5@example.org")
    code, out, _ = send(smtp_server)
    assert code == 3
    assert "1 ambiguous" in out
    assert journal(workdir)["reader5@example.org"][:3] == ("ambiguous", 1, None)
    assert copies(smtp_server, "reader5@example.org") == 1  # no silent duplicate


# --- before the dot: a protocol fault is the connection's, and retried --------------------


@pytest.mark.parametrize("point", ["greeting", "mail", "rcpt", "data"])
@pytest.mark.parametrize("text", GARBAGE)
def test_a_garbage_reply_before_the_dot_is_retried_on_a_new_connection(
    smtp_server: FaultyServer, point: str, text: str
) -> None:
    smtp_server.garbage_reply(point, text)  # type: ignore[arg-type]
    first, second = deliver(smtp_server, 2)
    assert (first.status, first.code, first.connection) == ("deferred", None, True)
    assert first.reply.endswith(f"malformed reply: {text!r}")
    assert not first.bounce
    assert second.status == "sent"
    assert smtp_server.connections == 2
    assert [m.rcpt_tos for m in smtp_server.received] == [["reader2@example.org"]]


def test_a_garbage_reply_to_rcpt_is_retried_and_delivered_once(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.garbage_reply("rcpt", "hello there")
    code, _, _ = send(smtp_server, "--concurrency", "1")
    assert code == 0
    assert {status for status, *_ in journal(workdir).values()} == {"sent"}
    assert sum(len(m.rcpt_tos) for m in smtp_server.received) == 5


def test_a_close_after_354_is_retried_every_time(smtp_server: FaultyServer) -> None:
    # Fifty in a row: the client must see the close before its final dot every time,
    # however the threads happen to be scheduled.
    results = deliver(smtp_server, 51,
                      before_each=lambda n: smtp_server.disconnect_after_354() if n <= 50 else None)
    assert [(d.status, d.connection) for d in results[:50]] == [("deferred", True)] * 50
    assert {d.reply for d in results[:50]} == {
        "the server closed the connection before the final dot"}
    assert results[50].status == "sent"
    assert smtp_server.connections == 51
    assert [m.rcpt_tos for m in smtp_server.received] == [["reader51@example.org"]]


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "text", "status", "bounce"), [
    (550, "5.1.1 no such user", "failed", True),
    (550, "no such user", "failed", True),  # no enhanced code: by the basic one
    (550, "5.2.2 mailbox full", "failed", False),  # soft, as in a bounce message
    (554, "5.7.1 blocked by policy", "failed", False),  # says nothing about the address
    (550, "4.2.2 over quota, try later", "failed", False),
    (552, "5.2.2 mailbox full", "deferred", False),
])
def test_only_a_refusal_of_the_address_itself_at_rcpt_is_a_bounce(
    smtp_server: FaultyServer, code: int, text: str, status: str, bounce: bool,
) -> None:
    smtp_server.fail_rcpt("reader1@example.org", code, text)
    first, second = deliver(smtp_server, 2)
    assert (first.status, first.code, first.bounce) == (status, code, bounce)
    assert second.status == "sent"


def test_a_5xx_to_data_fails_the_recipient_without_suppressing_them(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_data("reader2@example.org", 554, "5.7.1 message looks like spam", times=3)
    code, _, _ = send(smtp_server)
    assert code == 3
    assert journal(workdir)["reader2@example.org"][:3] == ("failed", 1, 554)
    listed = CliRunner().invoke(cli, ["suppress", "list", "--format", "json"])
    assert json.loads(listed.stdout) == []
    assert smtp_server.pending_faults == 2  # never retried


def test_a_refused_login_stops_the_run(workdir: Path, tls_ca: trustme.CA,
                                       tls_ca_file: Path) -> None:
    with FaultyServer(tls_context=server_tls_context(tls_ca), auth=("news", "s3cret")) as server:
        code, out, err = send(server, "--ca-file", str(tls_ca_file), user="news",
                              env={"DIGEST_SMTP_PASSWORD": "wrong-password"})
        assert server.received == []
        assert server.auth_attempts >= 1
    assert code == 1
    assert err == ("Error: 127.0.0.1 refused the login for news: 535 5.7.8 Authentication "
                   "credentials invalid\n")
    assert "wrong-password" not in out + err


# --- certificates: a failure stops the run at once -----------------------------------------


def test_smtps_with_the_right_ca_delivers(workdir: Path, smtps_server: FaultyServer,
                                          tls_ca_file: Path) -> None:
    code, _, err = send(smtps_server, "--ca-file", str(tls_ca_file), scheme="smtps")
    assert (code, err) == (0, "")
    assert len(smtps_server.received) == 5


def test_smtps_with_an_unknown_ca_stops_the_run(workdir: Path,
                                                smtps_server: FaultyServer) -> None:
    code, _, err = send(smtps_server, "--concurrency", "1", scheme="smtps")
    assert code == 1
    assert err == ("Error: the certificate of 127.0.0.1 failed verification (unable to get "
                   "local issuer certificate); nothing was sent. Use --ca-file for a private "
                   "CA\n")
    assert smtps_server.received == []
    assert smtps_server.connections == 1  # no retry, no second connection
    assert smtps_server.ehlo_count == 0  # not a single command went over it


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context whose certificate signs itself (trustme's CA certificate)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "cert.pem"))
    ca.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_starttls_with_a_self_signed_certificate_stops_the_run(
    workdir: Path, self_signed: ssl.SSLContext, tls_ca_file: Path
) -> None:
    with FaultyServer(tls_context=self_signed) as server:
        code, _, err = send(server, "--concurrency", "1", "--ca-file", str(tls_ca_file))
        assert server.received == []
        assert server.connections == 1  # no retry, no second connection
        assert server.ehlo_count == 1  # the EHLO in the clear; none after STARTTLS
    assert code == 1
    assert err == ("Error: the certificate of 127.0.0.1 failed verification (self-signed "
                   "certificate); nothing was sent. Use --ca-file for a private CA\n")


# --- malformed transport URLs: one line, and never a password -----------------------------

FORM = "smtp://[user@]host[:port]"


@pytest.mark.parametrize(("spec", "error"), [
    ("smtp://[::1", f"cannot read 'smtp://[::1' as a URL; use {FORM}, with an IPv6 address in "
                    "brackets: smtp://[::1]:587"),
    ("smtp://mail.example.org:0",
     f"the port in 'smtp://mail.example.org:0' must be a number from 1 to 65535; use {FORM}"),
    ("smtp://mail.example.org:65536",
     f"the port in 'smtp://mail.example.org:65536' must be a number from 1 to 65535; use {FORM}"),
    ("smtp://mail.example.org:submission", "the port in 'smtp://mail.example.org:submission' "
                                           f"must be a number from 1 to 65535; use {FORM}"),
    ("smtp://mail.example.org/x",
     f"'smtp://mail.example.org/x' has a path; use {FORM}, with nothing after the port"),
    ("smtp://mail.example.org?a=b",
     f"'smtp://mail.example.org?a=b' has a query; use {FORM}, with nothing after the port"),
    ("smtp://mail.example.org#top",
     f"'smtp://mail.example.org#top' has a fragment; use {FORM}, with nothing after the port"),
    ("smtps:/news:hunter2@mail.example.org", "'smtps:/news:***@mail.example.org' lacks the // "
                                             "after smtps:; use smtps://[user@]host[:port]"),
    ("smtps:news:hunter2@mail.example.org", "'smtps:***@mail.example.org' lacks the // after "
                                            "smtps:; use smtps://[user@]host[:port]"),
    ("smpt://news:hunter2@mail.example.org",
     "unknown transport 'smpt://news:***@mail.example.org'; use maildir:PATH, "
     "smtp://[user@]host[:port] or smtps://[user@]host[:port]"),
    ("news:hunter2@mail.example.org",
     "unknown transport 'news:***@mail.example.org'; use maildir:PATH, "
     "smtp://[user@]host[:port] or smtps://[user@]host[:port]"),
    ("smtp://news:hunter2@mail.example.org/x",
     "a password does not belong in the transport URL (it would show in the process list); "
     "set DIGEST_SMTP_PASSWORD or smtp-password in the config file"),
])
def test_a_malformed_transport_is_one_line_without_the_password(
    workdir: Path, spec: str, error: str
) -> None:
    result = CliRunner().invoke(cli, ["send", "--as-of", AS_OF, "--list", "five.csv",
                                      "--transport", spec])
    assert (result.exit_code, result.stderr) == (1, f"Error: --transport: {error}\n")
    assert "hunter2" not in result.output
    assert not (workdir / ".digest").exists()  # refused before anything else happened


# --- rate control ---------------------------------------------------------------------------


def test_the_bucket_halves_on_throttling_and_wins_back_gently() -> None:
    bucket = TokenBucket(100.0)
    bucket.slow_down(observed=1_000.0)  # capped: the cap halves, whatever was achieved
    assert bucket.rate == 50.0
    bucket.slow_down(observed=1_000.0)
    assert bucket.rate == 25.0
    bucket.speed_up()
    assert bucket.rate == pytest.approx(25.0 * 1.05)
    for _ in range(200):
        bucket.speed_up()
    assert bucket.rate == 100.0  # never above the cap


def test_the_bucket_never_falls_below_its_floor_nor_rises_above_a_low_cap() -> None:
    bucket = TokenBucket(40.0)
    for _ in range(10):
        bucket.slow_down(observed=0.0)
    assert bucket.rate == TokenBucket.FLOOR
    low = TokenBucket(2.0)  # a cap below the floor stays the limit
    low.slow_down(observed=0.0)
    assert low.rate == 2.0


def test_an_uncapped_bucket_halves_what_was_achieved_and_frees_itself_again() -> None:
    bucket = TokenBucket(None)
    bucket.slow_down(observed=300.0)
    assert bucket.rate == 150.0
    while bucket.rate is not None:
        assert bucket.rate <= 10_000 * 1.05
        bucket.speed_up()
    assert bucket.cap is None


def test_the_bucket_spaces_acquisitions_at_its_rate() -> None:
    rate = 20.0

    async def acquire_all() -> tuple[float, list[float]]:
        bucket = TokenBucket(rate)
        started, stamps = time.monotonic(), []
        for _ in range(23):
            await bucket.acquire()
            stamps.append(time.monotonic())
        return started, stamps

    started, stamps = asyncio.run(acquire_all())
    # The first at once, not a second's worth: each later one is due 1/rate after the one
    # before, so no second of the send goes over the cap.
    assert stamps[0] - started < 1 / rate
    for later, stamp in enumerate(stamps[1:], start=1):
        assert stamp - started >= later / rate - 1e-6


def test_a_rate_below_one_a_second_still_hands_out_tokens() -> None:
    # As each of four workers gets with --rate 3: a bucket capped at its rate would
    # never hold a whole token, and the send would wait forever.
    async def two() -> float:
        bucket = TokenBucket(0.8)
        await asyncio.wait_for(bucket.acquire(), 1)
        started = time.monotonic()
        await asyncio.wait_for(bucket.acquire(), 5)
        return time.monotonic() - started

    assert asyncio.run(two()) >= 1 / 0.8 - 0.01


def test_421_and_454_lower_the_rate_of_a_send(smtp_server: FaultyServer, tmp_path: Path) -> None:
    smtp_server.throttle(421)
    smtp_server.throttle(454)
    config = SmtpConfig(host=smtp_server.host, port=smtp_server.port, implicit_tls=False)
    options = SendOptions(concurrency=1, rate=100.0, retry_delay=0.001)
    store = open_store(tmp_path, memory_journal=True)

    async def run() -> TokenBucket:
        sender = Sender(store.journal, "c", SmtpTransport(config), options, Tally())
        await sender.run(Job(envelope(n)) for n in range(1, 6))
        return sender.bucket

    bucket = asyncio.run(run())
    store.close()
    # Halved twice (100 -> 25), then 5% back for each of the five messages sent.
    assert bucket.rate == pytest.approx(25.0 * 1.05**5)
    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == [
        f"reader{n}@example.org" for n in range(1, 6)]



class _DeafToOneCancel:
    """A connection whose server is slow to greet, as in aiosmtplib on Python 3.11:
    a wait_for whose reply has just come returns it and drops the cancel, and the
    connection goes on to wait for the next reply."""

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)  # the greeting
        await asyncio.sleep(30)  # the reply to MAIL
        raise AssertionError("a stopped sender went on past MAIL")

    async def close(self) -> None:
        pass


class _DeafTransport:
    description = "deaf://"

    def connection(self) -> _DeafToOneCancel:
        return _DeafToOneCancel()


def test_a_stop_cuts_a_connection_that_dropped_the_first_cut(tmp_path: Path) -> None:
    store = open_store(tmp_path, memory_journal=True)
    began = time.monotonic()

    async def run() -> None:
        sender = Sender(store.journal, "c", _DeafTransport(), SendOptions(concurrency=2),
                        Tally(), stopping=lambda: time.monotonic() - began > 0.3)
        await asyncio.wait_for(sender.run(Job(envelope(n)) for n in range(1, 6)), 20)

    asyncio.run(run())
    store.close()
    assert time.monotonic() - began < 10  # cut again at the next look, not after 30 s
