"""DKIM signing (RFC 6376; Ed25519 per RFC 8463) as a message wrapper.

Each message is signed over exactly the bytes that go out, after
personalisation: relaxed/relaxed canonicalisation, no ``l=``. The body hash
differs per recipient (their links are in it), so it is computed per message
with hashlib; the signature itself comes from ``cryptography`` (about 0.25 ms
for RSA-2048), not from dkimpy's pure-Python RSA (about 7 ms). The tests
verify every message with dkimpy, the reference.

From, Subject and both List-Unsubscribe headers are oversigned (named once more
than they occur), so none can be added after signing (RFC 8058 §4 asks that the
signature cover List-Unsubscribe and List-Unsubscribe-Post).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from digest.email.message import Envelope
from digest.errors import ConfigError

MIN_RSA_BITS = 2048
SIGNED = ("from", "to", "subject", "date", "message-id", "reply-to", "list-id",
          "list-unsubscribe", "list-unsubscribe-post", "mime-version", "content-type")
OVERSIGNED = frozenset({"from", "subject", "list-unsubscribe", "list-unsubscribe-post"})
_WSP_RUN = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_CACHE_LIMIT = 4096
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9-]+")
SigningKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def load_key(path: Path) -> SigningKey:
    """A PEM private key from a file: RSA of 2048 bits or more, or Ed25519."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", source="--dkim-key") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key; make one with "
                          "'digest dkim keygen'", source="--dkim-key") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{path} is a {key.key_size}-bit RSA key; receivers want "
                              f"{MIN_RSA_BITS} bits or more: make one with 'digest dkim keygen'",
                              source="--dkim-key")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ConfigError(f"{path} is neither an RSA nor an Ed25519 key; make one with "
                      "'digest dkim keygen'", source="--dkim-key")


def txt_record(key: SigningKey, selector: str, domain: str) -> str:
    """The DNS TXT record that publishes ``key``'s public half, split into
    strings of at most 255 characters as DNS requires."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        value = f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    else:
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        value = f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    strings = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain} IN TXT {strings}"


def relaxed_body(body: bytes, cache: dict[bytes, bytes] | None = None) -> bytes:
    """The relaxed body canonicalisation (RFC 6376 §3.4.4), line by line.

    ``cache`` maps lines to their canonical form: a campaign's messages share
    nearly every line, so a signer that keeps one canonicalises each static
    line once, not once a message (that was as costly as the RSA signature).
    """
    known = {} if cache is None else cache
    if len(known) >= _CACHE_LIMIT * 4:
        known.clear()
    *whole, last = body.split(b"\r\n")
    lines = []
    for line in whole:
        canon = known.get(line)
        if canon is None:
            canon = known[line] = _WSP_RUN.sub(b" ", line).rstrip(b" ")
        lines.append(canon)
    if last:  # a last line without its CRLF keeps its (collapsed) trailing space
        lines.append(_WSP_RUN.sub(b" ", last))
    while lines and not lines[-1]:  # empty lines at the end are dropped
        lines.pop()
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def relaxed_header(raw: bytes) -> bytes:
    """One header field (name, colon, value, CRLF) canonicalised (§3.4.2)."""
    name, _, value = raw.partition(b":")
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value).rstrip(b"\r\n")).strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, raw field with its CRLF) for each header field."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line + b"\r\n")
        elif line:
            fields.append((line.partition(b":")[0].strip().lower(), line + b"\r\n"))
    return fields


def _fold_list(prefix: str, items: Sequence[str], sep: str) -> str:
    """``prefix`` then ``items`` joined by ``sep``, folded before 78 columns."""
    lines, line = [], " " + prefix
    for index, item in enumerate(items):
        piece = item + (sep if index < len(items) - 1 else ";")
        if len(line) + len(piece) > 77 and line.strip():
            lines.append(line)
            line = " "
        line += piece
    lines.append(line)
    return "\r\n".join(lines)


@dataclass(frozen=True, slots=True)
class DkimKey:
    """One signing identity: a key published at ``selector._domainkey.domain``."""

    key: SigningKey = field(repr=False)
    selector: str
    domain: str

    @property
    def algorithm(self) -> str:
        return "rsa-sha256" if isinstance(self.key, rsa.RSAPrivateKey) else "ed25519-sha256"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463: Ed25519 signs the SHA-256 hash of the canonicalised data.
        return self.key.sign(hashlib.sha256(data).digest())


class DkimSigner:
    """A Wrapper that prepends one DKIM-Signature per key, the first key's on
    top. Several keys dual-sign (say RSA for old verifiers, Ed25519 for new)."""

    def __init__(self, keys: Sequence[DkimKey]) -> None:
        if not keys:
            raise ValueError("a DkimSigner needs at least one key")
        self.keys = tuple(keys)
        # Most header fields and body lines are the same for every message of a campaign.
        self._canon: dict[bytes, bytes] = {}
        self._lines: dict[bytes, bytes] = {}

    def __call__(self, envelope: Envelope, /) -> Envelope:
        data = envelope.data
        end = data.find(b"\r\n\r\n")
        head, body = (data, b"") if end < 0 else (data[:end + 2], data[end + 4:])
        canonical = relaxed_body(body, self._lines)
        body_hash = base64.b64encode(hashlib.sha256(canonical).digest()).decode()
        names, signed = self._signed_headers(_fields(head))
        now = int(time.time())
        signatures = [self._signature(key, names, signed, body_hash, now) for key in self.keys]
        return envelope._replace(data=b"".join(signatures) + data)

    def _canonical(self, raw: bytes) -> bytes:
        canon = self._canon.get(raw)
        if canon is None:
            if len(self._canon) >= _CACHE_LIMIT:
                self._canon.clear()
            canon = self._canon[raw] = relaxed_header(raw)
        return canon

    def _signed_headers(self, fields: list[tuple[bytes, bytes]]) -> tuple[list[str], bytes]:
        """The h= names and the canonical text they sign: a name given n times
        signs its last n occurrences, bottom up; one more signs nothing."""
        by_name: dict[bytes, list[bytes]] = {}
        for field_name, raw in fields:
            by_name.setdefault(field_name, []).append(raw)
        names: list[str] = []
        pieces: list[bytes] = []
        for name in SIGNED:
            occurrences = by_name.get(name.encode(), [])
            for raw in reversed(occurrences):
                names.append(name)
                pieces.append(self._canonical(raw))
            if name in OVERSIGNED:
                names.append(name)
        return names, b"".join(pieces)

    def _signature(self, key: DkimKey, names: list[str], signed: bytes, body_hash: str,
                   now: int) -> bytes:
        head = (f"DKIM-Signature: v=1; a={key.algorithm}; c=relaxed/relaxed;\r\n"
                f" d={key.domain}; s={key.selector}; t={now};\r\n"
                f"{_fold_list('h=', names, ':')}\r\n"
                f" bh={body_hash};\r\n b=")
        canon = relaxed_header(head.encode("ascii") + b"\r\n").rstrip(b"\r\n")
        value = base64.b64encode(key.sign(signed + canon)).decode()
        folded = "\r\n ".join(value[i:i + 72] for i in range(0, len(value), 72))
        return (head + folded + "\r\n").encode("ascii")


def check_name(value: str, flag: str) -> str:
    """A selector or domain that fits in a DNS name and a DKIM-Signature header."""
    domain = "domain" in flag
    if not (_DOMAIN if domain else _SELECTOR).fullmatch(value):
        example = "a domain name like 'example.org'" if domain else \
            "a selector like 'news2026' (letters, digits, dots and hyphens)"
        raise ConfigError(f"{value!r} is not {example}", source=flag)
    return value


def dkim_signer(paths: Sequence[Path], selectors: Sequence[str], domain: str) -> DkimSigner:
    """The signer for ``--dkim-key`` files, each with the ``--dkim-selector`` of
    the same position (one selector may serve a single key only)."""
    if not paths:
        raise ConfigError("--dkim-selector and --dkim-domain need a key to sign with; add "
                          "--dkim-key FILE (make one with 'digest dkim keygen')",
                          source="--dkim-key")
    if len(selectors) != len(paths):
        raise ConfigError(f"{len(paths)} --dkim-key given with {len(selectors)} "
                          "--dkim-selector; give one selector per key, in the same order",
                          source="--dkim-selector")
    check_name(domain, "--dkim-domain")
    for selector in selectors:
        check_name(selector, "--dkim-selector")
    return DkimSigner([DkimKey(load_key(p), s, domain) for p, s in zip(paths, selectors,
                                                                         strict=True)])
