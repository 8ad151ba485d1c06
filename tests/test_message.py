"""Tests for digest.email.message: per-recipient MIME messages in wire form."""

from __future__ import annotations

import difflib
import html
import os
import quopri
import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from digest.content.compose import Digest, compose
from digest.email.message import Identity, MessageTemplate, message_id
from digest.email.render import Rendered, make_environment, render_digest, token
from digest.email.signing import Key, Signer
from digest.errors import ConfigError, HeaderError, TemplateError
from digest.model import Article, Block, Subscriber, Tag
from tests.conftest import build_digest
from tests.helpers import folded_headers, head_and_body, parse, phrase_and_address

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("DIGEST_UPDATE_GOLDEN") == "1"

IDENTITY = Identity(
    name="Harbour Weekly",
    sender="Harbour Weekly <news@example.org>",
    reply_to="Newsroom <newsroom@example.org>",
    site_url="https://news.example.org",
)
CAMPAIGN = "2026-W48-subscribers-all"
SENT_AT = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)

SIGNER = Signer([Key.of("k" * 40)], "harbour-weekly.example.org")
ZOE = Subscriber("zoe@example.org", "Zoë Traoré")
BOB = Subscriber("bob@example.org", "<b>Bob</b> & co")
NAMELESS = Subscriber("anon@example.org")

HEADERS = {
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
}
PART_HEADERS = {"Content-Type", "Content-Transfer-Encoding"}


# --- helpers -----------------------------------------------------------------------


def parts(message):
    """The decoded (text, html) of a multipart/alternative message."""
    text, html_part = message.get_payload()
    return tuple(p.get_content().replace("\r\n", "\n") for p in (text, html_part))


def header_names(head):
    """The field names of a raw header block, in order, folded lines skipped."""
    return [
        line.split(b":", 1)[0].decode("ascii")
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]


def wire_part(data, subtype):
    """The still-encoded body bytes of the text/``subtype`` part."""
    match = re.search(
        rb"Content-Type: text/" + subtype.encode() + rb"; charset=\"utf-8\"\r\n"
        rb"Content-Transfer-Encoding: quoted-printable\r\n\r\n(.*?)\r\n--=_digest_",
        data,
        re.DOTALL,
    )
    assert match, subtype
    return match.group(1)


def assert_wire_form(data):
    """CRLF only, SMTP-safe lines, 7-bit, quoted-printable lines within 76 octets."""
    assert b"\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n"), "bare LF"
    assert data.count(b"\r") == data.count(b"\r\n"), "bare CR"
    assert data.endswith(b"\r\n")
    assert max(data) < 128, "8-bit data"
    lines = data.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert not [line for line in lines if line.startswith(b".")], "line would need dot-stuffing"
    _, body = head_and_body(data)
    long_lines = [line for line in body.split(b"\r\n") if len(line) > 76]
    assert not long_lines


def assert_no_defects(message):
    assert not message.defects
    for part in message.walk():
        assert not part.defects, part.get_content_type()


def build_template(articles, *, identity=IDENTITY, campaign=CAMPAIGN, sent_at=SENT_AT,
                   signer=None):
    frame = Digest("Harbour Weekly", datetime(2026, 11, 28, tzinfo=UTC),
                   site_url=identity.site_url)
    digest = compose(articles, frame, 40)
    rendered = render_digest(make_environment(), digest)
    return MessageTemplate(rendered, identity=identity, campaign=campaign, sent_at=sent_at,
                           signer=signer)


def raw_template(text, html_text="<p>x</p>", *, subject="Subject", identity=IDENTITY):
    """A template straight from rendered output, bypassing Jinja and premailer."""
    rendered = Rendered(subject=subject, html=html_text, text=text)
    return MessageTemplate(rendered, identity=identity, campaign=CAMPAIGN, sent_at=SENT_AT)


@pytest.fixture(scope="module")
def rendered(sample_articles):
    """The sample digest of a newsletter with a site, as IDENTITY has."""
    digest = build_digest(sample_articles, site_url=IDENTITY.site_url)
    return render_digest(make_environment(), digest)


@pytest.fixture(scope="module")
def rendered_without_site(sample_digest):
    return render_digest(make_environment(), sample_digest)


@pytest.fixture(scope="module")
def template(rendered):
    return MessageTemplate(rendered, identity=IDENTITY, campaign=CAMPAIGN, sent_at=SENT_AT,
                           signer=SIGNER)


def links(rid):
    """The unsubscribe URL, preferences URL and mailto a recipient's message carries."""
    unsubscribe, preferences = SIGNER.tokens(rid)
    return (f"https://news.example.org/unsubscribe/{unsubscribe}",
            f"https://news.example.org/preferences/{preferences}",
            f"mailto:news@example.org?subject=unsubscribe%20{unsubscribe}")


# --- structure -----------------------------------------------------------------------

SUBSCRIBERS = [
    ZOE,
    BOB,
    NAMELESS,
    Subscriber("plain@example.org", "Plain Name"),
    Subscriber("quote@example.org", 'Anne "Nan" O\'Hara, PhD'),
    Subscriber("dot@example.org", ".Dot at the start"),
    Subscriber("long.address.for.testing.purposes@subdomain.example.org", "Ærøskøbing " * 9),
    Subscriber("cjk@example.org", "山田太郎"),
]


@pytest.mark.parametrize("subscriber", SUBSCRIBERS, ids=lambda s: s.email)
def test_message_parses_as_multipart_alternative(template, sample_articles, subscriber):
    data = template.personalize(subscriber).data
    message = parse(data)
    assert_no_defects(message)
    assert message.get_content_type() == "multipart/alternative"
    text, html_part = message.get_payload()
    assert [text.get_content_type(), html_part.get_content_type()] == ["text/plain", "text/html"]
    for part in (text, html_part):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert set(part.keys()) == PART_HEADERS
    plain, markup = parts(message)
    for article in sample_articles:
        assert article.title in plain
        assert article.title in html.unescape(markup)


@pytest.mark.parametrize("subscriber", SUBSCRIBERS, ids=lambda s: s.email)
def test_message_is_in_wire_form(template, subscriber):
    assert_wire_form(template.personalize(subscriber).data)


@pytest.mark.parametrize("subscriber", SUBSCRIBERS, ids=lambda s: s.email)
def test_message_headers(template, rendered, subscriber):
    envelope = template.personalize(subscriber)
    head, _ = head_and_body(envelope.data)
    names = header_names(head)
    assert set(names) == HEADERS
    assert len(names) == len(HEADERS), "a header appears twice"
    message = parse(envelope.data)
    assert message["From"] == IDENTITY.sender
    assert message["Reply-To"] == IDENTITY.reply_to
    assert message["Subject"] == rendered.subject
    assert parsedate_to_datetime(message["Date"]) == SENT_AT
    assert message["Message-ID"] == envelope.message_id
    assert message["List-Id"] == "Harbour Weekly <harbour-weekly.example.org>"
    assert message["MIME-Version"] == "1.0"
    (to,) = message["To"].addresses
    assert to.addr_spec == subscriber.email
    assert phrase_and_address(head, "To")[1:] == (subscriber.name, subscriber.email)


def test_envelope_addresses(template):
    envelope = template.personalize(ZOE)
    assert envelope.sender == "news@example.org"
    assert envelope.recipient == "zoe@example.org"


def test_content_headers_are_folded_to_78(template):
    """The headers carrying content are folded by digest.headers. (The other
    per-recipient ones and Content-Type are written as one line each, within 998.)"""
    head, _ = head_and_body(template.personalize(ZOE).data)
    folded = {"From", "Reply-To", "Subject", "Date", "List-Id"}
    fields = dict(folded_headers(head))
    assert set(fields) >= folded
    for name in folded:
        assert max(len(line) for line in fields[name]) <= 78, name


def test_long_subject_is_folded_and_round_trips(make_article):
    title = "Énergie : la mairie de Saint-Étienne vote le budget climat de l'année prochaine"
    template = build_template([make_article(title)])
    data = template.personalize(ZOE).data
    head, _ = head_and_body(data)
    (subject,) = [lines for name, lines in folded_headers(head) if name == "Subject"]
    assert len(subject) > 1
    assert max(len(line) for line in subject) <= 78
    assert parse(data)["Subject"] == title


# --- personalisation ----------------------------------------------------------------------


def test_greeting_email_and_unsubscribe_in_both_parts(template):
    plain, markup = parts(parse(template.personalize(ZOE, "r7Kq2mXw0001").data))
    unsubscribe, preferences, _ = links("r7Kq2mXw0001")
    assert plain.startswith("HARBOUR WEEKLY\nNovember 28, 2026\n\nHi Zoë Traoré,\n")
    assert "You receive Harbour Weekly as zoe@example.org because you subscribed.\n" in plain
    assert f"Unsubscribe: {unsubscribe}\n" in plain
    assert f"Manage your preferences: {preferences}\n" in plain
    assert re.search(r'<td class="greeting"[^>]*>Hi Zoë Traoré,</td>', markup)
    assert "You receive Harbour Weekly as zoe@example.org because you subscribed." in markup
    assert f'<a href="{unsubscribe}"' in markup
    assert f'<a href="{preferences}"' in markup
    for part in (plain, markup):
        assert "\ue000" not in part and "\ue001" not in part
        assert "zoe%40" not in part and "zoe@example.org/" not in part


def test_list_unsubscribe_headers_offer_one_click_and_mailto(template):
    message = parse(template.personalize(ZOE, "r7Kq2mXw0001").data)
    unsubscribe, _, mailto = links("r7Kq2mXw0001")
    assert message["List-Unsubscribe"] == f"<{unsubscribe}>, <{mailto}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "zoe" not in message["List-Unsubscribe"]


def test_unsubscribe_falls_back_to_mailto_without_site_url(rendered_without_site):
    identity = Identity("Harbour Weekly", "Harbour Weekly <news@example.org>")
    template = MessageTemplate(rendered_without_site, identity=identity, campaign=CAMPAIGN,
                               sent_at=SENT_AT, signer=SIGNER)
    message = parse(template.personalize(ZOE, "r7Kq2mXw0001").data)
    mailto = links("r7Kq2mXw0001")[2]
    assert message["List-Unsubscribe"] == f"<{mailto}>"
    assert message["List-Unsubscribe-Post"] is None
    plain, markup = parts(message)
    assert f"Unsubscribe: {mailto}\n" in plain
    assert f'<a href="{mailto}"' in markup
    assert "preferences" not in plain
    assert message["Reply-To"] is None


def test_without_a_key_links_are_marked_placeholders(rendered):
    template = MessageTemplate(rendered, identity=IDENTITY, campaign=CAMPAIGN, sent_at=SENT_AT)
    message = parse(template.personalize(ZOE).data)
    assert message["List-Unsubscribe"] == (
        "<https://news.example.org/unsubscribe/PLACEHOLDER-no-secret-set>, "
        "<mailto:news@example.org?subject=unsubscribe%20PLACEHOLDER-no-secret-set>")


def test_nameless_subscriber_gets_a_generic_greeting(template):
    message = parse(template.personalize(NAMELESS).data)
    plain, markup = parts(message)
    assert plain.startswith("HARBOUR WEEKLY\nNovember 28, 2026\n\nHi there,\n")
    assert ">Hi there,</td>" in markup
    assert message["To"] == "anon@example.org"


def test_html_in_a_name_is_escaped_in_html_and_raw_in_text(template):
    message = parse(template.personalize(BOB).data)
    plain, markup = parts(message)
    assert plain.startswith("HARBOUR WEEKLY\nNovember 28, 2026\n\nHi <b>Bob</b> & co,\n")
    assert ">Hi &lt;b&gt;Bob&lt;/b&gt; &amp; co,</td>" in markup
    assert "<b>Bob</b>" not in markup
    assert message["To"].addresses[0].display_name == "<b>Bob</b> & co"


def test_non_ascii_name_round_trips_in_to(template):
    data = template.personalize(ZOE).data
    head, _ = head_and_body(data)
    to_line = next(line for line in head.split(b"\r\n") if line.startswith(b"To:"))
    assert b"=?utf-8?" in to_line  # RFC 2047 encoded, so the header stays ASCII
    (address,) = parse(data)["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Zoë Traoré", "zoe@example.org")


def test_subscribers_do_not_leak_into_each_other(template):
    first = template.personalize(ZOE).data
    second = template.personalize(BOB).data
    assert b"zoe" not in second
    assert b"bob" not in first
    # And the template is not changed by use: the first message comes out the same again.
    assert template.personalize(ZOE).data == first


# --- quoted-printable around placeholders -----------------------------------------------

TRICKY_NAMES = [
    "",
    "Zoë Traoré",
    ".starts with a dot",
    "ends with a space ",
    "x" * 90,
    "é" * 40,
    "a=b & <c>",
    "trailing dot.",
]


def expected_fill(text, subscriber, *, escape):
    greeting = f"Hi {subscriber.name}," if subscriber.name else "Hi there,"
    values = {"greeting": greeting, "name": subscriber.name, "email": subscriber.email}
    for field, value in values.items():
        text = text.replace(token(field), html.escape(value) if escape else value)
    return text


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_placeholders_at_every_column_decode_exactly(name):
    """Each placeholder at columns 0..80, next to dots, spaces, line ends and
    other placeholders: the decoded parts equal plain substitution, and the
    wire form keeps every rule."""
    subscriber = Subscriber("reader@example.org", name)
    for column in range(81):
        pad = "p" * column
        text = (
            f"{pad}{token('name')}\n"
            f"{pad}{token('name')}.\n"
            f"{pad} {token('greeting')} \n"
            f"{token('name')}{token('email')}\n"
            f".{pad}{token('name')}.{token('name')}.\n"
            f"{pad}\t{token('name')}\t\n"
            f"{token('email')}"
        )
        template = raw_template(text, "<p>" + text + "</p>")
        data = template.personalize(subscriber).data
        assert_wire_form(data)
        plain, markup = parts(parse(data))
        assert plain == expected_fill(text, subscriber, escape=False), column
        assert markup == expected_fill("<p>" + text + "</p>", subscriber, escape=True), column


@pytest.mark.parametrize(
    "static",
    [
        "." * 200,
        "a" * 75 + "\n" + "." * 100,
        ("." + "b" * 74 + "\n") * 3,
        ("." + "b" * 75 + "\n") * 3,
        "line with trailing space \nand tab\t\n",
        "= signs == everywhere =\n",
        "\n.\n..\n. \n",
    ],
    ids=["dots", "dot-after-full-line", "dot-75", "dot-76", "trailing-ws", "equals", "dot-lines"],
)
def test_static_text_round_trips_with_short_lines(static):
    text = f"{static}{token('name')}{static}"
    data = raw_template(text).personalize(ZOE).data
    assert_wire_form(data)
    plain, _ = parts(parse(data))
    assert plain == static + "Zoë Traoré" + static


@pytest.mark.parametrize("line_end", ["\r\n", "\r", "\n"])
def test_line_ends_in_content_become_crlf(line_end):
    text = f"one{line_end}.two{line_end}three {token('name')}"
    data = raw_template(text).personalize(ZOE).data
    assert_wire_form(data)
    plain, _ = parts(parse(data))
    assert plain == "one\n.two\nthree Zoë Traoré"


def test_unknown_placeholder_is_a_template_error():
    with pytest.raises(TemplateError, match="password"):
        raw_template(f"Your password: {token('password')}")


def test_placeholder_in_subject_is_a_template_error():
    """The subject is shared by every recipient; a token there would be sent as-is."""
    with pytest.raises(TemplateError, match="subject"):
        raw_template("body", subject=f"News for {token('name')}")


# --- Message-ID ------------------------------------------------------------------------------


def test_message_id_is_deterministic_per_campaign_and_recipient(rendered, template):
    again = MessageTemplate(
        rendered, identity=IDENTITY, campaign=CAMPAIGN, sent_at=SENT_AT + timedelta(days=1)
    )
    assert again.personalize(ZOE).message_id == template.personalize(ZOE).message_id


def test_message_id_ignores_email_case(template):
    upper = Subscriber("Zoe@Example.ORG", "Zoë Traoré")
    assert template.personalize(upper).message_id == template.personalize(ZOE).message_id


def test_message_id_differs_across_recipients_and_campaigns(rendered, template):
    other_campaign = MessageTemplate(
        rendered, identity=IDENTITY, campaign="2026-W49-subscribers-all", sent_at=SENT_AT
    )
    ids = {
        template.personalize(ZOE).message_id,
        template.personalize(BOB).message_id,
        other_campaign.personalize(ZOE).message_id,
        other_campaign.personalize(BOB).message_id,
    }
    assert len(ids) == 4


def test_message_id_form():
    value = message_id(CAMPAIGN, "zoe@example.org", "example.org")
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.org>", value)
    # The separator keeps ("a", "bc") and ("ab", "c") apart.
    assert message_id("a", "bc@x", "x") != message_id("ab", "c@x", "x")


# --- header injection --------------------------------------------------------------------------

INJECTIONS = [
    "Harbour news\r\nBcc: evil@example.com",
    "Harbour news\nBcc: evil@example.com",
    "Harbour news\rBcc: evil@example.com",
    "Harbour news\r\n\r\nBcc: evil@example.com",
    "Harbour news\r\n Bcc: evil@example.com",
]


@pytest.mark.parametrize("title", INJECTIONS, ids=repr)
def test_line_breaks_in_a_title_produce_no_header(title):
    article = Article(
        title=title,
        author="Amina Traoré",
        date=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        tags=(Tag.of("Local"),),
        source=Path("articles/injected.md"),
        body=(Block("paragraph", "A paragraph.\r\nBcc: other@example.com"),),
        url="https://news.example.org/a",
    )
    data = build_template([article]).personalize(ZOE).data
    assert_wire_form(data)
    head, _ = head_and_body(data)
    assert set(header_names(head)) == HEADERS
    assert not re.search(rb"(?im)^bcc:", head)
    message = parse(data)
    assert_no_defects(message)
    assert message["Bcc"] is None
    for part in message.get_payload():
        assert set(part.keys()) == PART_HEADERS
    # The words are still there, harmlessly, in the subject line.
    assert message["Subject"].endswith("Harbour news Bcc: evil@example.com")


@pytest.mark.parametrize(
    "subscriber",
    [
        Subscriber("eve@example.org", "Eve\r\nBcc: evil@example.com"),
        Subscriber("eve@example.org", "Eve\nBcc: evil@example.com"),
        Subscriber("eve@example.org\r\nBcc: evil@example.com", "Eve"),
        Subscriber("eve@example.org", "Eve\x00"),
    ],
    ids=["name-crlf", "name-lf", "email-crlf", "name-nul"],
)
def test_line_breaks_in_a_recipient_are_refused(template, subscriber):
    with pytest.raises(HeaderError):
        template.personalize(subscriber)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("sender", "Harbour <news@example.org>\r\nBcc: evil@example.com", ConfigError),
        ("sender", "Harbour\r\n <news@example.org>", ConfigError),
        ("sender", "news@example.org\nBcc: evil@example.com", ConfigError),
        ("name", "Harbour\r\nBcc: evil@example.com", HeaderError),
        ("reply_to", "desk@example.org\r\nBcc: evil@example.com", HeaderError),
        ("site_url", "https://news.example.org\r\nBcc: evil@example.com", ConfigError),
    ],
)
def test_line_breaks_in_the_identity_are_refused(rendered, field, value, error):
    fields = {
        "name": IDENTITY.name,
        "sender": IDENTITY.sender,
        "reply_to": IDENTITY.reply_to,
        "site_url": IDENTITY.site_url,
    }
    identity = Identity(**{**fields, field: value})
    with pytest.raises(error):
        MessageTemplate(rendered, identity=identity, campaign=CAMPAIGN, sent_at=SENT_AT)


def test_from_that_is_not_an_address_is_refused(rendered):
    identity = Identity("Harbour Weekly", "Harbour Weekly")
    with pytest.raises(ConfigError, match="--from"):
        MessageTemplate(rendered, identity=identity, campaign=CAMPAIGN, sent_at=SENT_AT)


# --- reproducibility --------------------------------------------------------------------------


def test_same_digest_twice_differs_only_in_date(sample_articles):
    later = SENT_AT + timedelta(hours=3, minutes=17)
    first = build_template(list(sample_articles), sent_at=SENT_AT).personalize(ZOE).data
    second = build_template(list(sample_articles), sent_at=later).personalize(ZOE).data
    diff = [
        (a, b) for a, b in zip(first.split(b"\r\n"), second.split(b"\r\n"), strict=True) if a != b
    ]
    assert diff == [
        (b"Date: Sat, 28 Nov 2026 08:00:00 +0000", b"Date: Sat, 28 Nov 2026 11:17:00 +0000")
    ]


def test_date_header_keeps_the_offset_of_sent_at(sample_articles):
    sent_at = datetime(2026, 11, 28, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    message = parse(build_template(list(sample_articles), sent_at=sent_at).personalize(ZOE).data)
    assert message["Date"] == "Sat, 28 Nov 2026 09:00:00 +0100"


# --- golden email -------------------------------------------------------------------------------

GOLDEN_ARTICLES = [
    Article(
        title="Harbour wall approved after Q&A night",
        author="Amina Traoré",
        date=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        tags=(Tag.of("Local Government"), Tag.of("Climate")),
        source=Path("articles/harbour-wall.md"),
        body=(
            Block(
                "paragraph",
                "The council approved the new harbour wall on Wednesday "
                "after a three-hour public meeting. Work starts in March.",
            ),
            Block("heading", "What it costs"),
            Block(
                "paragraph",
                "The wall costs 14 million euros, most of it from the regional climate fund.",
            ),
        ),
        url="https://news.example.org/2026/11/harbour-wall?ref=digest&week=48",
        section="Local",
        author_bio="Amina covers the council, the coast and everything in between.",
    ),
    Article(
        title="Ferry timetable: fewer evening sailings",
        author="Bo Lindqvist",
        date=datetime(2026, 11, 25, 7, 0, tzinfo=timezone(timedelta(hours=1))),
        tags=(Tag.of("Transport"),),
        source=Path("articles/ferry.md"),
        summary="Winter sailings start on 1 December. The last crossing leaves at 19:40, "
        "an hour earlier than in summer.",
    ),
    Article(
        title="Reading <code> at the library",
        author="Amina Traoré",
        date=datetime(2026, 11, 23, 16, 45, tzinfo=UTC),
        tags=(Tag.of("Culture"),),
        source=Path("articles/library.md"),
        body=(
            Block(
                "paragraph", "A coding club for teenagers opens at the library. Sessions are free."
            ),
        ),
    ),
]
GOLDEN_IDENTITY = Identity(
    name="Harbour Weekly",
    sender="Harbour Weekly <news@example.org>",
    reply_to="Newsroom <newsroom@example.org>",
    site_url="https://news.example.org",
)
GOLDEN_SUBSCRIBER = Subscriber("zoe@example.org", "Zoë Traoré")


def check_golden(name, data):
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return
    assert path.is_file(), f"{path} is missing; run with DIGEST_UPDATE_GOLDEN=1 to create it"
    assert data == path.read_bytes(), f"{name} changed; if intended, DIGEST_UPDATE_GOLDEN=1"


def test_golden_email():
    template = build_template(
        GOLDEN_ARTICLES,
        identity=GOLDEN_IDENTITY,
        campaign="2026-W48-golden-all",
        sent_at=datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
        signer=SIGNER,
    )
    data = template.personalize(GOLDEN_SUBSCRIBER, "g0LdEn4Rid01").data
    _, markup = parts(parse(data))
    # The decoded HTML first: a change there gives the more readable diff.
    check_golden("digest.html", markup.encode("utf-8"))
    check_golden("digest.eml", data)
    if UPDATE_GOLDEN:
        pytest.skip(f"wrote the golden files in {GOLDEN}")


def test_golden_email_is_in_wire_form():
    path = GOLDEN / "digest.eml"
    if not path.is_file():
        pytest.skip("no golden file yet")
    data = path.read_bytes()
    assert_wire_form(data)
    assert_no_defects(parse(data))


# --- the speed seam: static parts built once, values slotted in ----------------------------------


def personal_blocks(first, second):
    """The decoded line blocks where two wire-form parts differ, for each side."""
    a, b = first.split(b"\r\n"), second.split(b"\r\n")
    blocks_a, blocks_b = [], []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            continue
        blocks_a.append(quopri.decodestring(b"\r\n".join(a[a1:a2])).decode("utf-8"))
        blocks_b.append(quopri.decodestring(b"\r\n".join(b[b1:b2])).decode("utf-8"))
    return blocks_a, blocks_b


def test_recipients_share_every_line_except_their_own_values(template):
    ann = Subscriber("ann@example.org", "Ann Lee")
    bart = Subscriber(
        "bartholomew.featherstonehaugh@example.org",
        "Bartholomew Q. Featherstonehaugh-Longname & Sons",
    )
    data_a = template.personalize(ann, "a1b2c3d4e5f6").data
    data_b = template.personalize(bart, "f6e5d4c3b2a1").data

    # The footer lists the preferences link before the unsubscribe link.
    values_a = ["Hi Ann Lee,", "ann@example.org", *links("a1b2c3d4e5f6")[1::-1]]
    values_b = [
        "Hi Bartholomew Q. Featherstonehaugh-Longname & Sons",
        "bartholomew.featherstonehaugh@example.org",
        *links("f6e5d4c3b2a1")[1::-1],
    ]
    values_b[0] += ","
    text_a, text_b = personal_blocks(wire_part(data_a, "plain"), wire_part(data_b, "plain"))
    assert (text_a, text_b) == (values_a, values_b)
    html_a, html_b = personal_blocks(wire_part(data_a, "html"), wire_part(data_b, "html"))
    assert (html_a, html_b) == (
        [html.escape(v) for v in values_a],
        [html.escape(v) for v in values_b],
    )


def test_a_thousand_recipients(template):
    subscribers = [Subscriber(f"reader{i:04d}@example.org", f"Reader {i}") for i in range(1000)]
    envelopes = [template.personalize(s) for s in subscribers]
    assert len({e.message_id for e in envelopes}) == 1000
    assert [e.recipient for e in envelopes] == [s.email for s in subscribers]
    assert len({e.data for e in envelopes}) == 1000
    # Spot-check that each message carries its own ID and recipient.
    for envelope in envelopes[::250]:
        message = parse(envelope.data)
        assert message["Message-ID"] == envelope.message_id
        assert message["To"].addresses[0].addr_spec == envelope.recipient


def test_recipient_values_of_any_length_encode_to_wire_safe_qp() -> None:
    """Long plain values (addresses, unsubscribe links) take a fast path that
    wraps by hand: every line fits, none starts with a dot, and it decodes back."""
    import quopri
    import random
    import string

    from digest.email.message import _qp_value

    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "=.-_/?&%@ ~é"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 240))).strip()
        if not text:
            continue
        encoded = _qp_value(text)
        assert encoded.endswith(b"=\r\n")
        lines = encoded.split(b"\r\n")
        assert all(len(line) <= 76 for line in lines)
        assert not any(line.startswith(b".") for line in lines)
        assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")).decode("utf-8") == text


@pytest.mark.parametrize("name", [
    "Zoë Traoré",
    "Zoë Traoré-Ångström Zoë Traoré-Ångström Zoë Traoré-Ångström Zoë Traoré-Ångström",
])
def test_long_non_ascii_names_fold_into_short_encoded_words(name: str) -> None:
    from digest.email.headers import to_field

    header = to_field(name, "z@example.org").encode()
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert phrase_and_address(header.rstrip(b"\r\n"), "To")[1:] == (name, "z@example.org")
