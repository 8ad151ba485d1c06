"""Tests for digest.email.headers: every header is valid and decodes to exactly what was meant.

Each message is built for real (MessageTemplate, then personalize) and read back
two ways: ``email.policy.default`` and RFC 2047's own rules through
``email.header.decode_header``. One CPython 3.11 quirk is allowed for, nothing
else: its modern parser keeps the whitespace between adjacent encoded-words
inside a display name (gh-128110), which RFC 2047 section 6.2 says to drop.
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.cli.main import cli
from digest.email.message import Envelope, Identity, MessageTemplate
from digest.email.render import Rendered, token
from digest.errors import ConfigError
from digest.model import Subscriber, clean_text, slugify
from tests.helpers import fields, head_of, phrase_and_address, rfc2047, unfolded

CAMPAIGN = "2026-W48-headers"
SENT_AT = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
SENDER = "news@example.org"
REPLY = "desk@example.org"
READER = "reader@example.org"
PLAIN_READER = Subscriber(READER, "Reader")
FOLDED = ("From", "Reply-To", "Subject", "List-Id", "To")

ENCODED_WORD = re.compile(rb"=\?([^?\s]*)\?([bBqQ])\?([^?\s]*)\?=")
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
EW = r"=\?utf-8\?[bq]\?[^?\s]+\?="
# What a display name may look like on the wire: atoms, one quoted string, or
# encoded-words only (so every space of the name rides inside them).
PHRASE = re.compile(rf'{ATOM}(?: {ATOM})*|"(?:[ !#-\[\]-~]|\\[ -~])*"|{EW}(?: {EW})*')


def quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build(subject: str, *, name: str = "Harbour Weekly", sender: str = f"News <{SENDER}>",
          reply_to: str | None = None, site_url: str | None = None,
          reader: Subscriber = PLAIN_READER) -> Envelope:
    rendered = Rendered(subject=subject, html=f"<p>{token('greeting')}</p>",
                        text=f"{token('greeting')}\n{token('unsubscribe_url')}\n")
    identity = Identity(name, sender, reply_to, site_url)
    template = MessageTemplate(rendered, identity=identity, campaign=CAMPAIGN, sent_at=SENT_AT)
    return template.personalize(reader)


def cpython_311_reading(phrase: str) -> str:
    """The display name CPython 3.11 reads from encoded-words: it keeps the space
    between them (gh-128110)."""
    words = ENCODED_WORD.findall(phrase.encode())
    return " ".join(rfc2047(f"=?{c.decode()}?{e.decode()}?{t.decode()}?=") for c, e, t in words)


def assert_encoded_words_valid(head: bytes) -> None:
    """No encoded-word is empty, longer than 75, or cut inside a UTF-8 sequence."""
    for match in ENCODED_WORD.finditer(head):
        charset, kind, text = match.groups()
        assert charset == b"utf-8"
        assert text, f"empty encoded-word {match[0]!r}"
        assert len(match[0]) <= 75, match[0]
        if kind in b"bB":
            payload = base64.b64decode(text, validate=True)
        else:
            payload = quopri.decodestring(text.replace(b"_", b" "), header=True)
            assert not re.search(rb"[^A-Za-z0-9!*+\-/=_]", text), "Q text unsafe in a phrase"
        payload.decode("utf-8")  # strict: a cut inside a character fails here


def assert_lines_fit(head: bytes) -> None:
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    for name in FOLDED:
        for index, line in enumerate(fields(head).get(name, [])):
            if len(line) > 78:  # only a single word too long to fold may overrun
                content = line.split(b": ", 1)[1] if index == 0 else line[1:]
                assert b" " not in content, line


def assert_mailbox(message: email.message.EmailMessage, head: bytes, name: str,
                   display: str, address: str) -> None:
    phrase, decoded, addr = phrase_and_address(head, name)
    assert (decoded, addr) == (display, address), name
    if display:
        assert PHRASE.fullmatch(phrase), phrase
    (parsed,) = message[name].addresses
    assert parsed.addr_spec == address
    assert parsed.display_name in (display, cpython_311_reading(phrase)), name


def check(envelope: Envelope, *, subject: str, name: str, sender_name: str,
          reply_name: str, reader: Subscriber) -> None:
    head = head_of(envelope.data)
    assert head.isascii() or not reader.email.isascii()
    assert_encoded_words_valid(head)
    assert_lines_fit(head)
    message = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert not message.defects
    for field in FOLDED:
        assert not message[field].defects, field
    assert message["Subject"] == subject
    assert rfc2047(unfolded(head, "Subject")) == subject
    assert_mailbox(message, head, "From", sender_name, SENDER)
    assert_mailbox(message, head, "Reply-To", reply_name, REPLY)
    assert_mailbox(message, head, "To", reader.name, reader.email)
    phrase, decoded, list_id = phrase_and_address(head, "List-Id")
    assert (decoded, list_id) == (name, f"{slugify(name) or 'digest'}.example.org")
    assert not name or PHRASE.fullmatch(phrase), phrase
    assert message["List-Id"] in {f"{name} <{list_id}>".lstrip(), f"{phrase} <{list_id}>".lstrip()}


# --- the property ---------------------------------------------------------------------

FRAGMENTS = [
    "=?", "?=", "=?utf-8?q?x?=", "\\", '"', "'", "‘The Salt Road’", "<b>", "(c)", ",", ";", ":",
    "山田太郎", "日本語の長いニュースレターの名前", "👩‍👩‍👧", "🇵🇹", "e\u0301", "\u0300\u0301",
    "שלום עולם", "مرحبا", "\u200f", "Émile Bérénice", "Ærøskøbing", "x" * 90, "Ü" * 60,
    "http://example.org/a?b=c", "_", "=", "?", "-", ".", " ", "  ",
]
pieces = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.text("abc XYZ.,", max_size=12),
)
texts = st.lists(pieces, max_size=25).map(lambda parts: clean_text("".join(parts))[:300].strip())


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(subject=texts, name=texts, sender_name=texts, reply_name=texts, reader_name=texts)
def test_every_header_decodes_to_exactly_its_input(
    subject: str, name: str, sender_name: str, reply_name: str, reader_name: str
) -> None:
    reader = Subscriber(READER, reader_name)
    envelope = build(subject, name=name, sender=f"{quoted(sender_name)} <{SENDER}>",
                     reply_to=f"{quoted(reply_name)} <{REPLY}>", reader=reader)
    check(envelope, subject=subject, name=name, sender_name=sender_name,
          reply_name=reply_name, reader=reader)


# --- regressions ------------------------------------------------------------------------

RIVERSIDE = ("The Riverside Ledger Weekly, November 30, 2026: Review: ‘The Salt Road’ at "
             "the Old Quay Theatre Is a Quiet Triumph")


def test_subject_that_the_email_package_folded_into_an_empty_encoded_word() -> None:
    head = head_of(build(RIVERSIDE).data)
    assert b"?q??=" not in head and b"?b??=" not in head
    assert_encoded_words_valid(head)
    assert all(len(line) <= 78 for line in fields(head)["Subject"])
    assert rfc2047(unfolded(head, "Subject")) == RIVERSIDE
    assert email.message_from_bytes(head + b"\r\n\r\n", policy=email.policy.default)[
        "Subject"] == RIVERSIDE


@pytest.mark.parametrize("field", ["To", "From"])
def test_long_accented_name_keeps_its_spaces_across_encoded_words(field: str) -> None:
    """Split between encoded-words, a space would be dropped by every RFC 2047
    reader: "ÉmileBérénice"."""
    long_name = " ".join(["Émile Bérénice"] * 6)
    envelope = (build("News", reader=Subscriber(READER, long_name)) if field == "To"
                else build("News", sender=f"{long_name} <{SENDER}>"))
    head = head_of(envelope.data)
    assert len(ENCODED_WORD.findall(b"".join(fields(head)[field]))) > 1
    assert phrase_and_address(head, field)[1:] == (long_name, READER if field == "To" else SENDER)
    assert_encoded_words_valid(head)


@pytest.mark.parametrize("field", ["To", "From"])
def test_cjk_name_is_cut_into_short_encoded_words(field: str) -> None:
    cjk = "山田太郎の週刊ニュースレター" * 4
    envelope = (build("News", reader=Subscriber(READER, cjk)) if field == "To"
                else build("News", sender=f"{cjk} <{SENDER}>"))
    head = head_of(envelope.data)
    lines = fields(head)[field]
    assert len(ENCODED_WORD.findall(b"".join(lines))) > 2
    assert_encoded_words_valid(head)
    assert all(len(line) <= 78 for line in lines)
    assert phrase_and_address(head, field)[1] == cjk


def test_ascii_display_names_with_specials_are_quoted() -> None:
    name = 'Anne "Nan" O\'Hara, PhD \\ Co'
    envelope = build("News", sender=f"{quoted(name)} <{SENDER}>",
                     reader=Subscriber(READER, name))
    head = head_of(envelope.data)
    wire = '"Anne \\"Nan\\" O\'Hara, PhD \\\\ Co"'
    assert unfolded(head, "From") == f"{wire} <{SENDER}>"
    assert unfolded(head, "To") == f"{wire} <{READER}>"


def test_list_id_keeps_the_identifier_plain_outside_the_encoded_words() -> None:
    name = "Le Café du Port : « nouvelles, idées & débats » (édition de Lisbonne)"
    head = head_of(build("News", name=name).data)
    ident = "le-cafe-du-port-nouvelles-idees-debats-edition-de-lisbonne.example.org"
    assert re.fullmatch(rf"{EW}(?: {EW})* <{re.escape(ident)}>", unfolded(head, "List-Id"))
    assert phrase_and_address(head, "List-Id")[1:] == (name, ident)
    assert_encoded_words_valid(head)


def test_an_idna_sender_domain_goes_out_as_punycode_everywhere() -> None:
    envelope = build("News", name="Bücher", sender="News <news@bücher.example>",
                     reply_to="Desk <desk@bücher.example>")
    head = head_of(envelope.data)
    assert head.isascii()
    assert unfolded(head, "From") == "News <news@xn--bcher-kva.example>"
    assert unfolded(head, "Reply-To") == "Desk <desk@xn--bcher-kva.example>"
    assert unfolded(head, "List-Id") == "=?utf-8?q?B=C3=BCcher?= <bucher.xn--bcher-kva.example>"
    assert envelope.message_id.endswith("@xn--bcher-kva.example>")
    assert unfolded(head, "Message-ID") == envelope.message_id
    assert envelope.sender == "news@xn--bcher-kva.example"
    assert unfolded(head, "List-Unsubscribe") == (
        "<mailto:news@xn--bcher-kva.example?subject=unsubscribe%20PLACEHOLDER-no-secret-set>"
    )


def test_an_idna_site_url_goes_out_as_punycode() -> None:
    envelope = build("News", site_url="https://bücher.example/über/")
    expected = "https://xn--bcher-kva.example/%C3%BCber/unsubscribe/PLACEHOLDER-no-secret-set"
    assert unfolded(head_of(envelope.data), "List-Unsubscribe").startswith(f"<{expected}>, ")
    assert expected in quopri.decodestring(envelope.data).decode("utf-8")


def test_a_recipient_keeps_a_utf8_local_part_raw_and_gets_an_idna_domain() -> None:
    reader = Subscriber("josé@bücher.example", "José Müller")
    envelope = build("News", reader=reader)
    head = head_of(envelope.data)
    (to,) = fields(head)["To"]
    assert to.endswith(" <josé@xn--bcher-kva.example>".encode())
    assert not re.search(rb"=\?[^ ]*@", to), "an encoded-word inside the address"
    assert head.replace(to, b"").isascii()
    # An RFC 6532 reader takes the header as UTF-8; BytesParser would not.
    message = email.message_from_string(envelope.data.decode("utf-8"),
                                        policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "josé@xn--bcher-kva.example"
    assert message["To"].addresses[0].display_name == "José Müller"
    assert envelope.recipient == "josé@bücher.example"


# --- refusals -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields_", "message"),
    [
        ({"sender": "José <josé@example.org>"},
         "--from: 'josé@example.org' has a non-ASCII local part, which needs SMTPUTF8 "
         "from every server on the way; use an ASCII address"),
        ({"reply_to": "Desk <dësk@example.org>"},
         "--reply-to: 'dësk@example.org' has a non-ASCII local part, which needs SMTPUTF8 "
         "from every server on the way; use an ASCII address"),
    ],
)
def test_non_ascii_local_part_in_the_identity_is_refused(
    fields_: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build("News", **fields_)
    assert str(caught.value) == message


def test_a_domain_idna_cannot_express_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        build("News", sender="News <news@café☕.example>")
    assert str(caught.value).startswith(
        "--from: 'news@café☕.example': 'café☕.example' is not a valid domain name ("
    )


@pytest.mark.parametrize("value", ["nobody", "a@", "<>", "@example.org"])
def test_reply_to_that_is_not_an_address_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build("News", reply_to=value)
    assert str(caught.value) == (
        f"--reply-to: reply-to address {value!r} is not an address; "
        "set it like 'Newsroom <newsroom@example.org>'"
    )


@pytest.mark.parametrize(
    "value",
    ["javascript:alert(1)", "ftp://x", "https://", "news.example.org", "https:///a", "http://[::1"],
)
def test_site_url_that_is_not_http_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build("News", site_url=value)
    assert str(caught.value) == (
        f"--site-url: {value!r} is not an http or https URL with a host; "
        "set it like 'https://news.example.org'"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--reply-to", "nobody",
         "Error: --reply-to: reply-to address 'nobody' is not an address; "
         "set it like 'Newsroom <newsroom@example.org>'"),
        ("--site-url", "javascript:alert(1)",
         "Error: --site-url: 'javascript:alert(1)' is not an http or https URL with a host; "
         "set it like 'https://news.example.org'"),
        ("--from", "José <josé@example.org>",
         "Error: --from: 'josé@example.org' has a non-ASCII local part, which needs "
         "SMTPUTF8 from every server on the way; use an ASCII address"),
    ],
)
def test_cli_refuses_bad_addresses_in_one_line(
    make_workdir: Callable[..., Path], flag: str, value: str, message: str
) -> None:
    make_workdir()
    result = CliRunner().invoke(cli, ["build", "--as-of", "2026-11-28", "--out", "build",
                                      flag, value])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in result.stderr


def test_cli_build_writes_an_idna_from(make_workdir: Callable[..., Path]) -> None:
    workdir = make_workdir()
    result = CliRunner().invoke(cli, ["build", "--as-of", "2026-11-28", "--out", "build",
                                      "--from", "Bücher News <news@bücher.example>"])
    assert result.exit_code == 0, result.stderr
    head = head_of((workdir / "build" / "sample.eml").read_bytes())
    assert head.isascii()
    assert unfolded(head, "From") == "=?utf-8?q?B=C3=BCcher_News?= <news@xn--bcher-kva.example>"
    assert unfolded(head, "Message-ID").endswith("@xn--bcher-kva.example>")

