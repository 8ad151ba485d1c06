"""SMTP delivery through aiosmtplib: ``smtp://[user@]host[:port]`` (STARTTLS)
and ``smtps://[user@]host[:port]`` (implicit TLS).

TLS policy (``--tls-policy``):

* ``auto`` (default): STARTTLS is required to any host but loopback; on
  loopback it is used when offered.
* ``require``: STARTTLS is required, loopback included.
* ``allow-plaintext``: send, and AUTH, in the clear when STARTTLS is not
  offered. Only an operator's explicit choice turns this on.

Certificates are always verified, against the system's CAs or ``--ca-file``; a
certificate that fails stops the run. The password comes from
DIGEST_SMTP_PASSWORD or the config file, never argv, and never appears in a
message or log.

Each connection sends one message at a time and is reused (RSET after a
refusal, reconnect after a drop, or after the server spoke out of turn).
aiosmtplib opens it (TLS, EHLO, AUTH); then digest.delivery.smtp_adapter takes
its transport and carries the transactions, MAIL, RCPT and DATA in one write
when the server offers PIPELINING. Every outcome is classified here:

* before the final dot, a drop, a timeout or a malformed reply is a
  connection-level fault: deferred, and retried on a new connection;
* after it, a drop (reset or clean close), a timeout or a malformed reply
  leaves us not knowing whether the server has the message: ambiguous, never
  retried in this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Literal

import aiosmtplib

from digest.audience.dsn import reply_kind
from digest.delivery import smtp_adapter as wire
from digest.delivery.smtp_config import SmtpConfig
from digest.delivery.transport import BeforeData, Delivery
from digest.email.message import Envelope
from digest.errors import TransportError

THROTTLE_CODES = (421, 454)
_FAULTS = (TimeoutError, OSError, aiosmtplib.SMTPException, wire.MalformedReply)
"""What a connection can raise short of a reply: drops, timeouts, protocol faults."""

Stage = Literal["mail", "rcpt", "data", "dot"]


def _cert_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind ``exc``: aiosmtplib wraps it (in SMTPConnectError
    under implicit TLS), and a retry would only meet it again."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _why(exc: BaseException) -> str:
    return wire.one_line(str(exc)) or type(exc).__name__


class _Fatal(Exception):
    """A problem no retry will fix (TLS policy, credentials)."""


class _Refused(Exception):
    """A 4xx or 5xx reply at one stage of the transaction."""

    def __init__(self, stage: Stage, reply: wire.Reply) -> None:
        self.stage = stage
        self.reply = reply
        super().__init__(f"{stage}: {reply.code} {reply.text}")


def _expect(reply: wire.Reply, ok: tuple[int, ...], stage: Stage) -> None:
    if reply.code in ok:
        return
    if reply.code >= 400:
        raise _Refused(stage, reply)
    # A well-formed code that makes no sense here (a 354 to RCPT, a 220 to DATA).
    raise wire.MalformedReply(f"{reply.code} {reply.text}")


class SmtpConnection:
    """One reusable connection; ``deliver`` never raises for a recipient's fate."""

    def __init__(self, config: SmtpConfig, tls: ssl.SSLContext) -> None:
        self.config = config
        self._tls = tls
        self._wire: wire.Wire | None = None

    async def _connect(self) -> wire.Wire:
        c = self.config
        smtp = aiosmtplib.SMTP(
            hostname=c.host, port=c.port, use_tls=c.implicit_tls, start_tls=False,
            tls_context=self._tls, timeout=c.timeout,
        )
        try:
            await smtp.connect()
            await smtp.ehlo()  # the extensions (STARTTLS, AUTH, SMTPUTF8) come from EHLO
            secure = c.implicit_tls
            if not secure and smtp.supports_extension("starttls"):
                await smtp.starttls(tls_context=self._tls)
                await smtp.ehlo()  # RFC 3207: forget what was said in the clear
                secure = True
            plaintext_ok = c.tls_policy == "allow-plaintext" or (
                c.tls_policy == "auto" and c.loopback and not c.user
            )
            if not secure and not plaintext_ok:
                raise _Fatal(
                    f"{c.host}:{c.port} does not offer STARTTLS, and the TLS policy "
                    f"({c.tls_policy}) forbids sending{' and AUTH' if c.user else ''} in the "
                    "clear; nothing was sent. Use smtps://, a server with STARTTLS, or set "
                    "tls-policy = \"allow-plaintext\" in the config if you must"
                )
            if c.user:
                await self._login(smtp)
            return wire.Wire.take_over(smtp, c.timeout)
        except BaseException:
            smtp.close()
            raise

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        if self.config.password is None:
            raise _Fatal(f"no password for {self.config.user}; set DIGEST_SMTP_PASSWORD")
        try:
            await smtp.login(self.config.user or "", self.config.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise _Fatal(f"{self.config.host} refused the login for {self.config.user}: "
                         f"{exc.code} {wire.one_line(exc.message)}") from exc
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPTimeoutError):
            raise  # a malformed reply, a drop or a timeout: the connection's fault, retried
        except aiosmtplib.SMTPException as exc:
            raise _Fatal(f"cannot log in to {self.config.host}: {exc}") from exc

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery:
        if self._wire is None or not self._wire.usable:
            if self._wire is not None:
                self._wire.close()
            try:
                self._wire = await self._connect()
            except _Fatal as exc:
                raise TransportError(str(exc)) from exc
            except _FAULTS as exc:
                self._wire = None
                return self._cannot_connect(envelope, exc)
        smtp = self._wire
        try:
            return await self._transaction(smtp, envelope, before_data)
        except asyncio.CancelledError:
            smtp.close()  # cut mid-exchange: the replies still owed would answer a QUIT
            raise

    def _cannot_connect(self, envelope: Envelope, exc: BaseException) -> Delivery:
        cert = _cert_failure(exc)
        if cert is not None:
            raise TransportError(
                f"the certificate of {self.config.host} failed verification "
                f"({cert.verify_message or cert.reason}); nothing was sent. Use --ca-file for "
                "a private CA"
            ) from exc
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            fault = wire.malformed(exc)
            if fault is not None:
                return Delivery(envelope, "deferred", None, str(fault), connection=True)
            # A refusal before any recipient was named is the server's state, not
            # this recipient's fate: never a failure, always worth another try.
            return Delivery(envelope, "deferred", exc.code, wire.one_line(exc.message),
                            connection=True, throttled=exc.code in THROTTLE_CODES)
        return Delivery(envelope, "deferred", None, f"cannot connect: {_why(exc)}",
                        connection=True)

    async def _transaction(
        self, smtp: wire.Wire, envelope: Envelope, before_data: BeforeData
    ) -> Delivery:
        mail = b"MAIL FROM:<" + envelope.sender.encode() + b">"
        if not envelope.recipient.isascii() or not envelope.sender.isascii():
            if not smtp.smtputf8:
                return Delivery(envelope, "failed", None,
                                "internationalised address, and the server lacks SMTPUTF8")
            mail += b" SMTPUTF8"
        # Raw commands: the addresses were validated when the list was read.
        rcpt = b"RCPT TO:<" + envelope.recipient.encode() + b">"
        try:
            marked = await _envelope(smtp, mail, rcpt, before_data)
        except _Refused as refusal:
            return await self._refused(smtp, envelope, refusal)
        except _FAULTS as exc:
            smtp.close()  # after a malformed reply the stream cannot be trusted either
            return Delivery(envelope, "deferred", None, f"connection lost: {_why(exc)}",
                            connection=True)
        try:
            # Shielded: the mark's future is the group commit that other connections
            # wait on too; a cancelled send must not cancel it for them.
            await asyncio.shield(marked)
        except BaseException:
            smtp.close()  # the mark failed: no body may follow this 354
            raise
        return await self._data(smtp, envelope)

    async def _data(self, smtp: wire.Wire, envelope: Envelope) -> Delivery:
        try:
            reply = await smtp.send_message(envelope.data)
        except wire.ClosedBeforeDot as exc:
            smtp.close()
            return Delivery(envelope, "deferred", None, str(exc), connection=True)
        except _FAULTS as exc:
            # The dot went out, so the server may have the message whatever came next:
            # a reset, a clean close, a timeout or a garbage line. The next run sends it
            # once more, with the same Message-ID; retrying now could duplicate it.
            smtp.close()
            return Delivery(envelope, "ambiguous", None,
                            f"no valid reply after the final dot: {_why(exc)}")
        if 200 <= reply.code < 300:
            return Delivery(envelope, "sent", reply.code, reply.text)
        if reply.code >= 400:
            return await self._refused(smtp, envelope, _Refused("dot", reply))
        smtp.close()
        return Delivery(envelope, "ambiguous", None, "no valid reply after the final dot: "
                        f"{reply.code} {reply.text}")

    async def _refused(self, smtp: wire.Wire, envelope: Envelope,
                       refusal: _Refused) -> Delivery:
        code, text, stage = refusal.reply.code, refusal.reply.text, refusal.stage
        await self._reset(smtp, code)
        if stage == "mail" and code >= 500:
            raise TransportError(
                f"{self.config.host} refused the sender {envelope.sender}: {code} {text}; "
                "the run stopped. Check --from",
                code=code,
            )
        # 552 to RCPT is "too many recipients" in practice: worth a retry. Only a
        # permanent refusal of the recipient itself is a bounce; one of the message
        # (at DATA or the dot) says nothing about the address.
        transient = code < 500 or (stage == "rcpt" and code == 552)
        return Delivery(envelope, "deferred" if transient else "failed", code, text,
                        throttled=code in THROTTLE_CODES,
                        bounce=stage == "rcpt" and not transient
                        and reply_kind(text, code) == "hard")

    async def _reset(self, smtp: wire.Wire, code: int) -> None:
        if code == 421 or not smtp.usable:
            smtp.close()
            return
        try:
            reply = await smtp.command(b"RSET")
        except _FAULTS:
            smtp.close()
            return
        if reply.code != 250:
            smtp.close()

    async def close(self) -> None:
        if self._wire is not None and self._wire.usable:
            with contextlib.suppress(*_FAULTS):
                await self._wire.command(b"QUIT")
            self._wire.close()
        self._wire = None


def _retrieved(marked: asyncio.Future[None]) -> None:
    """A mark nobody waits for: its failure shows at the next commit, not as a warning."""
    if not marked.cancelled():
        marked.exception()


async def _envelope(smtp: wire.Wire, mail: bytes, rcpt: bytes,
                    before_data: BeforeData) -> asyncio.Future[None]:
    """MAIL, RCPT and DATA, up to the server's 354; raises _Refused for the first refusal.

    Returns the in-flight mark, asked for as soon as RCPT is accepted, so that its commit
    overlaps the wait for the 354; the body must wait for it. With PIPELINING the three
    commands leave in one write, and every reply is read in turn (RFC 2920, section 3.1).
    """
    stages: tuple[tuple[bytes, tuple[int, ...], Stage], ...] = (
        (mail, (250,), "mail"), (rcpt, (250, 251), "rcpt"), (b"DATA", (354,), "data"))
    if smtp.pipelining:
        smtp.write(mail, rcpt, b"DATA")
    marked: asyncio.Future[None] | None = None
    try:
        for index, (line, ok, stage) in enumerate(stages):
            if not smtp.pipelining:
                smtp.write(line)
            reply = await smtp.reply()
            try:
                _expect(reply, ok, stage)
            except _Refused as refusal:
                if smtp.pipelining:
                    await _rest_of_group(smtp, len(stages) - index - 1, refusal)
                raise
            if stage == "rcpt":
                marked = asyncio.ensure_future(before_data())
    except BaseException:
        if marked is not None:  # its result overwrites the mark; a failure shows later
            marked.add_done_callback(_retrieved)
        raise
    assert marked is not None
    return marked


async def _rest_of_group(smtp: wire.Wire, left: int, refusal: _Refused) -> None:
    """After a refusal in a pipelined group, read the replies still owed, so that the
    connection stays in step for RSET. A DATA that the server accepted all the same gets
    a lone dot, which it refuses for want of a recipient. After a 421 the server is
    closing: nothing more is read, and a hang-up leaves the refusal as it was."""
    if refusal.reply.code == 421:
        smtp.close()
        return
    try:
        for _ in range(left):
            if (await smtp.reply()).code == 354:
                await smtp.command(b".")
    except _FAULTS:
        smtp.close()


class SmtpTransport:
    """A factory of connections to one server."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        scheme = "smtps" if config.implicit_tls else "smtp"
        user = f"{config.user}@" if config.user else ""
        self.description = f"{scheme}://{user}{config.host}:{config.port}"
        self._tls = config.tls_context()

    def connection(self) -> SmtpConnection:
        return SmtpConnection(self.config, self._tls)
