"""VERP: each message's envelope sender names its recipient, so a bounce that
comes back to ``bounces+TOKEN@DOMAIN`` says whose mail bounced even when the
bounce itself is unreadable.

The token is ``RID.TAG``: the recipient's opaque id (the state maps it back to
the campaign and the address) and 16 characters of a tag derived from the
recipient's signed unsubscribe token under the link keys (see
``digest.email.signing``), with its own purpose string, so a VERP token cannot
be forged without the key and is not itself a link token. The local part stays
ASCII and well under the 64 octets SMTP allows.

The wrapper reads the recipient id from the token the message's
List-Unsubscribe header already carries (every message has one), so the seam
stays Envelope -> Envelope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from digest.email.message import Envelope
from digest.email.signing import Signer
from digest.errors import ConfigError, HeaderError

PREFIX = "bounces+"
MAX_LOCAL = 64
_TAG = 16
_PURPOSE = b"digest-verp\n"
# The mailto in List-Unsubscribe: "...?subject=unsubscribe%20RID.KID.TAG>".
_HEADER_RID = re.compile(rb"\r\nList-Unsubscribe:[^\r]*(?:\r\n[ \t][^\r]*)*?"
                         rb"unsubscribe%20([A-Za-z0-9_-]{8,64})\.[0-9a-f]{6}\.")
_TOKEN = re.compile(r"([A-Za-z0-9_-]{8,39})\.([A-Za-z0-9_-]{16})")
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                     r"[A-Za-z]{2,63}")


def verp_token(signer: Signer, rid: str) -> str:
    """``RID.TAG`` for the recipient ``rid``."""
    unsubscribe = signer.tokens(rid)[0]
    tag = base64.urlsafe_b64encode(hashlib.sha256(_PURPOSE + unsubscribe.encode()).digest())
    return f"{rid}.{tag[:_TAG].decode('ascii')}"


def verp_address(signer: Signer, rid: str, domain: str) -> str:
    return f"{PREFIX}{verp_token(signer, rid)}@{domain}"


def decode_verp(address: str, signer: Signer) -> str | None:
    """The recipient id of a genuine VERP address (angle brackets and case of the
    prefix tolerated); None for anything else, forged tokens included. The tag
    is checked against the newest link key, so mail sent before a key rotation
    no longer maps back."""
    local = address.strip().strip("<>").rpartition("@")[0]
    if local[:len(PREFIX)].lower() != PREFIX:
        return None
    match = _TOKEN.fullmatch(local[len(PREFIX):])
    if match is None:
        return None
    expected = verp_token(signer, match[1])
    return match[1] if hmac.compare_digest(expected, match[0]) else None


def bounce_domain(domain: str) -> str:
    """``--bounce-domain`` checked: an ASCII host name (IDNA already applied)."""
    if not _DOMAIN.fullmatch(domain):
        raise ConfigError(f"{domain!r} is not a domain name like 'bounces.example.org'",
                          source="--bounce-domain")
    return domain.lower()


class VerpWrapper:
    """A Wrapper that sets the envelope sender to the recipient's VERP address."""

    def __init__(self, signer: Signer, domain: str) -> None:
        self.signer = signer
        self.domain = bounce_domain(domain)

    def __call__(self, envelope: Envelope, /) -> Envelope:
        data = envelope.data
        head_end = data.find(b"\r\n\r\n")
        match = _HEADER_RID.search(data, 0, head_end if head_end >= 0 else len(data))
        if match is None:
            raise HeaderError(f"the message to {envelope.recipient} has no signed "
                              "List-Unsubscribe token to make its VERP address from")
        sender = verp_address(self.signer, match[1].decode("ascii"), self.domain)
        if len(sender.partition("@")[0]) > MAX_LOCAL:
            raise HeaderError(f"the VERP address {sender} has a local part over "
                              f"{MAX_LOCAL} characters")
        return envelope._replace(sender=sender)
