"""MAIL, RCPT and DATA in one write (RFC 2920), and the reply reader under them.

Each test runs a scripted SMTP server (asyncio, 127.0.0.1, port 0) in the client's own
event loop. A script reads what the client wrote and answers in whatever shape the test
needs (all replies in one write, a byte at a time, a reply nobody asked for), which
aiosmtpd cannot be made to do. The fault classes themselves are in tests/test_faults.py,
which runs each of them pipelined and in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Self

import pytest

from digest.delivery.smtp import SmtpConnection, SmtpTransport
from digest.delivery.smtp_config import SmtpConfig
from digest.delivery.transport import Delivery
from digest.errors import DigestError
from tests.helpers import envelope, no_mark

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def lines(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [(await reader.readuntil(b"\r\n"))[:-2] for _ in range(count)]


async def body(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n.\r\n")


class Scripted:
    """A server on 127.0.0.1 that greets, answers EHLO, then runs ``script`` on each
    connection; ``connections`` counts them."""

    def __init__(self, script: Script, *, pipelining: bool = True,
                 greeting: bytes = b"220 scripted ESMTP") -> None:
        self.script, self.pipelining, self.greeting = script, pipelining, greeting
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def connection(self, timeout: float = 2.0) -> SmtpConnection:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        config = SmtpConfig(host="127.0.0.1", port=port, implicit_tls=False, timeout=timeout)
        return SmtpTransport(config).connection()

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(self.greeting + b"\r\n")
        if not self.greeting.startswith(b"220"):
            await writer.drain()
            writer.close()
            return
        await reader.readuntil(b"\r\n")  # EHLO
        offered = b"250-PIPELINING\r\n" if self.pipelining else b""
        writer.write(b"250-scripted\r\n" + offered + b"250 8BITMIME\r\n")
        try:
            await self.script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(script: Script, count: int, *, pipelining: bool = True,
        greeting: bytes = b"220 scripted ESMTP", timeout: float = 2.0,
        ) -> tuple[list[Delivery], int]:
    """Deliver envelope(1..count) over one SmtpConnection to a server running ``script``
    on each connection; the results, and how many connections the client opened."""
    scripted = Scripted(script, pipelining=pipelining, greeting=greeting)

    async def main() -> list[Delivery]:
        async with scripted:
            connection = scripted.connection(timeout)
            try:
                return [await connection.deliver(envelope(n), no_mark)
                        for n in range(1, count + 1)]
            finally:
                await connection.close()

    results = asyncio.run(main())
    return results, scripted.connections


def outcomes(results: list[Delivery]) -> list[tuple[str, int | None]]:
    return [(r.status, r.code) for r in results]


async def accept_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every transaction accepted; MAIL, RCPT and DATA answered only once all three are in,
    so a client that waits for each reply before the next command never gets one."""
    while True:
        first = await reader.readuntil(b"\r\n")
        if first.startswith(b"QUIT"):
            writer.write(b"221 bye\r\n")
            return
        await lines(reader, 2)
        writer.write(b"250 sender ok\r\n250 recipient ok\r\n354 go ahead\r\n")
        await body(reader)
        writer.write(b"250 queued\r\n")


def test_mail_rcpt_and_data_go_out_without_waiting_when_the_server_offers_pipelining() -> None:
    results, connections = run(accept_all, 3)
    assert outcomes(results) == [("sent", 250)] * 3
    assert connections == 1


def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    async def lockstep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in (b"250 sender ok", b"250 recipient ok", b"354 go ahead"):
            await reader.readuntil(b"\r\n")
            try:  # a pipelining client's next command is on its way already
                await asyncio.wait_for(reader.readuntil(b"\r\n"), 0.1)
            except TimeoutError:
                writer.write(reply + b"\r\n")
            else:
                writer.write(b"503 5.5.1 PIPELINING was not offered\r\n")
                return
        await body(reader)
        writer.write(b"250 queued\r\n")

    results, _ = run(lockstep, 1, pipelining=False)
    assert outcomes(results) == [("sent", 250)]


def test_replies_split_at_every_byte_are_read_whole() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        for byte in b"250-sender\r\n250 ok\r\n250 recipient ok\r\n354 go ahead\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
        await body(reader)
        writer.write(b"250 queued\r\n")

    results, _ = run(trickle, 1)
    assert outcomes(results) == [("sent", 250)]
    assert results[0].reply == "queued"


def test_a_refused_recipient_reads_the_pipelined_data_reply_and_the_connection_goes_on() -> None:
    async def refuse_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n550 5.1.1 no such user\r\n503 5.5.1 no valid recipients\r\n")
        assert await lines(reader, 1) == [b"RSET"]
        writer.write(b"250 reset\r\n")
        await accept_all(reader, writer)

    results, connections = run(refuse_first, 2)
    assert outcomes(results) == [("failed", 550), ("sent", 250)]
    assert results[0].bounce
    assert connections == 1


def test_a_data_accepted_after_a_refused_recipient_gets_a_lone_dot() -> None:
    seen: list[bytes] = []

    async def accepts_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n")
        seen.extend(await lines(reader, 1))
        writer.write(b"554 5.5.1 no valid recipients\r\n")
        seen.extend(await lines(reader, 1))
        writer.write(b"250 reset\r\n")
        await accept_all(reader, writer)

    results, connections = run(accepts_data, 2)
    assert seen == [b".", b"RSET"]
    assert outcomes(results) == [("failed", 550), ("sent", 250)]
    assert connections == 1


def test_a_421_to_mail_is_a_throttle_though_the_rest_of_the_group_is_never_answered() -> None:
    async def busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"421 4.7.0 too busy, come back later\r\n")
        await writer.drain()

    results, _ = run(busy, 1)
    assert outcomes(results) == [("deferred", 421)]
    assert results[0].throttled


def test_a_reply_nobody_asked_for_is_not_taken_for_the_next_commands() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
        await body(reader)
        # The reply, and then a line out of turn: the client must not read this 250 as
        # the next MAIL's, nor this connection's next 354 as its RCPT's.
        writer.write(b"250 queued\r\n250 out of turn\r\n")
        await reader.readuntil(b"\r\n")

    async def fresh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_all(reader, writer)

    scripts = iter([chatty, fresh])

    async def per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await next(scripts)(reader, writer)

    results, connections = run(per_connection, 2)
    assert outcomes(results) == [("sent", 250), ("sent", 250)]
    assert connections == 2


@pytest.mark.parametrize("flood", [b"250-" + b"x" * 100_000,
                                   b"250-continued\r\n" * 2_400 + b"250 ok\r\n"],
                         ids=["one line without end", "continuation lines past the limit"])
def test_a_reply_too_long_is_cut_off_as_malformed_not_buffered(flood: bytes) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(flood)
        await writer.drain()
        await reader.read()

    results, _ = run(endless, 1)
    assert outcomes(results) == [("deferred", None)]
    assert results[0].reply == "connection lost: malformed reply: 'a reply longer than 32768 bytes'"


def test_a_reply_that_is_not_utf8_is_kept_readable_and_storable() -> None:
    """An old server's Latin-1 words must not stop the run: the journal, like a
    terminal, cannot take the lone surrogates a strict decoding would leave."""
    async def latin1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n550 5.1.1 Benutzer M\xfcller unbekannt\r\n503 no rcpt\r\n")
        await lines(reader, 1)  # RSET
        writer.write(b"250 reset\r\n")
        await reader.read()

    results, _ = run(latin1, 1)
    assert outcomes(results) == [("failed", 550)]
    assert results[0].reply == "5.1.1 Benutzer M\ufffdller unbekannt"


def test_a_greeting_refused_in_latin1_is_kept_readable_and_storable() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("no session after a refused greeting")

    results, _ = run(never, 1, greeting=b"554 Zugang verweigert f\xfcr Sie")
    assert outcomes(results) == [("deferred", 554)]
    assert results[0].reply == "Zugang verweigert f\ufffdr Sie"


@pytest.mark.parametrize("stray", [b"250 out of turn\r\n", b"250 x\r\n" * 100_000],
                         ids=["one reply", "a flood"])
def test_a_reply_out_of_turn_before_the_body_stops_the_message_there(stray: bytes) -> None:
    """The server speaks after its 354, while the body waits for the in-flight mark:
    read as the dot's reply, a stray 250 would pass a refused message for sent."""
    bodies: list[bytes] = []
    mark: asyncio.Future[None] | None = None

    async def stray_after_354(reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n" + stray)
        await writer.drain()
        await asyncio.sleep(0.2)
        assert mark is not None
        mark.set_result(None)
        bodies.append(await body(reader))
        writer.write(b"554 5.7.1 refused\r\n")

    def slow_mark() -> asyncio.Future[None]:
        nonlocal mark
        mark = asyncio.get_running_loop().create_future()
        return mark

    async def main() -> Delivery:
        async with Scripted(stray_after_354) as server:
            connection = server.connection()
            try:
                return await connection.deliver(envelope(1), slow_mark)
            finally:
                await connection.close()

    result = asyncio.run(main())
    assert (result.status, result.code, result.reply) == (
        "deferred", None, "the server spoke out of turn before the final dot")
    assert bodies == []


def test_a_reply_is_timed_as_a_whole_not_from_its_last_byte() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        for byte in b"250 ok\r\n":  # a byte well within the timeout, the reply not
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)
        writer.write(b"250 ok\r\n354 go ahead\r\n")
        await body(reader)
        writer.write(b"250 queued\r\n")
        await reader.read()

    results, _ = run(trickle, 1, timeout=0.5)
    assert outcomes(results) == [("deferred", None)]
    assert results[0].reply == "connection lost: Timed out waiting for server response"


def test_the_mark_is_asked_for_once_rcpt_is_accepted_and_the_body_waits_for_it() -> None:
    asked: list[str] = []
    mark: asyncio.Future[None] | None = None
    early: list[bytes] = []

    async def watch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n550 5.1.1 no such user\r\n503 no recipient\r\n")
        await lines(reader, 1)  # RSET
        writer.write(b"250 reset\r\n")
        await lines(reader, 3)
        writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
        with contextlib.suppress(TimeoutError):  # nothing may come before the mark
            early.append(await asyncio.wait_for(reader.read(1), 0.3))
        assert mark is not None
        mark.set_result(None)
        await body(reader)
        writer.write(b"250 queued\r\n")
        await reader.read()

    def marking(email: str) -> Callable[[], asyncio.Future[None]]:
        def ask() -> asyncio.Future[None]:
            nonlocal mark
            asked.append(email)
            mark = asyncio.get_running_loop().create_future()
            return mark
        return ask

    async def main() -> list[Delivery]:
        async with Scripted(watch) as server:
            connection = server.connection()
            try:
                return [await connection.deliver(envelope(n), marking(f"reader{n}"))
                        for n in (1, 2)]
            finally:
                await connection.close()

    results = asyncio.run(main())
    assert outcomes(results) == [("failed", 550), ("sent", 250)]
    assert asked == ["reader2"]  # the refused recipient was never marked in flight
    assert early == []


def test_a_failed_mark_closes_the_connection_without_the_body() -> None:
    seen: list[bytes] = []
    hung_up = asyncio.Event()

    async def after_354(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
        seen.append(await reader.read())  # until the client hangs up
        hung_up.set()

    def failing() -> asyncio.Future[None]:
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(DigestError("the journal could not be written"))
        return failed

    async def main() -> None:
        async with Scripted(after_354) as server:
            connection = server.connection()
            with pytest.raises(DigestError, match="the journal could not be written"):
                await connection.deliver(envelope(1), failing)
            await asyncio.wait_for(hung_up.wait(), 5)
            await connection.close()

    asyncio.run(main())
    assert seen == [b""]


def test_a_cancelled_send_leaves_the_shared_mark_to_the_others() -> None:
    """The mark's future is a group commit that other connections wait on too."""
    shared: list[asyncio.Future[None]] = []
    at_354 = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
        at_354.set()
        await reader.read()

    def group() -> asyncio.Future[None]:
        shared.append(asyncio.get_running_loop().create_future())
        return shared[-1]

    async def main() -> None:
        async with Scripted(hold) as server:
            connection = server.connection()
            sending = asyncio.create_task(connection.deliver(envelope(1), group))
            await at_354.wait()
            await asyncio.sleep(0.05)  # the client is waiting for the mark now
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            assert not shared[0].cancelled()
            await connection.close()

    asyncio.run(main())
