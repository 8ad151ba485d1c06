"""Signed link tokens (digest/email/signing.py) and the keys behind them."""

from __future__ import annotations

import base64
import hmac
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from digest.email.signing import Key, Signer, parse_keys
from digest.errors import ConfigError
from tests.helpers import TEST_SECRET, run

LIST = "harbour-weekly.example.org"
OLD, NEW = "o" * 32 + "-old-key", "n" * 32 + "-new-key"


def reference(key: str, rid: str) -> tuple[str, str]:
    """The tags as RFC 2104 defines HMAC, through the standard library's own."""
    mac = hmac.digest(key.encode(), f"{LIST}\n{rid}".encode(), "sha256")
    tags = base64.urlsafe_b64encode(mac[:30]).decode()
    return tags[:20], tags[20:]


@pytest.mark.parametrize("key", ["k" * 32, "k" * 64, "k" * 65, "ключ-" * 20])
def test_tokens_are_hmac_sha256_over_the_list_and_the_recipient(key: str) -> None:
    signer = Signer([Key.of(key)], LIST)
    unsubscribe, preferences = signer.tokens("3f9c1a0b5e7d2c4a81")
    kid = Key.of(key).kid
    assert (unsubscribe, preferences) == tuple(
        f"3f9c1a0b5e7d2c4a81.{kid}.{tag}" for tag in reference(key, "3f9c1a0b5e7d2c4a81"))


def test_a_genuine_token_verifies_for_its_purpose_only() -> None:
    signer = Signer([Key.of(NEW)], LIST)
    unsubscribe, preferences = signer.tokens("abcdef012345")
    assert signer.verify(unsubscribe, "unsubscribe") == "abcdef012345"
    assert signer.verify(preferences, "preferences") == "abcdef012345"
    assert signer.verify(unsubscribe, "preferences") is None
    assert signer.verify(preferences, "unsubscribe") is None


def forgeries(token: str) -> list[str]:
    rid, kid, tag = token.split(".")
    flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    return [
        f"{rid}.{kid}.{flipped}",          # a changed signature
        f"{rid[:-1]}x.{kid}.{tag}",        # another recipient
        token[:-1],                        # truncated
        f"{rid}.{kid}",                    # no signature
        f"{rid}.000000.{tag}",             # an unknown key
        "",
        token + "A",
        token.replace(".", "/"),
    ]


def test_forged_truncated_and_other_list_tokens_are_refused() -> None:
    signer = Signer([Key.of(NEW)], LIST)
    unsubscribe, _ = signer.tokens("abcdef012345")
    for forged in forgeries(unsubscribe):
        assert signer.verify(forged, "unsubscribe") is None, forged
    other_list = Signer([Key.of(NEW)], "other-list.example.org").tokens("abcdef012345")[0]
    assert signer.verify(other_list, "unsubscribe") is None


def test_rotation_the_newest_signs_and_every_key_verifies() -> None:
    before = Signer([Key.of(OLD)], LIST)
    old_token = before.tokens("abcdef012345")[0]
    after = Signer(parse_keys(f"{NEW}\n{OLD}\n", "secret"), LIST)
    assert after.verify(old_token, "unsubscribe") == "abcdef012345"
    new_token = after.tokens("abcdef012345")[0]
    assert new_token.split(".")[1] == Key.of(NEW).kid
    assert before.verify(new_token, "unsubscribe") is None  # the old alone cannot check it


@pytest.mark.parametrize(("text", "message"), [
    ("", "DIGEST_SECRET: no key in it; make one with 'digest secret new' and set "
         "DIGEST_SECRET or secret-file"),
    ("# only a comment\n", "DIGEST_SECRET: no key in it; make one with 'digest secret new' "
                           "and set DIGEST_SECRET or secret-file"),
    ("hunter2", "DIGEST_SECRET: key 1 is not a key of at least 32 printable characters; make "
                "one with 'digest secret new' and set DIGEST_SECRET or secret-file"),
    (f"{NEW},{NEW}", "DIGEST_SECRET: the same key is given twice"),
])
def test_bad_keys_are_one_line_that_never_echoes_them(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keys(text, "DIGEST_SECRET")
    assert str(caught.value) == message
    assert "hunter2" not in str(caught.value)


def test_secret_new_prints_a_fresh_key(workdir: Path) -> None:
    first, second = run("secret", "new"), run("secret", "new")
    assert first[0] == 0 and re.fullmatch(r"[A-Za-z0-9_-]{43}\n", first[1])
    assert first[1] != second[1]
    parse_keys(first[1], "new")  # a key it prints is a key it accepts


def test_send_over_smtp_without_a_key_refuses_to_start(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    code, out, err = run("send", "--as-of", "2026-11-28", "--list", "subscribers.csv",
                         "--transport", "smtp://127.0.0.1:25")
    assert (code, out) == (1, "")
    assert err == ("Error: --transport: sending to a list needs a key to sign its unsubscribe "
                   "links; make one with 'digest secret new' and set DIGEST_SECRET or "
                   "secret-file\n")


def test_a_maildir_preview_without_a_key_has_marked_placeholder_links(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    code, _, err = run("send", "--as-of", "2026-11-28", "--list", "subscribers.csv",
                       "--site-url", "https://news.example.org")
    assert code == 0
    assert "warning: no link-signing key (DIGEST_SECRET or secret-file)" in err
    message = message_from_bytes(next((workdir / "outbox" / "new").iterdir()).read_bytes())
    assert message["List-Unsubscribe"].startswith(
        "<https://news.example.org/unsubscribe/PLACEHOLDER-no-secret-set>")


def test_a_sent_message_carries_verifiable_links_and_no_address(workdir: Path) -> None:
    code, _, _ = run("send", "--as-of", "2026-11-28", "--list", "subscribers.csv",
                     "--site-url", "https://news.example.org", "--name", "Harbour Weekly",
                     "--from", "Harbour Weekly <news@example.org>")
    assert code == 0
    signer = Signer(parse_keys(TEST_SECRET, "test"), LIST)
    for path in (workdir / "outbox" / "new").iterdir():
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        header = " ".join(message["List-Unsubscribe"].split())
        url, mailto = re.fullmatch(r"<(\S+)>, <(\S+)>", header).groups()  # type: ignore[union-attr]
        token = url.rsplit("/", 1)[1]
        assert url == f"https://news.example.org/unsubscribe/{token}"
        assert mailto == f"mailto:news@example.org?subject=unsubscribe%20{token}"
        assert signer.verify(token, "unsubscribe") is not None
        address = message["To"].addresses[0].addr_spec
        assert address.split("@")[0] not in header
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
