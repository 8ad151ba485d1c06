"""The aiosmtplib internals that digest/smtp_adapter.py relies on. When an upgrade moves or
reshapes one, these fail with "aiosmtplib changed: ..." instead of the sender misbehaving."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import aiosmtplib
import aiosmtplib.protocol
import pytest

from digest.delivery import smtp_adapter as wire
from tests.smtpd import FaultyServer


def require(condition: object, what: str) -> None:
    if not condition:
        pytest.fail(f"aiosmtplib changed: {what}; see digest/smtp_adapter.py", pytrace=False)


def parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(function).parameters)


def test_the_protocol_class_writes_bytes_and_reads_a_response_with_a_timeout() -> None:
    protocol = getattr(aiosmtplib.protocol, "SMTPProtocol", None)
    require(inspect.isclass(protocol), "aiosmtplib.protocol.SMTPProtocol is gone")
    write = getattr(protocol, "write", None)
    require(callable(write) and not inspect.iscoroutinefunction(write),
            "SMTPProtocol.write is no longer a plain method")
    require(list(parameters(write)) == ["self", "data"],
            f"SMTPProtocol.write takes {list(parameters(write))}, not (self, data)")
    read = getattr(protocol, "read_response", None)
    require(inspect.iscoroutinefunction(read), "SMTPProtocol.read_response is not a coroutine")
    require("timeout" in parameters(read), "SMTPProtocol.read_response lost its timeout")


def test_execute_command_takes_raw_bytes() -> None:
    execute = getattr(aiosmtplib.SMTP, "execute_command", None)
    require(inspect.iscoroutinefunction(execute), "SMTP.execute_command is not a coroutine")
    kinds = [p.kind for p in parameters(execute).values()]
    require(inspect.Parameter.VAR_POSITIONAL in kinds,
            "SMTP.execute_command no longer takes the command as *args bytes")


def test_replies_and_reply_errors_carry_code_and_message() -> None:
    response = aiosmtplib.SMTPResponse(250, "ok")
    require((response.code, response.message) == (250, "ok"),
            "SMTPResponse has no .code/.message")
    error = aiosmtplib.SMTPResponseException(-1, "Malformed SMTP response line: x")
    require((error.code, error.message) == (-1, "Malformed SMTP response line: x"),
            "SMTPResponseException has no .code/.message")
    require(issubclass(aiosmtplib.SMTPServerDisconnected, OSError),
            "SMTPServerDisconnected is no longer an OSError (ConnectionError)")
    require(issubclass(aiosmtplib.SMTPReadTimeoutError, TimeoutError),
            "SMTPReadTimeoutError is no longer a TimeoutError")


def test_a_round_trip_through_the_adapter(smtp_server: FaultyServer) -> None:
    data = b"Subject: contract\r\nMessage-ID: <contract@example.org>\r\n\r\n..dot-stuffed\r\n"

    async def run() -> list[int]:
        smtp = aiosmtplib.SMTP(hostname=smtp_server.host, port=smtp_server.port,
                               start_tls=False, timeout=5)
        await smtp.connect()
        await smtp.ehlo()
        require(isinstance(smtp.protocol, aiosmtplib.protocol.SMTPProtocol),
                "SMTP.protocol is not an SMTPProtocol once connected")
        codes = [(await wire.command(smtp, line)).code
                 for line in (b"MAIL FROM:<digest@example.org>", b"RCPT TO:<a@example.org>",
                              b"DATA")]
        codes.append((await wire.send_message(smtp, data, timeout=5)).code)
        smtp_server.garbage_reply("mail", "2x0 ok")
        try:
            await wire.command(smtp, b"MAIL FROM:<digest@example.org>")
        except wire.MalformedReply as exc:
            require(exc.line == "2x0 ok", f"a garbage line comes back as {exc.line!r}")
        else:
            require(False, "a garbage reply line is no longer an error")
        smtp.close()
        return codes

    codes = asyncio.run(run())
    require(codes == [250, 250, 354, 250], f"the replies were {codes}")
    [received] = smtp_server.received
    require(received.data == b"Subject: contract\r\nMessage-ID: <contract@example.org>\r\n\r\n"
                             b".dot-stuffed\r\n",
            "the prepared bytes were not written as they are")
