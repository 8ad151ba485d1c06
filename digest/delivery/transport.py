"""Transports deliver Envelopes. The interface is asynchronous so that network
transports (SMTP) and local ones share one sending loop.

``maildir:PATH`` writes each message into a Maildir: first into ``tmp/``,
flushed to disk, then renamed into ``new/``. A rename is atomic, so a mail
reader never sees half a message.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from digest.email.message import Envelope
from digest.errors import ConfigError, TransportError

Status = Literal["sent", "failed", "deferred", "ambiguous"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one envelope. ``deferred`` is a transient failure (worth
    a retry), ``failed`` a permanent one, ``ambiguous`` a connection lost after
    the final dot. ``connection`` marks a failure of the connection rather
    than of the recipient; ``throttled`` a server asking us to slow down;
    ``bounce`` a permanent refusal of the address, which suppresses it."""

    envelope: Envelope
    status: Status
    code: int | None = None
    reply: str = ""
    connection: bool = False
    throttled: bool = False
    bounce: bool = False  # the server refused this address for good (5xx to RCPT)


BeforeData = Callable[[], Awaitable[None]]


class Connection(Protocol):
    """One channel to the destination. ``deliver`` reports each recipient's
    fate as a Delivery, calls ``before_data`` just before the point of no
    return, and raises a DigestError only when no retry can help, and then
    only for a message it did not deliver."""

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    """Where messages go. Each sending worker asks it for its own connection."""

    description: str

    def connection(self) -> Connection: ...


class MaildirTransport:
    """Deliver into a Maildir folder (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"maildir:{path}"
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self._ready = False

    def connection(self) -> MaildirTransport:
        return self

    def _prepare(self) -> None:
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"cannot create the Maildir {self.path}: {exc.strerror}") from exc
        self._ready = True

    def _unique(self) -> str:
        now = time.time()
        return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(self._counter)}.{self._host}"

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery:
        if not self._ready:
            self._prepare()
        name = self._unique()
        tmp, new = self.path / "tmp" / name, self.path / "new" / name
        # Maildir files use the local line ending, not SMTP's CRLF.
        data = envelope.data.replace(b"\r\n", b"\n")
        await before_data()
        try:
            with open(tmp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, new)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TransportError(
                f"cannot write to the Maildir {self.path}: {exc.strerror}"
            ) from exc
        return Delivery(envelope, "sent")

    async def close(self) -> None:
        return None


def redact(spec: str) -> str:
    """``spec`` fit to show in a message: whatever stands between the ':' and the '@' of
    its user part (a password) becomes ``***``. Errs towards hiding too much, never too
    little: ``smtp://news:hunter2@host`` and ``smtps:/news:hunter2@host`` both lose it."""
    userinfo, at, host = spec.rpartition("@")
    if not at:
        return spec
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/+", userinfo)
    start = scheme.end() if scheme else 0
    user, colon, _ = userinfo[start:].partition(":")
    if not colon:
        return spec
    return f"{userinfo[:start]}{user}:***@{host}"


def make_transport(spec: str, **smtp_options: object) -> Transport:
    """A transport from its URL-like spec: ``maildir:PATH``, ``smtp://`` or ``smtps://``."""
    scheme, sep, rest = spec.partition(":")
    if scheme == "maildir" and sep and rest:
        return MaildirTransport(Path(rest))
    if scheme in ("smtp", "smtps") and sep:
        if not rest.startswith("//"):
            raise ConfigError(f"{redact(spec)!r} lacks the // after {scheme}:; use "
                              f"{scheme}://[user@]host[:port]", source="--transport")
        from digest.delivery.smtp import (  # aiosmtplib only when needed
            SmtpTransport,
            parse_smtp_url,
        )

        return SmtpTransport(parse_smtp_url(spec, **smtp_options))
    raise ConfigError(
        f"unknown transport {redact(spec)!r}; use maildir:PATH, smtp://[user@]host[:port] "
        "or smtps://[user@]host[:port]",
        source="--transport",
    )
