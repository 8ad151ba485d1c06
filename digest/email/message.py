"""Turn one rendered digest variant into per-recipient messages, fast.

The MIME structure, headers and quoted-printable bodies are built once per
variant. Each personal value (greeting, address, links) sits at a placeholder
position; a static segment always ends at the start of a QP line, so a
recipient's message is the static pieces joined with that recipient's
freshly encoded values, each followed by a soft line break. That keeps the
per-recipient cost in microseconds, and the output is already in wire form:
CRLF line ends, no line over 76 octets, and no line that starts with a dot
(a leading dot is written as ``=2E``), so SMTP needs no dot-stuffing.
"""

from __future__ import annotations

import binascii
import hashlib
import html as _html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, getaddresses, parseaddr
from typing import NamedTuple

from digest.email.headers import ascii_domain, list_id, mailbox, to_field, unstructured
from digest.email.links import Links, site_base
from digest.email.render import PLACEHOLDER_FIELDS, TEMPLATES, TOKEN_CLOSE, TOKEN_OPEN, Rendered
from digest.email.signing import Signer
from digest.errors import ConfigError, HeaderError, TemplateError
from digest.model import Subscriber, address_key, slugify

_TOKEN = re.compile(f"{TOKEN_OPEN}([a-z_]+){TOKEN_CLOSE}")
_SOFT_BREAK = b"=\r\n"
_QP_UNIT = re.compile(rb"=[0-9A-F]{2}|.", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fit(line: bytes, limit: int) -> bytes:
    """One line of ``b2a_qp`` output made wire-safe: a leading dot is written
    ``=2E`` (so SMTP needs no dot-stuffing) and a line longer than ``limit`` is
    split with soft breaks, never inside an ``=XX`` escape."""
    if len(line) <= limit and not line.startswith(b"."):
        return line
    soft = line.endswith(b"=")
    lines, current = [], b""
    for unit in _QP_UNIT.findall(line[:-1] if soft else line):
        if len(current) + len(unit) > 75:
            lines.append(current + b"=")
            current = b""
        current += b"=2E" if not current and unit == b"." else unit
    lines.append(current + b"=" if soft else current)
    return b"\r\n".join(lines)


def _qp(text: str) -> bytes:
    """Quoted-printable in wire form: CRLF line ends, no line over 76 octets and
    the last one within 75, so a soft line break can always follow it."""
    # A lone CR is a line break too: left raw it would be a bare CR on the wire.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = binascii.b2a_qp(text.encode("utf-8"), istext=True).split(b"\n")
    last = len(lines) - 1
    return b"\r\n".join(_fit(line, 75 if i == last else 76) for i, line in enumerate(lines))


# Printable ASCII without a leading dot or trailing space needs only "=" escaped
# and long lines wrapped to be quoted-printable: most names, addresses and links.
_QP_PLAIN = re.compile(r"[!-~](?:[ !-~]*[!-~])?")
_WRAP = 73  # leaves room for a leading "." written "=2E", and the soft break


def _wrap_plain(data: bytes) -> bytes:
    """Soft-wrap escaped plain ASCII, never inside an "=XX" escape."""
    lines, start = [], 0
    while len(data) - start > _WRAP:
        cut = start + _WRAP
        escape = data.rfind(b"=", cut - 2, cut)
        cut = escape if escape != -1 else cut
        lines.append(data[start:cut])
        start = cut
    lines.append(data[start:])
    return b"=\r\n".join(b"=2E" + line[1:] if line.startswith(b".") else line
                          for line in lines)


def _qp_value(text: str) -> bytes:
    """A recipient value in wire-form QP, followed by a soft line break."""
    if _QP_PLAIN.fullmatch(text) and not text.startswith("."):
        escaped = text.replace("=", "=3D").encode("ascii")
        if len(escaped) <= 75:
            return escaped + _SOFT_BREAK
        return _wrap_plain(escaped) + _SOFT_BREAK
    return _qp(text) + _SOFT_BREAK


_HTML_SPECIAL = re.compile(r"[&<>\"']")
# Link tokens are URL-safe base64 and dots: nothing to escape in QP or HTML.
_TOKENS = frozenset({"unsubscribe_token", "preferences_token"})
_EXAMPLES = {
    "--from": ("from", "Harbour Weekly <news@example.org>"),
    "--reply-to": ("reply-to", "Newsroom <newsroom@example.org>"),
}


def header_value(name: str, value: str) -> str:
    """Refuse a header value carrying CR, LF or other control characters."""
    if _CONTROL.search(value):
        raise HeaderError(
            f"the {name} header value {value!r} contains a line break or control "
            "character; remove it"
        )
    return value


def _mailbox(value: str, flag: str) -> tuple[str, str]:
    """The display name and header-ready address of ``--from`` or ``--reply-to``.

    A non-ASCII local part is refused rather than sent: it needs SMTPUTF8 from
    every server on the way and a raw UTF-8 header, which most lists never need.
    """
    if not _CONTROL.search(value) and len(getaddresses([value])) != 1:
        raise ConfigError(f"{value!r} must be exactly one address", source=flag)
    name, address = parseaddr(value)
    local, _, domain = address.rpartition("@")
    if not local or not domain or _CONTROL.search(value):
        what, example = _EXAMPLES[flag]
        raise ConfigError(
            f"{what} address {value!r} is not an address; set it like '{example}'", source=flag
        )
    if not local.isascii():
        raise ConfigError(
            f"{address!r} has a non-ASCII local part, which needs SMTPUTF8 from every "
            "server on the way; use an ASCII address",
            source=flag,
        )
    try:
        return name, f"{local}@{ascii_domain(domain)}"
    except HeaderError as exc:
        raise ConfigError(f"{address!r}: {exc}", source=flag) from exc


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sends the newsletter, and where its links point."""

    name: str
    sender: str
    reply_to: str | None = None
    site_url: str | None = None
    postal_address: str | None = None  # shown in every footer (CAN-SPAM)
    archive_url: str | None = None  # where the web archive is published

    @property
    def list_key(self) -> str:
        """The List-Id identifier, e.g. ``harbour-weekly.example.org``: what
        tells this newsletter's links from another's."""
        return f"{slugify(self.name) or 'digest'}.{self.domain}"

    @property
    def address(self) -> str:
        """The ``--from`` address as it goes out: the domain in IDNA."""
        return _mailbox(self.sender, "--from")[1]

    @property
    def domain(self) -> str:
        """The ``--from`` domain in IDNA, as Message-ID and List-Id carry it."""
        return self.address.rpartition("@")[2]

    def check(self) -> None:
        _mailbox(self.sender, "--from")
        # A line break in --reply-to is a HeaderError, raised when the header is built.
        if self.reply_to and not _CONTROL.search(self.reply_to):
            _mailbox(self.reply_to, "--reply-to")
        # The site URL goes into the List-Unsubscribe header of every message.
        if self.site_url:
            site_base(self.site_url)
        if self.archive_url:
            site_base(self.archive_url, "--archive-url")


class Envelope(NamedTuple):
    """One message ready for a transport. A named tuple: one is made per
    recipient, and a tuple is made in a fraction of a frozen dataclass's time."""

    sender: str
    recipient: str
    message_id: str
    data: bytes


def message_id(campaign: str, email: str, domain: str) -> str:
    """Unique per (campaign, recipient) and the same on every run, so a resent
    message can be recognised as a duplicate by receivers."""
    digest = hashlib.sha256(f"{campaign}\0{address_key(email)}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


@dataclass(frozen=True, slots=True)
class _Part:
    statics: tuple[bytes, ...]
    fields: tuple[str, ...]


def _compile_part(text: str) -> _Part:
    pieces = _TOKEN.split(text)
    fields = tuple(pieces[1::2])
    unknown = set(fields) - set(PLACEHOLDER_FIELDS)
    if unknown:
        raise TemplateError(", ".join(sorted(unknown)), "is not a recipient field")
    statics = []
    for index, piece in enumerate(pieces[0::2]):
        encoded = _qp(piece)
        if index < len(fields) and encoded and not encoded.endswith(b"\r\n"):
            encoded += _SOFT_BREAK
        statics.append(encoded)
    return _Part(tuple(statics), fields)


class MessageTemplate:
    """Everything about a variant's messages that is the same for every recipient."""

    def __init__(
        self, rendered: Rendered, *, identity: Identity, campaign: str, sent_at: datetime,
        links: Links | None = None, signer: Signer | None = None,
    ) -> None:
        identity.check()
        if TOKEN_OPEN in rendered.subject:
            raise TemplateError(
                TEMPLATES["subject"],
                "uses a recipient field, but the subject is the same for every "
                "recipient; move it into the body templates",
            )
        self.identity = identity
        self.campaign = campaign
        self.domain = identity.domain
        self.sender = identity.address
        self.links = links or Links(identity.site_url, self.sender, signer)
        self._id_hash = hashlib.sha256(f"{campaign}\0".encode())
        self._text_part = _compile_part(rendered.text)
        self._html_part = _compile_part(rendered.html)
        fields = {*self._text_part.fields, *self._html_part.fields}
        self._whole_links = bool(fields & {"unsubscribe_url", "preferences_url"})
        boundary = "=_digest_" + hashlib.sha256(
            (rendered.text + rendered.html).encode()
        ).hexdigest()[:24]
        self._head = self._static_headers(rendered.subject, sent_at)
        self._mime = (
            f"MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self._between = (
            f"\r\n--{boundary}\r\n"
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._prepare_plan()

    def _static_headers(self, subject: str, sent_at: datetime) -> bytes:
        """From, Reply-To, Subject, Date and List-Id, in our own encoding (see
        ``digest.email.headers``): 7-bit, folded, every encoded-word valid."""
        ident = self.identity
        fields = [mailbox("From", *_mailbox(ident.sender, "--from"))]
        if ident.reply_to:
            reply_to = header_value("Reply-To", ident.reply_to)
            fields.append(mailbox("Reply-To", *_mailbox(reply_to, "--reply-to")))
        name = header_value("List-Id", ident.name)
        fields += [
            unstructured("Subject", header_value("Subject", subject)),
            f"Date: {format_datetime(sent_at)}\r\n",
            list_id(name, ident.list_key),
        ]
        return "".join(fields).encode("ascii")


    def values(self, subscriber: Subscriber, rid: str = "") -> dict[str, str]:
        """The personal values of one recipient, ``rid`` being their opaque id
        in the state (see digest.email.signing)."""
        name = subscriber.name
        unsubscribe, preferences = self.links.tokens(rid)
        values = {
            "greeting": f"Hi {name}," if name else "Hi there,",
            "name": name,
            "email": subscriber.email,
            "unsubscribe_token": unsubscribe,
            "preferences_token": preferences,
        }
        if self._whole_links:  # templates rendered without the links' static bases
            values["unsubscribe_url"] = self.links.unsubscribe_base + unsubscribe
            values["preferences_url"] = self.links.preferences_base + preferences
        return values

    def personalize(self, subscriber: Subscriber, rid: str = "") -> Envelope:
        name, email = subscriber.name, subscriber.email
        if _CONTROL.search(name) or _CONTROL.search(email):
            raise HeaderError(f"recipient {email!r} would break a header")
        unsubscribe, preferences = self.links.tokens(rid)
        values = {"greeting": f"Hi {name}," if name else "Hi there,", "name": name,
                  "email": email, "unsubscribe_token": unsubscribe,
                  "preferences_token": preferences}
        if self._whole_links:
            values["unsubscribe_url"] = self.links.unsubscribe_base + unsubscribe
            values["preferences_url"] = self.links.preferences_base + preferences
        msgid = self._message_id(email)
        encoded: dict[tuple[str, bool], bytes] = {}
        for key in self._needed:  # each field's text slot comes before its HTML slot
            field, markup = key
            value = values[field]
            if markup:
                if field in _TOKENS or not _HTML_SPECIAL.search(value):
                    same = encoded.get((field, False))
                    if same is not None:  # escaping changes nothing
                        encoded[key] = same
                        continue
                else:
                    value = _html.escape(value)
            if field in _TOKENS and len(value) <= 75:
                encoded[key] = value.encode() + _SOFT_BREAK  # URL-safe: already plain QP
            else:
                encoded[key] = _qp_value(value)
        pieces = self._plan.copy()
        pieces[1] = (f"{to_field(name, email)}Message-ID: {msgid}\r\n"
                     f"{self.links.header(unsubscribe)}").encode()
        for index, key in self._slots:
            pieces[index] = encoded[key]
        return Envelope(self.sender, email, msgid, b"".join(pieces))

    def _message_id(self, email: str) -> str:
        """``message_id`` for this campaign, with the campaign's part hashed once."""
        digest = self._id_hash.copy()
        digest.update(address_key(email).encode())
        return f"<{digest.hexdigest()[:32]}@{self.domain}>"

    def _prepare_plan(self) -> None:
        """The message as a list of static pieces with a hole per personal value,
        so a recipient costs one list copy, a few encodings and one join."""
        plan: list[bytes] = [self._head, b"", self._mime]
        slots: list[tuple[int, tuple[str, bool]]] = []
        for part, markup, after in ((self._text_part, False, self._between),
                                    (self._html_part, True, self._tail)):
            for static, field in zip(part.statics, part.fields, strict=False):
                plan.append(static)
                slots.append((len(plan), (field, markup)))
                plan.append(b"")
            plan.append(part.statics[-1])
            plan.append(after)
        self._plan = plan
        self._slots = tuple(slots)
        # Text first: an HTML value that escaping leaves alone reuses its encoding.
        self._needed = tuple(dict.fromkeys(key for _, key in sorted(slots, key=lambda s: s[1][1])))


def fill(text: str, values: dict[str, str], *, html: bool) -> str:
    """Substitute recipient values into rendered output, escaping them for HTML."""
    escape: Callable[[str], str] = _html.escape if html else str
    return _TOKEN.sub(lambda m: escape(values[m[1]]), text)
