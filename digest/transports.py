"""Transports deliver Envelopes. The interface is asynchronous so that network
transports (SMTP) and local ones share one sending loop.

``maildir:PATH`` writes each message into a Maildir: first into ``tmp/``,
flushed to disk, then renamed into ``new/``. A rename is atomic, so a mail
reader never sees half a message.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from digest.errors import ConfigError, TransportError
from digest.message import Envelope

Status = Literal["sent", "failed", "deferred", "ambiguous"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one envelope."""

    envelope: Envelope
    status: Status
    code: int | None = None
    reply: str = ""


class Transport(Protocol):
    """Something that delivers envelopes. ``open`` before, ``close`` after."""

    description: str

    async def open(self) -> None: ...

    async def deliver(self, envelope: Envelope) -> Delivery: ...

    async def close(self) -> None: ...


class MaildirTransport:
    """Deliver into a Maildir folder (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"maildir:{path}"
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    async def open(self) -> None:
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"cannot create the Maildir {self.path}: {exc.strerror}") from exc

    def _unique(self) -> str:
        now = time.time()
        return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(self._counter)}.{self._host}"

    async def deliver(self, envelope: Envelope) -> Delivery:
        name = self._unique()
        tmp, new = self.path / "tmp" / name, self.path / "new" / name
        # Maildir files use the local line ending, not SMTP's CRLF.
        data = envelope.data.replace(b"\r\n", b"\n")
        try:
            with open(tmp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, new)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TransportError(f"cannot write to the Maildir {self.path}: {exc.strerror}") from exc
        return Delivery(envelope, "sent")

    async def close(self) -> None:
        return None


def make_transport(spec: str) -> Transport:
    """A transport from its URL-like spec, e.g. ``maildir:outbox``."""
    scheme, sep, rest = spec.partition(":")
    if scheme == "maildir" and sep and rest:
        return MaildirTransport(Path(rest))
    raise ConfigError(
        f"unknown transport {spec!r}; use maildir:PATH (e.g. maildir:outbox)",
        source="--transport",
    )
