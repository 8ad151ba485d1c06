"""The message-wrapping seam: between a recipient's wire-ready message and
the transport that carries it.

A wrapper takes an Envelope and returns the one to send: a DKIM signer adds
its header over exactly these bytes, a VERP wrapper changes the envelope
sender. Transports never know. Wrappers run in order, after personalisation,
and nothing re-serialises the bytes after the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from digest.email.message import Envelope


class Wrapper(Protocol):
    def __call__(self, envelope: Envelope, /) -> Envelope: ...


def wrap(envelope: Envelope, wrappers: Sequence[Wrapper]) -> Envelope:
    for wrapper in wrappers:
        envelope = wrapper(envelope)
    return envelope
