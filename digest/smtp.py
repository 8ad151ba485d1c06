"""SMTP delivery through aiosmtplib: ``smtp://[user@]host[:port]`` (STARTTLS)
and ``smtps://[user@]host[:port]`` (implicit TLS).

TLS policy (``--tls-policy``):

* ``auto`` (default): STARTTLS is required to any host but loopback; on
  loopback it is used when offered.
* ``require``: STARTTLS is required, loopback included.
* ``allow-plaintext``: send, and AUTH, in the clear when STARTTLS is not
  offered. Only an operator's explicit choice turns this on.

Certificates are always verified, against the system's CAs or ``--ca-file``.
The password comes from DIGEST_SMTP_PASSWORD or the config file, never argv,
and never appears in a message or log.

Each connection sends one message at a time and is reused (RSET after a
refusal, reconnect after a drop). The DATA phase is our own: the message is
already in wire form (CRLF, no line starting with a dot), so it is written as
is, and a drop before the final dot can be told from one after it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from digest.errors import ConfigError, TransportError
from digest.message import Envelope
from digest.transports import BeforeData, Delivery

THROTTLE_CODES = (421, 454)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_policy: str = "auto"
    ca_file: Path | None = None
    timeout: float = 30.0

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load {self.ca_file}: {exc}", source="--ca-file") from exc


def parse_smtp_url(spec: str, **options: object) -> SmtpConfig:
    """``smtp://user@host:587`` -> SmtpConfig. A password in the URL is refused."""
    parts = urlsplit(spec)
    if parts.password is not None:
        raise ConfigError(
            "a password does not belong in the transport URL (it would show in the process "
            "list); set DIGEST_SMTP_PASSWORD or smtp-password in the config file",
            source="--transport",
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad port in {spec!r}", source="--transport") from exc
    if not parts.hostname:
        raise ConfigError(f"no host in {spec!r}; e.g. smtp://mail.example.org:587",
                          source="--transport")
    implicit = parts.scheme == "smtps"
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        implicit_tls=implicit,
        user=unquote(parts.username) if parts.username else None,
        **options,  # type: ignore[arg-type]
    )


def _peer_closed(transport: asyncio.BaseTransport) -> bool:
    """True when the peer's FIN is already in the socket's receive queue."""
    raw = transport.get_extra_info("socket")
    if raw is None:
        return False
    try:
        with socket.socket(raw.family, raw.type, fileno=os.dup(raw.fileno())) as peek:
            return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _reset_by_peer(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ConnectionResetError, BrokenPipeError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Fatal(Exception):
    """A problem no retry will fix (TLS policy, certificates, credentials)."""


class SmtpConnection:
    """One reusable connection; ``deliver`` never raises for a recipient's fate."""

    def __init__(self, config: SmtpConfig, tls: ssl.SSLContext) -> None:
        self.config = config
        self._tls = tls
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
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
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        if self.config.password is None:
            raise _Fatal(f"no password for {self.config.user}; set DIGEST_SMTP_PASSWORD")
        try:
            await smtp.login(self.config.user or "", self.config.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise _Fatal(f"{self.config.host} refused the login for {self.config.user}: "
                         f"{exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPException as exc:
            raise _Fatal(f"cannot log in to {self.config.host}: {exc}") from exc

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery:
        try:
            if self._smtp is None or not self._smtp.is_connected:
                self._smtp = await self._connect()
        except _Fatal as exc:
            raise TransportError(str(exc)) from exc
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(
                f"the certificate of {self.config.host} failed verification "
                f"({exc.verify_message}); nothing was sent. Use --ca-file for a private CA"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # A refusal before any recipient was named is the server's state, not
            # this recipient's fate: never a failure, always worth another try.
            return Delivery(envelope, "deferred", exc.code, " ".join(exc.message.split()),
                            connection=True, throttled=exc.code in THROTTLE_CODES)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return Delivery(envelope, "deferred", None, f"cannot connect: {exc}", connection=True)
        return await self._transaction(self._smtp, envelope, before_data)

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, envelope: Envelope, before_data: BeforeData
    ) -> Delivery:
        mail = b"MAIL FROM:<" + envelope.sender.encode() + b">"
        if not envelope.recipient.isascii() or not envelope.sender.isascii():
            if not smtp.supports_extension("smtputf8"):
                return Delivery(envelope, "failed", None,
                                "internationalised address, and the server lacks SMTPUTF8")
            mail += b" SMTPUTF8"
        after_dot = False
        try:
            # Raw commands: the addresses were validated when the list was read,
            # and aiosmtplib's own mail()/rcpt() would parse them again per message.
            reply = await smtp.execute_command(mail)
            if reply.code != 250:
                raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, envelope.sender)
            reply = await smtp.execute_command(b"RCPT TO:<" + envelope.recipient.encode() + b">")
            if reply.code not in (250, 251):
                raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message,
                                                      envelope.recipient)
            await before_data()
            protocol = await self._start_data(smtp)
            # message.py writes the wire form: CRLF ends and no line starting
            # with a dot, so it goes out as is, with no per-message rewriting.
            protocol.write(envelope.data + b".\r\n")
            after_dot = True
            response = await protocol.read_response(timeout=self.config.timeout)
            if response.code != 250:
                raise aiosmtplib.SMTPDataError(response.code, response.message)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(smtp, exc.code)
            if isinstance(exc, aiosmtplib.SMTPSenderRefused) and exc.code >= 500:
                raise TransportError(
                    f"{self.config.host} refused the sender {envelope.sender}: {exc.code} "
                    f"{' '.join(exc.message.split())}; the run stopped. Check --from",
                    code=exc.code,
                ) from exc
            at_rcpt = isinstance(exc, aiosmtplib.SMTPRecipientRefused)
            # 552 to RCPT is "too many recipients" in practice: worth a retry. Only
            # a permanent refusal of the recipient itself is a bounce; one of the
            # message (at DATA) says nothing about the address.
            return self._refused(envelope, exc.code, exc.message,
                                 transient=at_rcpt and exc.code == 552,
                                 bounce=at_rcpt and exc.code >= 500)
        except (TimeoutError, OSError, aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPTimeoutError) as exc:
            smtp.close()
            # A reset means our bytes hit a closed socket: the server never read
            # the whole message, so a retry cannot duplicate it. A clean close or a
            # timeout after the dot leaves us not knowing.
            if after_dot and not _reset_by_peer(exc):
                return Delivery(envelope, "ambiguous", None,
                                f"no reply after the final dot: {exc or type(exc).__name__}")
            return Delivery(envelope, "deferred", None, f"connection lost: {exc}",
                            connection=True)
        return Delivery(envelope, "sent", response.code, response.message)

    async def _start_data(self, smtp: aiosmtplib.SMTP) -> SMTPProtocol:
        response = await smtp.execute_command(b"DATA")
        if response.code != 354:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        # A server that hangs up right after 354 has not read the message. If its
        # close has arrived, it must count as retryable, not ambiguous: ask the
        # kernel directly, since the event loop may not have polled it yet.
        protocol = smtp.protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing() \
                or _peer_closed(protocol.transport):
            raise aiosmtplib.SMTPServerDisconnected("connection closed after 354")
        return protocol

    async def _reset(self, smtp: aiosmtplib.SMTP, code: int) -> None:
        if code == 421 or not smtp.is_connected:
            smtp.close()
            return
        try:
            await smtp.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            smtp.close()

    @staticmethod
    def _refused(envelope: Envelope, code: int, message: str, *,
                 transient: bool = False, bounce: bool = False) -> Delivery:
        status = "deferred" if transient or 400 <= code < 500 else "failed"
        return Delivery(envelope, status, code, " ".join(message.split()),  # type: ignore[arg-type]
                        throttled=code in THROTTLE_CODES, bounce=bounce and status == "failed")

    async def close(self) -> None:
        if self._smtp is not None and self._smtp.is_connected:
            try:
                await self._smtp.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                self._smtp.close()
        self._smtp = None


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
