"""What a returned message is: a bounce, a complaint, an unsubscribe, or noise.

Reads one message's bytes and says nothing about policy (audience/inbox.py
decides what each finding does). In order:

* an RFC 3464 DSN (multipart/report; report-type=delivery-status): each failed
  recipient's Status, and its Final- or Original-Recipient;
* an RFC 5965 ARF report (report-type=feedback-report): the complainant, from
  the attached original's List-Unsubscribe token or Return-Path (VERP), its To,
  or the report's Original-Rcpt-To;
* a mail to the List-Unsubscribe ``mailto:``: the signed token in the subject
  or the address;
* a non-standard bounce: flufl.bounce (Mailman's detectors) finds the addresses;
* an auto-reply (Auto-Submitted, X-Autoreply, a vacation notice): ignored;
* anything else is unrecognised.

Every address a VERP token could be in (To, Delivered-To, X-Original-To...)
is kept as a candidate; the caller decodes them, as it holds the keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from typing import Literal
from urllib.parse import unquote

Kind = Literal["hard", "soft", "policy", "complaint", "unsubscribe", "ignored", "unrecognised"]
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}\.[0-9a-f]{6}\.[A-Za-z0-9_-]{20}")
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")
_VACATION = re.compile(r"\b(out of (the )?office|auto(matic)?[ -]?reply|vacation|abwesen)",
                       re.IGNORECASE)
_REPLY_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a message says. ``addresses``: the recipients it names as
    written in it; ``envelope``: where a VERP token may be; ``tokens``: signed
    unsubscribe tokens found in it."""

    kind: Kind
    addresses: tuple[str, ...] = ()
    status: str = ""
    envelope: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()


def parse(data: bytes) -> Message:
    return message_from_bytes(data)


def kind_of(status: str) -> Kind:
    """hard for 5.x.x, soft for 4.x.x and 5.2.2 (mailbox full), policy for 5.7.x."""
    if status.startswith("4.") or status == "5.2.2":
        return "soft"
    if status.startswith("5.7."):
        return "policy"
    return "hard" if status.startswith("5.") else "ignored"


def reply_kind(text: str, code: int) -> Kind:
    """The kind of an SMTP refusal, by the enhanced status code (RFC 3463) its text
    starts with, as a bounce message's would be read; by its basic ``code`` when it
    has none. So a 550 for a full mailbox (5.2.2) is soft, and a policy block
    (5.7.x) says nothing about the address, wherever the refusal is met."""
    status = _REPLY_STATUS.match(text)
    return kind_of(status.group(0) if status else f"{code // 100}.0.0")


def classify(msg: Message) -> list[Finding]:
    """The findings of one message: one per failed recipient of a bounce, else one."""
    report = msg.get_param("report-type", header="content-type")
    envelope = _envelope(msg)
    if msg.get_content_type() == "multipart/report" and isinstance(report, str):
        if report.lower() == "delivery-status":
            found = [f for f in _dsn(msg, envelope) if f.kind != "ignored"]
            return found or [Finding("ignored")]
        if report.lower() == "feedback-report":
            return [_arf(msg)]
    tokens = _unsubscribe_tokens(msg)
    if tokens:
        return [Finding("unsubscribe", envelope=envelope, tokens=tokens)]
    bounced = _nonstandard(msg, envelope)
    if bounced:
        return bounced
    if _auto_reply(msg):
        return [Finding("ignored")]
    return [Finding("unrecognised")]


def _envelope(msg: Message) -> tuple[str, ...]:
    values = [str(v) for name in _ENVELOPE_HEADERS for v in msg.get_all(name, [])]
    return tuple(dict.fromkeys(a for _, a in getaddresses(values) if a))


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):
        return [HeaderParser().parsestr(block.strip() + "\n")
                for block in re.split(r"\r?\n\s*\r?\n", payload) if block.strip()]
    return []


def _address(value: str | None) -> str:
    """``rfc822; ann@example.org`` -> ann@example.org."""
    if not value:
        return ""
    kind, _, address = str(value).partition(";")
    return address.strip().strip("<>") if address else kind.strip().strip("<>")


def _dsn(msg: Message, envelope: tuple[str, ...]) -> list[Finding]:
    found = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _blocks(part)[1:]:  # the first block is per message
            action = str(block.get("Action", "")).strip().lower()
            match = _STATUS.search(str(block.get("Status", "")))
            status = match.group(0) if match else ("4.0.0" if action == "delayed" else "")
            if action not in ("failed", "delayed") or not status:
                continue
            who = _address(block.get("Final-Recipient")) or _address(
                block.get("Original-Recipient"))
            found.append(Finding(kind_of(status), (who,) if who else (), status, envelope))
    return found


def _arf(msg: Message) -> Finding:
    """A complaint: who complained, from the attached original first."""
    addresses: list[str] = []
    tokens: tuple[str, ...] = ()
    envelope: tuple[str, ...] = ()
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            for block in _blocks(part):
                addresses += [_address(v) for v in block.get_all("Original-Rcpt-To", [])]
        elif kind in ("message/rfc822", "text/rfc822-headers"):
            original = _original(part)
            if original is None:
                continue
            links = unquote(str(original.get("List-Unsubscribe", "")))
            tokens = tuple(_TOKEN.findall(links))
            envelope = tuple(a for _, a in getaddresses(original.get_all("Return-Path", []))
                             if a)
            addresses = [a for _, a in getaddresses(original.get_all("To", [])) if a] + addresses
    return Finding("complaint", tuple(dict.fromkeys(a for a in addresses if a)),
                   envelope=envelope, tokens=tokens)


def _original(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return HeaderParser().parsestr(payload)
    return None


def _unsubscribe_tokens(msg: Message) -> tuple[str, ...]:
    """Signed tokens of a mail sent to the List-Unsubscribe mailto: in the subject
    (``unsubscribe TOKEN``) or the local part of the address it went to."""
    subject = str(msg.get("Subject", ""))
    found = _TOKEN.findall(subject) if "unsubscribe" in subject.lower() else []
    for address in _envelope(msg):
        found += _TOKEN.findall(address.rpartition("@")[0])
    return tuple(dict.fromkeys(found))


def _nonstandard(msg: Message, envelope: tuple[str, ...]) -> list[Finding]:
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(msg)
    found = [Finding("hard", (a.decode("utf-8", "replace"),), "5.0.0", envelope)
             for a in sorted(permanent)]
    found += [Finding("soft", (a.decode("utf-8", "replace"),), "4.0.0", envelope)
              for a in sorted(temporary - permanent)]
    return found


def _auto_reply(msg: Message) -> bool:
    submitted = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if submitted != "no" or msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() in ("auto_reply", "bulk", "junk"):
        return True
    return bool(_VACATION.search(str(msg.get("Subject", ""))))
