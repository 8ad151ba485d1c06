"""The one module that reaches past aiosmtplib's high-level API, and why.

Speed. A message is built once per variant, already in wire form (CRLF line ends, no line
starting with a dot), so the DATA phase writes those bytes as they are through the
protocol's ``write`` and reads the reply with its ``read_response``. ``SMTP.data()`` would
redo line endings and dot-stuffing for every message: about a third of the send time. MAIL
and RCPT go out as raw command bytes through ``execute_command``, because the addresses were
validated when the list was read; ``SMTP.mail()``/``rcpt()`` would parse them again.

Control. Writing the body and the final dot ourselves is also what tells a server that hung
up before the dot (it never had the message: retry) from one that hung up after it (it may
have it: ambiguous).

What this relies on: ``SMTP.protocol`` (an ``aiosmtplib.protocol.SMTPProtocol``) with
``write(bytes)``, ``read_response(timeout=)`` and ``transport``; ``SMTP.execute_command``
taking raw bytes and returning an ``SMTPResponse``; a reply that is not "NNN text" raised as
``SMTPResponseException`` with code -1. tests/test_smtp_contract.py fails with "aiosmtplib
changed: ..." when any of that goes; pyproject pins aiosmtplib below 6.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
from collections.abc import Awaitable
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol


@dataclass(frozen=True, slots=True)
class Reply:
    """A well-formed SMTP reply: a code from 200 to 599 and its text, on one line."""

    code: int
    text: str


class MalformedReply(Exception):
    """The server answered with something that is not an SMTP reply ("NNN text" with a code
    from 2xx to 5xx): a protocol fault. The connection is unusable afterwards."""

    def __init__(self, line: str) -> None:
        self.line = " ".join(line.split())
        super().__init__(f"malformed reply: {self.line!r}")


CLOSED_BEFORE_DOT = "the server closed the connection before the final dot"
# What a peer that hung up leaves on a socket: FIN (RDHUP, Linux only), RST (ERR, HUP).
_RDHUP: int | None = getattr(select, "POLLRDHUP", None)


class ClosedBeforeDot(Exception):
    """The server had closed the connection before the final dot was written: it never had
    the whole message, so sending it again cannot make a duplicate."""


def _reply(code: int, text: str) -> Reply:
    if not 200 <= code <= 599:
        raise MalformedReply(f"{code} {text}")
    return Reply(code, " ".join(text.split()))


def malformed(exc: aiosmtplib.SMTPResponseException) -> MalformedReply | None:
    """The protocol fault behind an exception of aiosmtplib's own API (connect, EHLO,
    STARTTLS, AUTH), or None when it carries a real reply code."""
    if 200 <= exc.code <= 599:
        return None
    if exc.code != -1:
        return MalformedReply(f"{exc.code} {exc.message}")
    return MalformedReply(exc.message.removeprefix("Malformed SMTP response line:"))


async def command(smtp: aiosmtplib.SMTP, line: bytes) -> Reply:
    """Send one raw command line (without CRLF) and return the reply."""
    return await _replied(smtp.execute_command(line))


def _protocol(smtp: aiosmtplib.SMTP) -> SMTPProtocol:
    protocol = smtp.protocol
    if protocol is None or protocol.transport is None or protocol.transport.is_closing():
        raise ClosedBeforeDot(CLOSED_BEFORE_DOT)  # the event loop has seen the close already
    return protocol


def _peer_closed(transport: asyncio.BaseTransport) -> bool:
    """True when the peer's FIN or RST has already reached the socket.

    The kernel is asked directly: the event loop reads the socket only when this task
    yields, which it does not between writing the body and writing the dot. On Linux one
    ``poll`` for the hang-up events alone asks it in one system call; elsewhere a peek
    at the receive queue, through a duplicate descriptor, takes four.
    """
    if transport.is_closing():
        return True
    raw = transport.get_extra_info("socket")
    if raw is None:
        return False
    if _RDHUP is not None:
        poller = select.poll()
        poller.register(raw.fileno(), _RDHUP | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    try:
        with socket.socket(raw.family, raw.type, fileno=os.dup(raw.fileno())) as peek:
            return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


async def send_message(smtp: aiosmtplib.SMTP, data: bytes, timeout: float) -> Reply:
    """After a 354: write ``data`` (wire form, CRLF ends, no line starting with a dot) and the
    final dot, and return the server's reply to it.

    Raises ClosedBeforeDot when the server's close had reached us before the dot went out.
    The check comes after the body, just before the dot: a server that hangs up right after
    its 354 never reads the body, and its FIN (or the RST our body provoked) is most likely
    in by then. A close that arrives later cannot be told from one after the dot, so the
    caller must count it as ambiguous. Any other exception happened after the dot was written.
    """
    protocol = _protocol(smtp)
    protocol.write(data)
    transport = protocol.transport
    if transport is None or _peer_closed(transport):
        raise ClosedBeforeDot(CLOSED_BEFORE_DOT)
    protocol.write(b".\r\n")
    # No await between the writes and read_response: aiosmtplib drops a reply that arrives
    # while no read is pending, and this task does not yield until read_response waits.
    return await _replied(protocol.read_response(timeout=timeout))


async def _replied(waiting: Awaitable[aiosmtplib.SMTPResponse]) -> Reply:
    """The awaited reply, with a garbage line raised as MalformedReply."""
    try:
        response = await waiting
    except aiosmtplib.SMTPResponseException as exc:
        fault = malformed(exc)
        if fault is None:
            raise
        raise fault from exc
    return _reply(response.code, response.message)
