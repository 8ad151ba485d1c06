"""The mail transactions' own reader and writer, on the connection aiosmtplib opened.

aiosmtplib connects, says EHLO, does STARTTLS and AUTH. Then ``Wire.take_over`` puts this
module's protocol on its transport, and every transaction (MAIL, RCPT, DATA, the body, RSET,
QUIT) goes through ``Wire``. Why not aiosmtplib's own commands:

* Pipelining (RFC 2920). When the server offers PIPELINING, MAIL, RCPT and DATA leave in one
  write and their three replies are read after it: one round trip where lockstep takes
  three, and fewer packets for both ends to handle. aiosmtplib's protocol keeps one reply
  and drops what arrives while no read is pending, so it cannot read pipelined replies.
* Speed. A message is built once per variant, already in wire form (CRLF line ends, no
  line starting with a dot), and is written as it is. ``SMTP.data()`` would redo line
  endings and dot-stuffing for every message: about a third of the send time.
* Control. Writing the body and the final dot ourselves is what tells a server that hung
  up before the dot (it never had the message: retry) from one that hung up after it (it
  may have it: ambiguous).

What this relies on in aiosmtplib: ``SMTP.transport`` once connected (an asyncio transport,
whose ``set_protocol`` hands the byte stream to us) and ``SMTP.supports_extension``.
tests/test_smtp_contract.py fails with "aiosmtplib changed: ..." when either goes;
pyproject pins aiosmtplib below 6.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
from collections import deque
from dataclasses import dataclass

import aiosmtplib

# A reply longer than this (all its lines) is garbage: memory stays bounded whatever
# a server sends. Real replies, an EHLO's included, are a few hundred bytes.
_MAX_REPLY = 32 * 1024
_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """A well-formed SMTP reply: a code from 200 to 599 and its text, on one line."""

    code: int
    text: str


class MalformedReply(Exception):
    """The server answered with something that is not an SMTP reply ("NNN text" with a code
    from 2xx to 5xx): a protocol fault. The connection is unusable afterwards."""

    def __init__(self, line: str) -> None:
        self.line = one_line(line)
        super().__init__(f"malformed reply: {self.line!r}")


CLOSED_BEFORE_DOT = "the server closed the connection before the final dot"
OUT_OF_TURN = "the server spoke out of turn before the final dot"
# What a peer that hung up leaves on a socket: FIN (RDHUP, Linux only), RST (ERR, HUP).
_RDHUP: int | None = getattr(select, "POLLRDHUP", None)


class ClosedBeforeDot(Exception):
    """The server had closed the connection, or spoken out of turn, before the final dot
    was written: it never had the whole message, so sending it again cannot make a
    duplicate."""


class OutOfTurn(MalformedReply):
    """A reply to no command: read as the next command's, it would pair every later reply
    with the wrong command, and a refusal of the message could pass for its acceptance."""


def one_line(text: str) -> str:
    """A server's words on one line, and storable: bytes that were not UTF-8 (a reply
    in Latin-1, say, which aiosmtplib keeps as lone surrogates) become U+FFFD, since
    neither the journal nor a terminal can take a lone surrogate."""
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(clean.split())


def _reply(code: int, text: str) -> Reply:
    if not 200 <= code <= 599:
        raise MalformedReply(f"{code} {text}")
    return Reply(code, one_line(text))


def malformed(exc: aiosmtplib.SMTPResponseException) -> MalformedReply | None:
    """The protocol fault behind an exception of aiosmtplib's own API (connect, EHLO,
    STARTTLS, AUTH), or None when it carries a real reply code."""
    if 200 <= exc.code <= 599:
        return None
    if exc.code != -1:
        return MalformedReply(f"{exc.code} {exc.message}")
    return MalformedReply(exc.message.removeprefix("Malformed SMTP response line:"))


def _parse(buffer: bytearray) -> Reply | None:
    """Take one whole reply off the front of ``buffer``; None until one has arrived."""
    offset, lines = 0, []
    while True:
        end = buffer.find(b"\n", offset)
        if end == -1:
            return None
        if end >= _MAX_REPLY:
            raise MalformedReply(f"a reply longer than {_MAX_REPLY} bytes")
        line = bytes(buffer[offset:end]).rstrip(b"\r")
        offset = end + 1
        code = line[:3]
        if not (code.isdigit() and line[3:4] in (b"", b" ", b"-")):
            raise MalformedReply(line.decode("utf-8", "replace"))
        lines.append(line[4:].decode("utf-8", "surrogateescape"))
        if line[3:4] != b"-":
            del buffer[:offset]
            return _reply(int(code), " ".join(lines))


class Wire(asyncio.Protocol):
    """One connection's transactions, after aiosmtplib's handshake.

    Replies are queued as they arrive, however the bytes are split into reads, so any
    number of commands may be written before their replies are read. Each reply must
    answer a command written: one more is OutOfTurn, and ends the connection. A drop,
    an EOF or a garbage line is kept and raised by the next read that finds no reply
    before it.
    """

    def __init__(self, transport: asyncio.Transport, *, pipelining: bool, smtputf8: bool,
                 timeout: float) -> None:
        self.pipelining = pipelining
        self.smtputf8 = smtputf8
        self._transport = transport
        self._timeout = timeout
        self._buffer = bytearray()
        self._replies: deque[Reply] = deque()
        self._fault: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._owed = 0  # replies still to come for the commands written

    @classmethod
    def take_over(cls, smtp: aiosmtplib.SMTP, timeout: float) -> Wire:
        """Read and write ``smtp``'s connection from now on; ``smtp`` is not used again."""
        transport = smtp.transport
        if not isinstance(transport, asyncio.Transport) or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        wire = cls(transport, pipelining=smtp.supports_extension("pipelining"),
                   smtputf8=smtp.supports_extension("smtputf8"), timeout=timeout)
        transport.set_protocol(wire)
        return wire

    @property
    def usable(self) -> bool:
        """Open, in step, and owing nothing: ready for the next transaction."""
        return (not self._transport.is_closing() and self._fault is None
                and not self._replies and not self._buffer and not self._owed)

    def close(self) -> None:
        self._transport.close()

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self._fault is not None:
            return  # the connection is over; what follows a fault means nothing
        self._buffer += data
        try:
            while (reply := _parse(self._buffer)) is not None:
                if not self._owed:
                    raise OutOfTurn(f"a reply out of turn: {reply.code} {reply.text}")
                self._owed -= 1
                self._replies.append(reply)
            if len(self._buffer) > _MAX_REPLY:
                raise MalformedReply(f"a reply longer than {_MAX_REPLY} bytes")
        except MalformedReply as exc:
            self._buffer.clear()
            self._fail(exc)
            self._transport.close()
        self._wake()

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        fault = aiosmtplib.SMTPServerDisconnected("Connection lost")
        fault.__cause__ = exc
        self._fail(fault)

    def _fail(self, exc: Exception) -> None:
        if self._fault is None:
            self._fault = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # The transaction's side

    def write(self, *lines: bytes) -> None:
        """Write command lines (without CRLF), all in one write."""
        if self._transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._owed += len(lines)
        self._transport.write(_CRLF.join(lines) + _CRLF)

    async def reply(self) -> Reply:
        """The next reply, waiting at most the timeout for the whole of it."""
        deadline: float | None = None
        while not self._replies:
            if self._fault is not None:
                raise self._fault
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self._timeout
            self._waiter = waiter = loop.create_future()
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self._replies.popleft()

    async def command(self, line: bytes) -> Reply:
        """One command line (without CRLF), and its reply."""
        self.write(line)
        return await self.reply()

    async def send_message(self, data: bytes) -> Reply:
        """After a 354: write ``data`` (wire form, CRLF ends, no line starting with a dot)
        and the final dot, and return the server's reply to it.

        Raises ClosedBeforeDot when the server had spoken out of turn (its reply to the
        dot could not be told from the stray one), or when its close had reached us before
        the dot went out. The close is checked after the body, just before the dot: a
        server that hangs up right after its 354 never reads the body, and its FIN (or the
        RST our body provoked) is most likely in by then. A close that arrives later
        cannot be told from one after the dot, so the caller must count it as ambiguous.
        Any other exception happened after the dot was written.
        """
        if isinstance(self._fault, OutOfTurn) or self._buffer:  # a stray, whole or begun
            self.close()
            raise ClosedBeforeDot(OUT_OF_TURN)
        if self._transport.is_closing():
            raise ClosedBeforeDot(CLOSED_BEFORE_DOT)  # the loop has seen the close already
        self._transport.write(data)
        if _peer_closed(self._transport):
            raise ClosedBeforeDot(CLOSED_BEFORE_DOT)
        self.write(b".")
        return await self.reply()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(aiosmtplib.SMTPReadTimeoutError(
            "Timed out waiting for server response"))


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
