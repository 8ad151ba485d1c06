"""The seams new features plug into, each exercised through the real pipeline.

- The message-wrapping seam: a wrapper sees each recipient's wire-ready
  message and what it returns is exactly what the transport carries.
- The link seam: the message builder takes every link from one Links object,
  in the List-Unsubscribe header and in both parts alike.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from digest.content.compose import Digest
from digest.content.folder import Source
from digest.content.selection import IssueOptions
from digest.delivery.campaign import send
from digest.delivery.connect import make_transport
from digest.delivery.request import SendRequest
from digest.email.links import Links
from digest.email.message import Envelope, Identity, MessageTemplate
from digest.email.options import RenderOptions
from digest.email.render import make_environment, render_digest
from digest.model import Subscriber
from tests.helpers import TESTS
from tests.smtpd import FaultyServer

FIXTURES = TESTS / "fixtures" / "campaigns"
AS_OF = datetime(2026, 11, 28, tzinfo=UTC)
IDENTITY = Identity("Harbour Weekly", "Harbour Weekly <news@example.org>",
                    site_url="https://news.example.org")


def stamped(envelope: Envelope) -> Envelope:
    """A wrapper, as a DKIM signer would be one: a header over the final bytes."""
    header = f"X-Wrapped-For: {envelope.recipient}\r\n".encode()
    return Envelope(envelope.sender, envelope.recipient, envelope.message_id,
                    header + envelope.data)


def request(tmp_path: Path, transport: str) -> SendRequest:
    shutil.copytree(FIXTURES / "articles", tmp_path / "articles")
    return SendRequest(Source(tmp_path / "articles"), IssueOptions(AS_OF),
                       RenderOptions(IDENTITY), (FIXTURES / "subscribers.csv",),
                       make_transport(transport), state=tmp_path / "state",
                       wrappers=(stamped,))


def test_a_wrapper_sees_every_message_and_the_transport_sends_what_it_returns(
    tmp_path: Path, smtp_server: FaultyServer
) -> None:
    report = send(request(tmp_path, f"smtp://{smtp_server.host}:{smtp_server.port}"),
                  now=AS_OF, warn=print)
    assert report.counts == {"sent": 5}
    for message in smtp_server.received:
        (rcpt,) = message.rcpt_tos
        assert message.data.startswith(f"X-Wrapped-For: {rcpt}\r\nFrom: ".encode())


def test_the_maildir_transport_writes_the_wrapped_message(tmp_path: Path) -> None:
    report = send(request(tmp_path, f"maildir:{tmp_path / 'outbox'}"), now=AS_OF, warn=print)
    assert report.counts == {"sent": 5}
    files = list((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 5
    # After the Return-Path line that the Maildir transport writes, as a delivery agent does.
    heads = [f.read_bytes().split(b"\n", 2) for f in files]
    assert all(h[0].startswith(b"Return-Path: <") for h in heads)
    assert all(h[1].startswith(b"X-Wrapped-For: ") for h in heads)


class Numbered(Links):
    """Tokens of another shape, to show the builder takes every link from here."""

    def tokens(self, rid: str) -> tuple[str, str]:
        return f"u-{rid}", f"p-{rid}"


def _parts(message: Message) -> dict[str, str]:
    parts = {}
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts[part.get_content_type()] = payload.decode()
    return parts


def test_every_link_comes_from_the_link_module(sample_digest: Digest) -> None:
    rendered = render_digest(make_environment(None), sample_digest)
    template = MessageTemplate(rendered, identity=IDENTITY, campaign="c", sent_at=AS_OF,
                               links=Numbered(IDENTITY.site_url, IDENTITY.address))
    envelope = template.personalize(Subscriber("ann+news@example.org", "Ann"), "rid42")
    message = message_from_bytes(envelope.data)
    assert message["List-Unsubscribe"] == (
        "<https://news.example.org/unsubscribe/u-rid42>,\r\n"
        " <mailto:news@example.org?subject=unsubscribe%20u-rid42>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    parts = _parts(message)
    assert "https://news.example.org/unsubscribe/u-rid42" in parts["text/plain"]
    assert 'href="https://news.example.org/unsubscribe/u-rid42"' in parts["text/html"]
    assert "ann" not in message["List-Unsubscribe"]
