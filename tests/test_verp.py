"""VERP: with --bounce-domain each message's envelope sender is a signed
bounces+TOKEN@DOMAIN that maps back, through the state, to the campaign and
the recipient. Real sends over SMTP (aiosmtpd) and into a Maildir."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digest.email.links import make_signer
from digest.email.message import Identity
from digest.email.signing import Signer, parse_keys
from digest.email.verp import decode_verp, verp_address
from digest.state.store import open_store
from tests.helpers import TEST_SECRET, TESTS, run_send, send
from tests.smtpd import FaultyServer

pytestmark = pytest.mark.workdir(TESTS / "fixtures" / "send" / "five.csv")
BOUNCES = ("--bounce-domain", "bounces.example.org")
VERP = re.compile(r"bounces\+[A-Za-z0-9_-]{8,39}\.[A-Za-z0-9_-]{16}@bounces\.example\.org")


def signer(name: str = "The Weekly Digest") -> Signer:
    """The link signer of the CLI's default newsletter, from the test key."""
    identity = Identity(name, "The Weekly Digest <digest@example.org>")
    return make_signer(parse_keys(TEST_SECRET, "test"), identity)


def test_each_smtp_envelope_sender_maps_back_to_its_recipient(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, _, err = send(smtp_server, *BOUNCES)
    assert code == 0, err
    assert len(smtp_server.received) == 5
    store = open_store(workdir / ".digest", readonly=True)
    try:
        for message in smtp_server.received:
            sender = message.mail_from
            assert VERP.fullmatch(sender) and len(sender.partition("@")[0]) <= 64
            rid = decode_verp(sender, signer())
            assert rid is not None
            reader = store.journal.reader(rid)
            assert reader is not None
            assert (reader.email, reader.campaign) == (message.rcpt_tos[0],
                                                       "2026-W48-five-all")
    finally:
        store.close()


def test_a_maildir_send_shows_the_verp_sender_as_return_path(workdir: Path) -> None:
    # With a site, the token is read from List-Unsubscribe's second (mailto) line.
    code, _, err = run_send("--transport", "maildir:outbox", *BOUNCES, "--site-url",
                            "https://news.example.org", lists="five.csv")
    assert code == 0, err
    files = list((workdir / "outbox" / "new").iterdir())
    assert len(files) == 5
    for path in files:
        first = path.read_bytes().split(b"\n", 1)[0].decode()
        assert re.fullmatch(rf"Return-Path: <{VERP.pattern}>", first)
        assert decode_verp(first.partition("<")[2].rstrip(">"), signer()) is not None


def test_without_a_bounce_domain_the_sender_is_the_from_address(workdir: Path) -> None:
    code, _, err = run_send("--transport", "maildir:outbox", lists="five.csv")
    assert code == 0, err
    for path in (workdir / "outbox" / "new").iterdir():
        assert path.read_bytes().startswith(b"Return-Path: <digest@example.org>\nFrom: ")


def test_only_a_genuine_token_decodes() -> None:
    address = verp_address(signer(), "abcdefghijkl", "bounces.example.org")
    assert decode_verp(address, signer()) == "abcdefghijkl"
    assert decode_verp(address.replace("bounces+", "Bounces+"), signer()) == "abcdefghijkl"
    local_upper = address.partition("@")[0].upper()
    assert decode_verp(local_upper + "@bounces.example.org", signer()) is None  # case counts
    assert decode_verp(f"<{address}>", signer()) == "abcdefghijkl"
    local, _, domain = address.partition("@")
    forged = local[:-1] + ("A" if local[-1] != "A" else "B") + "@" + domain
    assert decode_verp(forged, signer()) is None
    other_rid = local.replace("abcdefghijkl", "abcdefghijkm") + "@" + domain
    assert decode_verp(other_rid, signer()) is None
    assert decode_verp(address, signer("Another List")) is None
    assert decode_verp("digest@example.org", signer()) is None
    assert decode_verp("bounces+garbage@example.org", signer()) is None


@pytest.mark.parametrize(("args", "env", "expected"), [
    (("--bounce-domain", "bad domain"), None,
     "--bounce-domain: 'bad domain' is not a domain name like 'bounces.example.org'"),
    (BOUNCES, {"DIGEST_SECRET": ""},
     "--bounce-domain: VERP tokens are signed with the link key; set DIGEST_SECRET or "
     "secret-file, or leave --bounce-domain out"),
], ids=["bad-domain", "no-key"])
def test_a_bad_bounce_domain_is_one_line(
    workdir: Path, args: tuple[str, ...], env: dict[str, str] | None, expected: str
) -> None:
    code, out, err = run_send("--transport", "maildir:outbox", *args, lists="five.csv",
                              env=env)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == f"Error: {expected}"
    assert not (workdir / "outbox").exists()
