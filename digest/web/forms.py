"""The small form bodies the pages and mail providers POST, read and parsed
here rather than by a form library: every body is bounded before it is read,
and the two encodings in use (``application/x-www-form-urlencoded`` from
browsers and Gmail, ``multipart/form-data`` from some providers) are a few
lines each with the standard library."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

Fields = list[tuple[str, str]]

ONE_CLICK_LIMIT = 1024  # RFC 8058's body is 26 bytes; a provider's multipart a few hundred
FORM_LIMIT = 16 * 1024  # a preferences form: a checkbox per tag
_MAX_FIELDS = 500


async def bounded(content_length: str | None, chunks: AsyncIterator[bytes],
                  limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to be over ``limit``
    bytes: a declared length over it is refused before a byte is read."""
    if content_length is not None and (not content_length.isdigit()
                                       or int(content_length) > limit):
        return None
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def parse_form(content_type: str, body: bytes) -> Fields | None:
    """The (name, value) pairs of a urlencoded or multipart form body; None for
    any other type, or a body that is not a well-formed form of its type."""
    header = EmailMessage()
    if "\r" in content_type or "\n" in content_type:
        return None
    header["Content-Type"] = content_type
    kind = header.get_content_type()
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if kind == "multipart/form-data" and header.get_param("boundary"):
        return _multipart(content_type, body)
    return None


def is_one_click(content_type: str, body: bytes) -> bool:
    """Whether the body is RFC 8058's ``List-Unsubscribe=One-Click`` and nothing else."""
    return parse_form(content_type, body) == [("List-Unsubscribe", "One-Click")]


def _urlencoded(body: bytes) -> Fields | None:
    try:
        text = body.decode("utf-8").strip()  # a trailing CRLF from a hand-rolled client
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                         max_num_fields=_MAX_FIELDS)
    except ValueError:  # bad UTF-8, a field without "=", or too many fields
        return None


def _multipart(content_type: str, body: bytes) -> Fields | None:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if message.defects or not message.is_multipart():
        return None
    fields: Fields = []
    for part in message.get_payload():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if (part.get_content_disposition() != "form-data" or not isinstance(name, str)
                or part.is_multipart() or part.defects or not isinstance(payload, bytes)
                or part.get_filename() is not None):
            return None
        try:
            fields.append((name, payload.decode("utf-8")))
        except UnicodeDecodeError:
            return None
    return fields if len(fields) <= _MAX_FIELDS else None
