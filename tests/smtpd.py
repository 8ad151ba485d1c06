"""A real, scriptable SMTP server for delivery tests.

`FaultyServer` runs aiosmtpd on 127.0.0.1 (port 0, so every server gets a free port) in a
background thread with its own event loop. The client under test talks TCP to it; nothing on
the client side is mocked. Tests script faults before sending::

    server.fail_rcpt("bounce@example.org", 550)  # next RCPT TO that address gets 550
    server.disconnect_after_dot(times=2)          # next two messages: read, record, hang up

Faults are kept in the order they were scripted. At each point of the SMTP dialogue the
first pending fault for that point whose address matches is used once; after `times` uses
it is gone and the server behaves normally again. The points are: the greeting
(`fail_greeting`), MAIL FROM (`throttle`), RCPT TO (`fail_rcpt`), the DATA command
(`disconnect_after_354`) and the final dot (`fail_data`, `disconnect_after_dot`,
`reset_after_dot`, `delay_data`; these share one queue, so at most one of them applies to a
message). `garbage_reply(point)` answers any point with a line that is not "NNN text" and
joins that point's queue. `delay_data(after=N)` first lets N messages through untouched; while
it does, the faults scripted after it at the dot wait their turn.

Any fault reply with code 421 closes the connection right after the reply, as RFC 5321
section 3.8 has a server do. A reply followed by a hang-up (421s, and the 354 of
`disconnect_after_354`) leaves in one TCP segment with the FIN (TCP_CORK, on Linux): the
client finds the close already queued when it reads the reply, so a test of "the server hung
up before the final dot" does not depend on thread scheduling.

What lands in `received`: every message the server accepted (250), plus the messages of
`disconnect_after_dot`, `reset_after_dot`, `delay_data` and a garbage reply at the dot
(recorded as soon as the final dot is read, before the drop, the sleep or the reply), so tests
can count duplicate deliveries. Messages refused by `fail_data` are not recorded.

How it hooks into aiosmtpd (tests/smtpd_protocol.py, one FaultySMTP per connection). Its
public handler hooks do most of the work: `handle_EHLO`, `handle_MAIL`, `handle_RCPT` and
`handle_DATA` return the scripted replies, and the `auth_required`, `authenticator` and
`auth_require_tls` constructor arguments do AUTH. The rest overrides what aiosmtpd documents
as overridable on its SMTP class (`smtp_<COMMAND>` methods, `push`, `_create_session`) and
asyncio's transport API, because no hook reaches it:

* the greeting is pushed before any hook runs, so a greeting fault replaces it in `push`;
* `handle_DATA` runs only once the whole body has been read, so dropping the connection
  right after 354, or a garbage reply to DATA, needs `smtp_DATA`;
* aiosmtpd's own `require_starttls` refuses a command before any method or hook sees it,
  and `auth_attempts` must count an AUTH sent in the clear (that is what a test checks), so
  every `smtp_<COMMAND>` is wrapped to count, then to enforce STARTTLS itself;
* hanging up, with or without a reset, and corking the reply with the FIN use the transport
  and its socket.

Fixtures (`smtp_server`, `smtps_server`, `tls_ca`, `tls_ca_file`, `tls_smtp_server`) are in
tests/smtpd_fixtures.py, which tests/conftest.py registers for every test::

    pytest_plugins = ["tests.smtpd_fixtures"]

A test module must not import the fixture names themselves: ruff reports the test
parameters as F811 redefinitions.

Always import this module as `tests.smtpd`: pytest puts tests/ itself on sys.path, where the
bare name `smtpd` would be a second copy of this module (and shadows the stdlib `smtpd`).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.smtpd_protocol import POINTS, SERVER_NAME, Fault, FaultySMTP, Point

HOST = "127.0.0.1"
_STOP_TIMEOUT = 5.0


@dataclass
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    """Message content as received: CRLF line endings, dot-unstuffed, final dot removed."""
    message_id: str | None
    """The Message-ID header, angle brackets included, unfolded; None without one."""


def _same_address(a: str, b: str) -> bool:
    return a.strip("<> ").casefold() == b.strip("<> ").casefold()


def _message_id(data: bytes) -> str | None:
    headers = BytesHeaderParser(policy=compat32).parsebytes(data)
    value = headers.get("Message-ID")
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def _check_times(times: int) -> None:
    if times < 1:
        raise ValueError(f"times must be at least 1, got {times}")


def _check_code(code: int) -> None:
    if not 400 <= code <= 599:
        raise ValueError(f"a fault needs a 4xx or 5xx reply code, got {code}")


class FaultyServer:
    """A real SMTP server on 127.0.0.1 whose replies tests can script.

    With `tls_context` the server offers STARTTLS (and refuses mail commands before it if
    `require_starttls`); with `implicit_tls` too, it speaks TLS from the first byte instead
    (SMTPS, "smtps://") and offers no STARTTLS.

    With `auth=(user, password)` it advertises AUTH PLAIN LOGIN, accepts only that pair and
    refuses MAIL FROM (and RCPT, DATA, HELP, VRFY) with 530 until the client authenticated.
    AUTH is advertised only after STARTTLS when STARTTLS is offered (at once with implicit
    TLS); without `tls_context` it is advertised in plaintext, so a test can check that the
    client declines to use it (`auth_attempts` stays 0). Without `auth`, AUTH is not
    advertised and gets 502.

    PIPELINING is advertised, as real MTAs do, unless `pipelining=False`: aiosmtpd reads
    the commands of a pipelined group in turn and answers each, so the client's pipelined
    path and its lockstep one meet the same faults.

    Counters (`connections`, `ehlo_count`, `auth_attempts`) and `received` are updated by
    the server thread before it sends the reply that concerns them, so they are up to date
    whenever the client has seen that reply.
    """

    host: str
    port: int
    received: list[Received]
    connections: int
    """Connections accepted so far (a STARTTLS upgrade is not a new connection)."""
    ehlo_count: int
    """EHLO commands received so far, over all connections (HELO is not counted)."""
    auth_attempts: int
    """AUTH commands received so far, over all connections, whatever the outcome."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        auth: tuple[str, str] | None = None,
        smtputf8: bool = True,
        implicit_tls: bool = False,
        pipelining: bool = True,
    ) -> None:
        if (require_starttls or implicit_tls) and tls_context is None:
            raise ValueError("require_starttls and implicit_tls need a tls_context")
        if require_starttls and implicit_tls:
            raise ValueError("implicit_tls offers no STARTTLS to require")
        self.host = HOST
        self.port = 0
        self.received = []
        self.connections = 0
        self.ehlo_count = 0
        self.auth_attempts = 0
        self.tls_context = tls_context
        self.require_starttls = require_starttls
        self.auth = auth
        self.smtputf8 = smtputf8
        self.implicit_tls = implicit_tls
        self.pipelining = pipelining
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[FaultySMTP] = set()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Bind 127.0.0.1:0 and serve from a daemon thread; `port` is set on return."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                tls = self.tls_context if self.implicit_tls else None
                server = loop.run_until_complete(
                    loop.create_server(self._new_session, self.host, 0, ssl=tls)
                )
                self._server = server
                self.port = server.sockets[0].getsockname()[1]
            except BaseException as error:  # reported by start(), in the caller's thread
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"FaultyServer-{id(self):x}", daemon=True)
        self._thread.start()
        if not ready.wait(_STOP_TIMEOUT):
            raise TimeoutError("SMTP server thread did not start")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]

    def stop(self) -> None:
        """Close the listener and every open connection, then end the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(_STOP_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT)
            self._thread = self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for session in list(self._sessions):
            session.hang_up()
        # Let the transports run connection_lost (which really closes the sockets).
        for _ in range(100):
            if not self._sessions:
                break
            await asyncio.sleep(0.01)
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- scripting -------------------------------------------------------------------

    def fail_rcpt(
        self,
        address: str | None,
        code: int,
        text: str = "Mailbox unavailable",
        times: int = 1,
    ) -> None:
        """Reply `code text` to RCPT TO `address` (None: any recipient)."""
        _check_code(code)
        self._add(Fault("rcpt", "reply", times, address=address, code=code, text=text))

    def fail_data(
        self,
        address: str | None,
        code: int,
        text: str = "Message rejected",
        times: int = 1,
    ) -> None:
        """After the final dot of a message to `address` (None: any), reply `code text`.

        The whole message is read first; it is not recorded in `received`.
        """
        _check_code(code)
        self._add(Fault("dot", "reply", times, address=address, code=code, text=text))

    def fail_greeting(self, code: int = 421, times: int = 1) -> None:
        """Greet new connections with `code` instead of 220, then close them."""
        _check_code(code)
        text = f"{SERVER_NAME} Service not available, closing transmission channel"
        self._add(Fault("greeting", "reply", times, code=code, text=text))

    def disconnect_after_354(self, times: int = 1) -> None:
        """Answer DATA with 354, then close the connection without reading any body."""
        self._add(Fault("data", "drop", times))

    def disconnect_after_dot(self, address: str | None = None, times: int = 1) -> None:
        """Read a whole message to `address` (None: any), record it, close without reply."""
        self._add(Fault("dot", "drop", times, address=address))

    def delay_data(self, seconds: float, times: int = 1, after: int = 0) -> None:
        """Record the message at the final dot, sleep `seconds`, then reply 250 as usual.

        The first `after` messages pass untouched. If the client gives up during the sleep,
        the message stays recorded. A long delay holds a connection: a test that must
        kill a sender mid-run holds all of them, so the sender cannot finish first.
        """
        if seconds < 0 or after < 0:
            raise ValueError(f"seconds and after must not be negative, got {seconds}, {after}")
        self._add(Fault("dot", "delay", times, seconds=seconds, after=after))

    def throttle(self, code: int = 421, times: int = 1) -> None:
        """Reply `code` (421 or 454, typically) to MAIL FROM; 421 also closes the connection."""
        _check_code(code)
        text = (
            "4.7.0 Too many messages, closing connection"
            if code == 421
            else f"{code // 100}.7.0 Too many messages, try again later"
        )
        self._add(Fault("mail", "reply", times, code=code, text=text))

    def reset_after_dot(self, address: str | None = None, times: int = 1) -> None:
        """Read a whole message to `address` (None: any), record it, then reset the connection
        (RST, not FIN) without a reply."""
        self._add(Fault("dot", "reset", times, address=address))

    def garbage_reply(self, point: Point, text: str = "hello there", times: int = 1) -> None:
        """At `point` ("greeting", "mail", "rcpt", "data" or "dot"), reply `text`, a line that
        is not "NNN text", instead of the real reply; the connection stays open.

        At "data" the garbage replaces the 354, so no body is read. At "dot" the whole message
        is read and recorded first.
        """
        if point not in POINTS:
            raise ValueError(f"point must be one of {', '.join(POINTS)}, got {point!r}")
        self._add(Fault(point, "garbage", times, text=text))

    @property
    def pending_faults(self) -> int:
        """Scripted fault uses not consumed yet (0 once every fault has fired)."""
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def _add(self, fault: Fault) -> None:
        _check_times(fault.remaining)
        with self._lock:
            self._faults.append(fault)

    def _take(self, point: Point, addresses: Iterable[str] = ()) -> Fault | None:
        """Use the first pending fault for `point` that matches one of `addresses`."""
        with self._lock:
            for fault in self._faults:
                if fault.point != point:
                    continue
                if fault.address is not None and not any(
                    _same_address(fault.address, a) for a in addresses
                ):
                    continue
                if fault.after:
                    fault.after -= 1
                    return None
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # --- server side -----------------------------------------------------------------

    def _new_session(self) -> FaultySMTP:
        with self._lock:
            self.connections += 1
        assert self._loop is not None
        return FaultySMTP(self, self._loop)

    def _count_command(self, command: str) -> None:
        with self._lock:
            if command == "EHLO":
                self.ehlo_count += 1
            elif command == "AUTH":
                self.auth_attempts += 1

    def _record(self, envelope: Envelope) -> None:
        data = bytes(envelope.original_content or b"")
        message = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message_id=_message_id(data),
        )
        with self._lock:
            self.received.append(message)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == self.auth[0].encode()
            and auth_data.password == self.auth[1].encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def write_ca_pem(ca: trustme.CA, path: Path) -> Path:
    """Write the CA certificate as PEM to `path` (for a client's cafile) and return it."""
    ca.cert_pem.write_to_path(str(path))
    return path


def server_tls_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side context with a cert for 127.0.0.1 and localhost issued by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "localhost").configure_cert(context)
    return context
