"""The aiosmtplib API that digest/delivery/smtp_adapter.py relies on. When an upgrade moves or
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
        pytest.fail(f"aiosmtplib changed: {what}; see digest/delivery/smtp_adapter.py",
                    pytrace=False)


def parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(function).parameters)


def test_a_client_says_which_extensions_the_server_offers() -> None:
    # SMTP.transport, an instance attribute, is checked on a live client below.
    supports = getattr(aiosmtplib.SMTP, "supports_extension", None)
    require(callable(supports) and not inspect.iscoroutinefunction(supports),
            "SMTP.supports_extension is no longer a plain method")
    require(list(parameters(supports)) == ["self", "extension"],
            f"SMTP.supports_extension takes {list(parameters(supports))}, not (self, extension)")


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
        require(isinstance(smtp.transport, asyncio.Transport),
                "SMTP.transport is not an asyncio transport once connected")
        link = wire.Wire.take_over(smtp, timeout=5)
        require(link.pipelining, "SMTP.supports_extension('pipelining') is false after an "
                                 "EHLO that offers PIPELINING")
        link.write(b"MAIL FROM:<digest@example.org>", b"RCPT TO:<a@example.org>", b"DATA")
        codes = [(await link.reply()).code for _ in range(3)]
        codes.append((await link.send_message(data)).code)
        smtp_server.garbage_reply("mail", "2x0 ok")
        try:
            await link.command(b"MAIL FROM:<digest@example.org>")
        except wire.MalformedReply as exc:
            require(exc.line == "2x0 ok", f"a garbage line comes back as {exc.line!r}")
        else:
            require(False, "a garbage reply line is no longer an error")
        link.close()
        return codes

    codes = asyncio.run(run())
    require(codes == [250, 250, 354, 250], f"the replies were {codes}")
    [received] = smtp_server.received
    require(received.data == b"Subject: contract\r\nMessage-ID: <contract@example.org>\r\n\r\n"
                             b".dot-stuffed\r\n",
            "the prepared bytes were not written as they are")
