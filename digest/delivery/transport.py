"""What a transport is: it delivers Envelopes and says what became of each.

The interface is asynchronous so that network transports (SMTP) and local
ones (Maildir) share one sending loop. The implementations live in smtp.py
and maildir.py; connect.py makes one from its spec.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from digest.email.message import Envelope

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
"""The in-flight mark. Calling it asks for the mark; awaiting what it returns waits
until the mark is committed. A transport may ask early, so that the commit overlaps
its own round trips, but must await it before the point of no return."""


class Connection(Protocol):
    """One channel to the destination. ``deliver`` reports each recipient's
    fate as a Delivery, has ``before_data``'s mark committed before the point
    of no return, and raises a DigestError only when no retry can help, and then
    only for a message it did not deliver."""

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    """Where messages go. Each sending worker asks it for its own connection."""

    description: str

    def connection(self) -> Connection: ...


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
