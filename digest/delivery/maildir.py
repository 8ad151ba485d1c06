"""``maildir:PATH``: each message is written into ``tmp/``, flushed to disk,
then renamed into ``new/``. A rename is atomic, so a mail reader never sees
half a message."""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

from digest.delivery.transport import BeforeData, Delivery
from digest.email.message import Envelope
from digest.errors import TransportError


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
        # Maildir files use the local line ending, not SMTP's CRLF. Return-Path
        # comes first, as a delivery agent writes it, so a VERP sender shows here
        # too; it is outside any DKIM signature, which covers only what follows.
        sender = envelope.sender.encode("ascii", "replace")
        data = b"Return-Path: <" + sender + b">\n" + envelope.data.replace(b"\r\n", b"\n")
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
