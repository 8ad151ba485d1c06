"""Signed link tokens: what lets a reader unsubscribe in one click, and no one else.

A token is ``RID.KID.TAG``:

* ``RID``, the recipient's opaque id. It reveals no address; the state maps it
  back to the recipient, and records it when the message is built.
* ``KID``, the id of the key that signed it (the first 6 hex digits of the
  key's SHA-256), so a verifier picks the right key at once.
* ``TAG``, 20 characters of HMAC-SHA256(key, "LIST-ID\\nRID"). The HMAC's
  first 120 bits sign the unsubscribe link and the next 120 the preferences
  link, so one link cannot stand in for the other, a link for one list
  fails on another, and one HMAC per recipient serves both (building stays
  above 100,000 messages a second).

Keys come from DIGEST_SECRET or the config's ``secret-file``, newest first:
the newest signs, all of them verify, so a key can be rotated without
breaking the links in old emails. Tokens never expire: an old digest's link
must still work. Comparison is in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from digest.errors import ConfigError

Purpose = Literal["unsubscribe", "preferences"]
PURPOSES: tuple[Purpose, ...] = ("unsubscribe", "preferences")
MIN_KEY_CHARS = 32
_TAG = 20
_TOKEN = re.compile(r"([A-Za-z0-9_-]{8,64})\.([0-9a-f]{6})\.([A-Za-z0-9_-]{20})")
_KEY_TEXT = re.compile(r"[!-~]+")
_URL_SAFE = bytes.maketrans(b"+/", b"-_")
HOW_TO = "make one with 'digest secret new' and set DIGEST_SECRET or secret-file"


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    secret: bytes = field(repr=False)

    @classmethod
    def of(cls, text: str) -> Key:
        secret = text.encode()
        return cls(hashlib.sha256(secret).hexdigest()[:6], secret)


def new_secret() -> str:
    """A fresh key: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def new_rid() -> str:
    """A fresh recipient id: 72 random bits, 12 URL-safe characters."""
    return secrets.token_urlsafe(9)


def parse_keys(text: str, source: str) -> tuple[Key, ...]:
    """Keys from DIGEST_SECRET or a secret file: newest first, separated by
    whitespace or commas; ``#`` starts a comment in a file. Never echoes one."""
    words = [w for line in text.splitlines() for w in
             line.split("#", 1)[0].replace(",", " ").split()]
    if not words:
        raise ConfigError(f"no key in it; {HOW_TO}", source=source)
    for number, word in enumerate(words, start=1):
        if len(word) < MIN_KEY_CHARS or not _KEY_TEXT.fullmatch(word):
            raise ConfigError(
                f"key {number} is not a key of at least {MIN_KEY_CHARS} printable characters; "
                f"{HOW_TO}", source=source)
    keys = tuple(Key.of(word) for word in words)
    if len({k.kid for k in keys}) != len(keys):
        raise ConfigError("the same key is given twice", source=source)
    return keys


class Signer:
    """Makes and checks the tokens of one list. ``keys`` newest first."""

    def __init__(self, keys: Sequence[Key], list_id: str) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        self.list_id = list_id
        self._prefix = f"{list_id}\n".encode()
        self._kid = keys[0].kid
        self._keys = {k.kid: k for k in keys}
        # HMAC (RFC 2104) with its two keyed hash states computed once: each token
        # then costs two hash copies, not a new HMAC object (a third of the time).
        # tests/test_signing.py checks it against hmac.digest.
        key = keys[0].secret
        key = key if len(key) <= 64 else hashlib.sha256(key).digest()
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key.ljust(64, b"\0")))
        self._inner.update(self._prefix)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key.ljust(64, b"\0")))

    def tokens(self, rid: str) -> tuple[str, str]:
        """The (unsubscribe, preferences) tokens of one recipient."""
        inner = self._inner.copy()
        inner.update(rid.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        tags = binascii.b2a_base64(outer.digest()[:30], newline=False).translate(_URL_SAFE)
        head = f"{rid}.{self._kid}."
        text = tags.decode("ascii")
        return head + text[:_TAG], head + text[_TAG:]

    def verify(self, token: str, purpose: Purpose) -> str | None:
        """The recipient id a genuine token for ``purpose`` carries; None for a
        forged, truncated, other-purpose or other-list token."""
        match = _TOKEN.fullmatch(token)
        key = self._keys.get(match[2]) if match else None
        if match is None or key is None:
            return None
        mac = hmac.digest(key.secret, self._prefix + match[1].encode(), "sha256")
        tags = base64.urlsafe_b64encode(mac[:30]).decode("ascii")
        expected = tags[:_TAG] if purpose == "unsubscribe" else tags[_TAG:]
        return match[1] if hmac.compare_digest(expected, match[3]) else None
