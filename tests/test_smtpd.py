"""The scriptable SMTP server in tests/smtpd.py, exercised with the stdlib smtplib client."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.smtpd import FaultyServer, server_tls_context

SENDER = "newsletter@example.org"
ALICE = "alice@example.com"
BOB = "bob@example.com"
USER, PASSWORD = "digest", "s3cret"


def message(message_id: str = "<issue-1@example.org>", body: str = "Hello.") -> str:
    return (
        f"From: {SENDER}\r\nTo: {ALICE}\r\nSubject: Weekly\r\n"
        f"Message-ID: {message_id}\r\n\r\n{body}\r\n"
    )


def connect(server: FaultyServer, timeout: float = 2.0) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=timeout)


def raw_session(server: FaultyServer) -> socket.socket:
    """A bare socket that has done EHLO, MAIL FROM and RCPT TO."""
    sock = socket.create_connection((server.host, server.port), timeout=2.0)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220")
    sock.sendall(b"EHLO client.test\r\n")
    while not reader.readline().startswith(b"250 "):
        pass
    for command in (f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{ALICE}>"):
        sock.sendall(command.encode() + b"\r\n")
        assert reader.readline().startswith(b"250")
    reader.close()  # the socket stays open; nothing is left buffered in the reader
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def tls_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    return server_tls_context(tls_ca)


@pytest.fixture
def client_context(tls_ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_ca_file))


@pytest.fixture
def auth_tls_server(tls_context: ssl.SSLContext) -> Iterator[FaultyServer]:
    with FaultyServer(tls_context=tls_context, auth=(USER, PASSWORD)) as server:
        yield server


# --- normal operation --------------------------------------------------------------------


def test_normal_send_is_recorded(smtp_server: FaultyServer) -> None:
    assert smtp_server.host == "127.0.0.1"
    assert smtp_server.port > 0
    with connect(smtp_server) as client:
        client.sendmail(SENDER, [ALICE, BOB], message(body=".leading dot\r\n..two"))

    [received] = smtp_server.received
    assert received.mail_from == SENDER
    assert received.rcpt_tos == [ALICE, BOB]
    assert received.message_id == "<issue-1@example.org>"
    # Dot-unstuffed, CRLF line ends, no final dot.
    assert received.data.endswith(b"\r\n\r\n.leading dot\r\n..two\r\n")
    assert smtp_server.connections == 1
    assert smtp_server.ehlo_count == 1
    assert smtp_server.auth_attempts == 0


def test_message_id_is_none_without_header_and_unfolded_when_folded(
    smtp_server: FaultyServer,
) -> None:
    with connect(smtp_server) as client:
        client.sendmail(SENDER, [ALICE], "Subject: none\r\n\r\nbody\r\n")
        client.sendmail(SENDER, [ALICE], "Message-ID:\r\n <folded@x.test>\r\n\r\nbody\r\n")
    assert [r.message_id for r in smtp_server.received] == [None, "<folded@x.test>"]


def test_ehlo_advertises_smtputf8_and_no_auth_by_default(smtp_server: FaultyServer) -> None:
    with connect(smtp_server) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        assert not client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGRpZ2VzdABzM2NyZXQ=")[0] == 502
        assert b"MAIL" in client.help()
    assert smtp_server.auth_attempts == 1


def test_smtputf8_can_be_switched_off() -> None:
    with FaultyServer(smtputf8=False) as server, connect(server) as client:
        client.ehlo()
        assert not client.has_extn("smtputf8")


def test_servers_get_distinct_ports_and_stop_is_idempotent() -> None:
    with FaultyServer() as one, FaultyServer() as two:
        assert one.port != two.port
    one.stop()
    with pytest.raises(OSError):
        socket.create_connection((one.host, one.port), timeout=1.0)


def test_stop_closes_open_connections_promptly() -> None:
    server = FaultyServer()
    server.start()
    client = connect(server)
    client.ehlo()
    server.delay_data(30)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()


# --- faults ------------------------------------------------------------------------------


def test_fail_rcpt_for_one_address(smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt(BOB, 550, "5.1.1 No such user")
    with connect(smtp_server) as client:
        refused = client.sendmail(SENDER, [ALICE, BOB], message())
    assert refused == {BOB: (550, b"5.1.1 No such user")}
    assert [r.rcpt_tos for r in smtp_server.received] == [[ALICE]]


def test_fail_rcpt_for_any_address(smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt(None, 452, "4.2.2 Mailbox full")
    with connect(smtp_server) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        client.sendmail(SENDER, [ALICE], message())
    assert info.value.recipients == {ALICE: (452, b"4.2.2 Mailbox full")}
    assert smtp_server.received == []


def test_fail_rcpt_address_match_ignores_case(smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt("Alice@Example.COM", 550)
    with connect(smtp_server) as client, pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail(SENDER, [ALICE], message())


def test_fail_data(smtp_server: FaultyServer) -> None:
    smtp_server.fail_data(ALICE, 554, "5.7.1 Spam")
    with connect(smtp_server) as client:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail(SENDER, [ALICE], message())
        assert (info.value.smtp_code, info.value.smtp_error) == (554, b"5.7.1 Spam")
        assert smtp_server.received == []
        client.sendmail(SENDER, [ALICE], message())  # same connection, fault used up
    assert len(smtp_server.received) == 1


def test_fail_data_only_for_messages_to_the_address(smtp_server: FaultyServer) -> None:
    smtp_server.fail_data(BOB, 451)
    with connect(smtp_server) as client:
        client.sendmail(SENDER, [ALICE], message("<a@x>"))
        with pytest.raises(smtplib.SMTPDataError):
            client.sendmail(SENDER, [ALICE, BOB], message("<b@x>"))
    assert [r.message_id for r in smtp_server.received] == ["<a@x>"]


def test_fail_greeting(smtp_server: FaultyServer) -> None:
    smtp_server.fail_greeting(421)
    with pytest.raises(smtplib.SMTPConnectError) as info:
        connect(smtp_server)
    assert info.value.smtp_code == 421
    with connect(smtp_server) as client:  # the next connection is greeted normally
        assert client.noop()[0] == 250
    assert smtp_server.connections == 2


def test_disconnect_after_354(smtp_server: FaultyServer) -> None:
    smtp_server.disconnect_after_354()
    with connect(smtp_server) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail(SENDER, [ALICE], message())
    assert smtp_server.received == []


def test_disconnect_after_354_does_not_wait_for_the_body(smtp_server: FaultyServer) -> None:
    smtp_server.disconnect_after_354()
    with raw_session(smtp_server) as sock:
        sock.sendall(b"DATA\r\n")
        # No body is sent: the server must send 354 and close on its own.
        assert read_all(sock).startswith(b"354 ")
    assert smtp_server.received == []


def test_disconnect_after_dot_records_the_message(smtp_server: FaultyServer) -> None:
    smtp_server.disconnect_after_dot()
    with connect(smtp_server) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail(SENDER, [ALICE], message("<dup@x>"))
    # Delivered as far as the server is concerned: a retry makes a duplicate.
    with connect(smtp_server) as client:
        client.sendmail(SENDER, [ALICE], message("<dup@x>"))
    assert [r.message_id for r in smtp_server.received] == ["<dup@x>", "<dup@x>"]


def test_disconnect_after_dot_sends_no_reply(smtp_server: FaultyServer) -> None:
    smtp_server.disconnect_after_dot(ALICE)
    with raw_session(smtp_server) as sock:
        sock.sendall(b"DATA\r\n")
        assert sock.recv(100).startswith(b"354 ")
        sock.sendall(message().encode() + b".\r\n")
        assert read_all(sock) == b""
    assert len(smtp_server.received) == 1


def test_disconnect_after_354_sends_its_close_with_the_354(smtp_server: FaultyServer) -> None:
    smtp_server.disconnect_after_354()
    with raw_session(smtp_server) as sock:
        sock.sendall(b"DATA\r\n")
        assert sock.recv(100).startswith(b"354 ")
        # The FIN came in the same segment: it is queued the moment the 354 is.
        assert sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""


def test_reset_after_dot_records_the_message_and_resets(smtp_server: FaultyServer) -> None:
    smtp_server.reset_after_dot(ALICE)
    with raw_session(smtp_server) as sock:
        sock.sendall(b"DATA\r\n")
        assert sock.recv(100).startswith(b"354 ")
        sock.sendall(message("<reset@x>").encode() + b".\r\n")
        with pytest.raises(ConnectionResetError):
            read_all(sock)
    assert [r.message_id for r in smtp_server.received] == ["<reset@x>"]


def test_garbage_replies_at_each_point(smtp_server: FaultyServer) -> None:
    for point in ("greeting", "mail", "rcpt", "data", "dot"):
        smtp_server.garbage_reply(point, f"garbage at {point}")  # type: ignore[arg-type]
    with socket.create_connection((smtp_server.host, smtp_server.port), timeout=2.0) as sock:
        reader = sock.makefile("rb")

        def say(line: bytes) -> bytes:
            sock.sendall(line + b"\r\n")
            return reader.readline()

        assert reader.readline() == b"garbage at greeting\r\n"
        sock.sendall(b"EHLO client.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        assert say(f"MAIL FROM:<{SENDER}>".encode()) == b"garbage at mail\r\n"
        assert say(f"MAIL FROM:<{SENDER}>".encode()).startswith(b"250")
        assert say(f"RCPT TO:<{ALICE}>".encode()) == b"garbage at rcpt\r\n"
        assert say(f"RCPT TO:<{ALICE}>".encode()).startswith(b"250")
        assert say(b"DATA") == b"garbage at data\r\n"
        assert say(b"DATA").startswith(b"354 ")
        assert say(message("<garbage@x>").encode() + b".") == b"garbage at dot\r\n"
        assert say(b"NOOP").startswith(b"250")  # the connection stays open
        reader.close()
    assert [r.message_id for r in smtp_server.received] == ["<garbage@x>"]
    assert smtp_server.pending_faults == 0


def test_delay_data_makes_the_client_time_out(smtp_server: FaultyServer) -> None:
    smtp_server.delay_data(1.0)
    with (
        connect(smtp_server, timeout=0.2) as client,
        pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"),
    ):
        client.sendmail(SENDER, [ALICE], message())
    assert len(smtp_server.received) == 1  # recorded before the delay


def test_delay_data_shorter_than_the_timeout_succeeds(smtp_server: FaultyServer) -> None:
    smtp_server.delay_data(0.1)
    with connect(smtp_server, timeout=2.0) as client:
        started = time.monotonic()
        client.sendmail(SENDER, [ALICE], message())
        assert time.monotonic() - started >= 0.1
    assert len(smtp_server.received) == 1


def test_delay_data_after_lets_the_first_messages_through(smtp_server: FaultyServer) -> None:
    smtp_server.delay_data(1.0, after=2)
    with connect(smtp_server, timeout=0.2) as client:
        client.sendmail(SENDER, [ALICE], message("<one@x>"))
        client.sendmail(SENDER, [ALICE], message("<two@x>"))
        assert smtp_server.pending_faults == 1
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.sendmail(SENDER, [ALICE], message("<three@x>"))
    assert [r.message_id for r in smtp_server.received] == ["<one@x>", "<two@x>", "<three@x>"]
    assert smtp_server.pending_faults == 0


def test_throttle_421_refuses_and_closes(smtp_server: FaultyServer) -> None:
    smtp_server.throttle(421)
    with connect(smtp_server) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_throttle_454_refuses_and_keeps_the_connection(smtp_server: FaultyServer) -> None:
    smtp_server.throttle(454)
    with connect(smtp_server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail(SENDER, [ALICE], message())
        assert info.value.smtp_code == 454
        client.sendmail(SENDER, [ALICE], message())
    assert len(smtp_server.received) == 1


def test_any_421_fault_reply_closes_the_connection(smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt(None, 421)
    with connect(smtp_server) as client:
        client.ehlo()
        client.mail(SENDER)
        assert client.rcpt(ALICE)[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_times_applies_a_fault_n_times_then_behaves_normally(smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt(None, 450, times=2)
    assert smtp_server.pending_faults == 2
    with connect(smtp_server) as client:
        client.ehlo()
        client.mail(SENDER)
        codes = [client.rcpt(ALICE)[0] for _ in range(3)]
    assert codes == [450, 450, 250]
    assert smtp_server.pending_faults == 0


def test_faults_apply_in_the_order_scripted(smtp_server: FaultyServer) -> None:
    smtp_server.fail_data(None, 451)
    smtp_server.disconnect_after_dot()
    with connect(smtp_server) as client:
        with pytest.raises(smtplib.SMTPDataError):
            client.sendmail(SENDER, [ALICE], message("<1@x>"))
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail(SENDER, [ALICE], message("<2@x>"))
    with connect(smtp_server) as client:
        client.sendmail(SENDER, [ALICE], message("<3@x>"))
    assert [r.message_id for r in smtp_server.received] == ["<2@x>", "<3@x>"]


def test_greeting_faults_repeat(smtp_server: FaultyServer) -> None:
    smtp_server.fail_greeting(554, times=2)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPConnectError):
            connect(smtp_server)
    connect(smtp_server).quit()
    assert smtp_server.connections == 3


def test_scripting_rejects_nonsense(smtp_server: FaultyServer) -> None:
    with pytest.raises(ValueError):
        smtp_server.fail_rcpt(None, 250)
    with pytest.raises(ValueError):
        smtp_server.disconnect_after_dot(times=0)
    with pytest.raises(ValueError):
        smtp_server.delay_data(-1)
    with pytest.raises(ValueError):
        smtp_server.delay_data(1, after=-1)
    with pytest.raises(ValueError):
        smtp_server.garbage_reply("quit")  # type: ignore[arg-type]
    assert smtp_server.pending_faults == 0


# --- TLS and AUTH ------------------------------------------------------------------------


def test_starttls_verifies_against_the_test_ca(
    tls_smtp_server: FaultyServer, client_context: ssl.SSLContext, tls_ca_file: Path
) -> None:
    assert tls_ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # smtplib checks the certificate against the host name it connected to.
    with smtplib.SMTP("localhost", tls_smtp_server.port, timeout=2.0) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=client_context)
        client.sendmail(SENDER, [ALICE], message())
    assert len(tls_smtp_server.received) == 1
    assert tls_smtp_server.ehlo_count == 2  # smtplib re-EHLOs after STARTTLS


def test_starttls_with_ip_address_host(
    tls_smtp_server: FaultyServer, client_context: ssl.SSLContext
) -> None:
    with connect(tls_smtp_server) as client:
        client.starttls(context=client_context)
        client.ehlo()
        assert not client.has_extn("starttls")
        assert client.noop()[0] == 250


def test_starttls_rejects_an_unknown_ca(tls_smtp_server: FaultyServer) -> None:
    untrusting = ssl.create_default_context(cadata=trustme.CA().cert_pem.bytes().decode())
    with connect(tls_smtp_server) as client, pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=untrusting)


def test_require_starttls_refuses_mail_and_counts_auth(tls_context: ssl.SSLContext) -> None:
    with FaultyServer(tls_context=tls_context, require_starttls=True) as server:
        with connect(server) as client:
            client.ehlo()
            assert client.mail(SENDER)[0] == 530
            assert client.docmd("AUTH", "PLAIN AGRpZ2VzdABzM2NyZXQ=")[0] == 530
        assert server.auth_attempts == 1


def test_auth_over_tls(auth_tls_server: FaultyServer, client_context: ssl.SSLContext) -> None:
    with connect(auth_tls_server) as client:
        client.ehlo()
        assert not client.has_extn("auth")  # only offered under TLS
        client.starttls(context=client_context)
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(USER, "wrong")  # smtplib tries PLAIN, then LOGIN
        assert info.value.smtp_code == 535
        assert auth_tls_server.auth_attempts == 2
        client.login(USER, PASSWORD)
        client.sendmail(SENDER, [ALICE], message())
    assert len(auth_tls_server.received) == 1
    assert auth_tls_server.auth_attempts == 3


def test_auth_login_mechanism(
    auth_tls_server: FaultyServer, client_context: ssl.SSLContext
) -> None:
    with connect(auth_tls_server) as client:
        client.starttls(context=client_context)
        client.ehlo()
        client.user, client.password = USER, PASSWORD
        assert client.auth("LOGIN", client.auth_login)[0] == 235
    assert auth_tls_server.auth_attempts == 1


def test_auth_is_required_before_mail(
    auth_tls_server: FaultyServer, client_context: ssl.SSLContext
) -> None:
    with connect(auth_tls_server) as client:
        client.starttls(context=client_context)
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail(SENDER, [ALICE], message())
        assert info.value.smtp_code == 530
    assert auth_tls_server.received == []


def test_auth_before_starttls_is_refused_and_counted(auth_tls_server: FaultyServer) -> None:
    with connect(auth_tls_server) as client:
        client.ehlo()
        assert client.docmd("AUTH", "PLAIN AGRpZ2VzdABzM2NyZXQ=")[0] == 538
    assert auth_tls_server.auth_attempts == 1


def test_auth_without_tls_is_advertised_in_plaintext() -> None:
    with FaultyServer(auth=(USER, PASSWORD)) as server:
        with connect(server) as client:
            client.ehlo()
            assert client.has_extn("auth")
            # A careful client stops here; the server saw no AUTH.
        assert server.auth_attempts == 0
        with connect(server) as client:
            client.login(USER, PASSWORD)  # smtplib is not careful: it would send it
        assert server.auth_attempts == 1


def test_implicit_tls(tls_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    with FaultyServer(tls_context=tls_context, implicit_tls=True, auth=(USER, PASSWORD)) as server:
        with smtplib.SMTP_SSL(
            server.host, server.port, context=client_context, timeout=2
        ) as client:
            client.ehlo()
            assert not client.has_extn("starttls")
            client.login(USER, PASSWORD)  # AUTH is offered at once: the link is encrypted
            client.sendmail(SENDER, [ALICE], message("<1@x>"))
            server.disconnect_after_dot()
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail(SENDER, [ALICE], message("<2@x>"))
        assert [r.message_id for r in server.received] == ["<1@x>", "<2@x>"]


def test_implicit_tls_needs_a_context() -> None:
    with pytest.raises(ValueError):
        FaultyServer(implicit_tls=True)
