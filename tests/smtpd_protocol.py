"""The aiosmtpd side of tests/smtpd.py's FaultyServer: one `FaultySMTP` protocol per connection.

Its public handler hooks (`FaultHandler`) return the scripted replies for whole commands; the
rest overrides what aiosmtpd documents as overridable on its SMTP class, and asyncio's
transport API, because no hook reaches it (tests/smtpd.py's docstring says why each).
A `Fault` is one scripted fault; FaultyServer keeps the queue and hands them out.

Import it as `tests.smtpd_protocol`, never bare (see tests/smtpd.py).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AnyStr, Literal, TypeVar

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

if TYPE_CHECKING:
    from tests.smtpd import FaultyServer

SERVER_NAME = "localhost"
"""The name the server gives itself in its greeting and EHLO reply."""

# Commands aiosmtpd lets through before STARTTLS when STARTTLS is required (RFC 3207).
_ALLOWED_BEFORE_STARTTLS = frozenset({"NOOP", "EHLO", "STARTTLS", "QUIT"})

Point = Literal["greeting", "mail", "rcpt", "data", "dot"]
POINTS: tuple[Point, ...] = ("greeting", "mail", "rcpt", "data", "dot")
Action = Literal["reply", "drop", "reset", "delay", "garbage"]


@dataclass
class Fault:
    """One scripted fault: at `point`, let `after` matches pass untouched, then do `action`
    for the next `remaining` matches."""

    point: Point
    action: Action
    remaining: int
    address: str | None = None
    code: int = 0
    text: str = ""
    seconds: float = 0.0
    after: int = 0

    def reply(self) -> str:
        return self.text if self.action == "garbage" else f"{self.code} {self.text}"


_F = TypeVar("_F", bound=Callable[..., Any])


def _same_help(parent: Callable[..., Any]) -> Callable[[_F], _F]:
    """Give an smtp_* override the HELP text (aiosmtpd's @syntax) of the method it overrides."""

    def decorate(method: _F) -> _F:
        for name in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
            setattr(method, name, getattr(parent, name))
        return method

    return decorate


class QuietSession(Session):
    """aiosmtpd's Session without the deprecation warning it logs on every successful AUTH."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._login: Any = None
        super().__init__(loop)

    @property
    def login_data(self) -> Any:
        return self._login

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login = value


class FaultHandler:
    """aiosmtpd handler hooks: the faults that a reply to a whole command can express."""

    def __init__(self, owner: FaultyServer) -> None:
        self._owner = owner

    async def handle_EHLO(
        self,
        server: FaultySMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to a 5-argument EHLO hook
        if self._owner.auth is None:
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        if self._owner.pipelining:  # aiosmtpd reads commands in turn, so it can pipeline
            responses = [responses[0], "250-PIPELINING", *responses[1:]]
        return responses

    async def handle_MAIL(
        self,
        server: FaultySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> Any:
        fault = self._owner._take("mail")
        return MISSING if fault is None else server.fault_reply(fault)

    async def handle_RCPT(
        self,
        server: FaultySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> Any:
        fault = self._owner._take("rcpt", [address])
        return MISSING if fault is None else server.fault_reply(fault)

    async def handle_DATA(self, server: FaultySMTP, session: Session, envelope: Envelope) -> str:
        fault = self._owner._take("dot", envelope.rcpt_tos)
        if fault is not None and fault.action == "reply":
            return server.fault_reply(fault)
        self._owner._record(envelope)
        if fault is None:
            return "250 2.0.0 OK: queued"
        if fault.action == "garbage":
            return fault.reply()
        if fault.action == "delay":
            await asyncio.sleep(fault.seconds)
            return "250 2.0.0 OK: queued"
        server.hang_up(reset=fault.action == "reset")
        raise asyncio.CancelledError  # end this session now, like a lost connection


def _counted(method: Callable[[FaultySMTP, str | None], Awaitable[None]]) -> Any:
    """Wrap an smtp_<COMMAND> method: count the command, then enforce STARTTLS if required.

    aiosmtpd's own `require_starttls` would refuse the command before any method saw it, so an
    AUTH sent in the clear would go uncounted. functools.wraps keeps HELP's syntax attributes.
    """
    name = method.__name__.removeprefix("smtp_")

    @functools.wraps(method)
    async def command(self: FaultySMTP, arg: str | None) -> None:
        self._owner._count_command(name)
        assert self.session is not None
        if (
            self._owner.require_starttls
            and self.session.ssl is None  # set by aiosmtpd once STARTTLS has succeeded
            and name not in _ALLOWED_BEFORE_STARTTLS
        ):
            await self.push("530 5.7.0 Must issue a STARTTLS command first")
            return
        await method(self, arg)

    return command


class FaultySMTP(SMTP):
    """aiosmtpd's protocol, with the faults that handler hooks cannot express."""

    def __init__(self, owner: FaultyServer, loop: asyncio.AbstractEventLoop) -> None:
        self._owner = owner
        self._greeted = False
        self._hang_up_after_reply = False
        super().__init__(
            FaultHandler(owner),
            hostname=SERVER_NAME,
            enable_SMTPUTF8=owner.smtputf8,
            tls_context=None if owner.implicit_tls else owner.tls_context,
            # STARTTLS is enforced by _counted instead (see there).
            require_starttls=False,
            auth_required=owner.auth is not None,
            # Under implicit TLS aiosmtpd does not know the connection is encrypted.
            auth_require_tls=owner.tls_context is not None and not owner.implicit_tls,
            authenticator=owner._authenticate,
            loop=loop,
        )

    def _create_session(self) -> Session:
        return QuietSession(self.loop)

    # --- helpers used by the handler ---------------------------------------------------

    def fault_reply(self, fault: Fault) -> str:
        """The reply line for `fault`; a 421 also hangs up once the reply is sent."""
        if fault.code == 421:
            self._hang_up_after_reply = True
        return fault.reply()

    def hang_up(self, *, reset: bool = False) -> None:
        """Close the connection, or with `reset` abort it with an RST. After STARTTLS the TCP
        connection itself is dropped (no TLS close_notify); under implicit TLS the TLS
        transport is closed, which sends close_notify first."""
        transport = self.transport
        if transport is None:
            return
        if reset:
            self._socket_option(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif self.session is not None and self.session.ssl is not None:
            transport.abort()  # aborting the TLS transport closes the TCP one under it
        else:
            transport.close()

    def _socket_option(self, level: int, option: int, value: int | bytes) -> None:
        raw = self.transport.get_extra_info("socket") if self.transport is not None else None
        if raw is not None:
            raw.setsockopt(level, option, value)

    async def push(self, status: AnyStr) -> None:
        if not self._greeted:  # aiosmtpd's first push is the greeting
            self._greeted = True
            fault = self._owner._take("greeting")
            if fault is not None:
                self._hang_up_after_reply = fault.action != "garbage"
                status = fault.reply()  # type: ignore[assignment]
        hang_up = self._hang_up_after_reply
        if hang_up and hasattr(socket, "TCP_CORK"):
            # Hold the reply back until the FIN can go with it (see tests/smtpd.py's docstring).
            self._socket_option(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        await super().push(status)
        if hang_up:
            self._hang_up_after_reply = False
            self.hang_up()
            raise asyncio.CancelledError  # end this session now, like a lost connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not in the factory: under implicit TLS a failed handshake never gets this far,
        # and would never see connection_lost either.
        self._owner._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._sessions.discard(self)
        super().connection_lost(error)

    # --- commands ----------------------------------------------------------------------

    smtp_HELO = _counted(SMTP.smtp_HELO)
    smtp_EHLO = _counted(SMTP.smtp_EHLO)
    smtp_NOOP = _counted(SMTP.smtp_NOOP)
    smtp_QUIT = _counted(SMTP.smtp_QUIT)
    smtp_STARTTLS = _counted(SMTP.smtp_STARTTLS)
    smtp_MAIL = _counted(SMTP.smtp_MAIL)
    smtp_RCPT = _counted(SMTP.smtp_RCPT)
    smtp_RSET = _counted(SMTP.smtp_RSET)
    smtp_VRFY = _counted(SMTP.smtp_VRFY)
    smtp_EXPN = _counted(SMTP.smtp_EXPN)
    smtp_HELP = _counted(SMTP.smtp_HELP)

    @_counted
    @_same_help(SMTP.smtp_DATA)
    async def smtp_DATA(self, arg: str | None) -> None:
        assert self.session is not None and self.envelope is not None
        ready = self.session.host_name and self.envelope.rcpt_tos and not arg
        fault = self._owner._take("data") if ready else None
        if fault is None:
            await super().smtp_DATA(arg)
        elif fault.action == "garbage":
            await self.push(fault.reply())
        else:
            self._hang_up_after_reply = True
            await self.push("354 End data with <CR><LF>.<CR><LF>")  # hangs up unread

    @_counted
    @_same_help(SMTP.smtp_AUTH)
    async def smtp_AUTH(self, arg: str | None) -> None:
        if self._owner.auth is None:
            await self.push("502 5.5.1 AUTH not supported")
            return
        await super().smtp_AUTH(arg)
