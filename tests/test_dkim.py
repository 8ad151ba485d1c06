"""DKIM signing: every message a real send delivers (over SMTP to aiosmtpd, and
into a Maildir) verifies with dkimpy, the reference implementation, against a
dict-backed DNS stub filled from `digest dkim keygen`'s own TXT records.
Keys are real files made by the real command."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from digest.email.dkim import DkimKey, DkimSigner, load_key, relaxed_body
from digest.email.message import Envelope
from tests.helpers import TESTS, run, run_send, send
from tests.smtpd import FaultyServer

pytestmark = pytest.mark.workdir(TESTS / "fixtures" / "send" / "five.csv")
SITE = ("--site-url", "https://news.example.org")


class Keys:
    """Two keys made by `digest dkim keygen`, and the DNS that publishes them."""

    def __init__(self, folder: Path) -> None:
        self.dns: dict[bytes, bytes] = {}
        self.rsa = self._keygen(folder, "rsa1", "rsa")
        self.ed = self._keygen(folder, "ed1", "ed25519")

    def _keygen(self, folder: Path, selector: str, kind: str) -> Path:
        out = folder / f"{selector}.pem"
        code, stdout, _ = run("dkim", "keygen", "--selector", selector, "--domain",
                              "example.org", "--type", kind, "--out", str(out))
        assert code == 0
        name, _, strings = stdout.strip().partition(" IN TXT ")
        assert name == f"{selector}._domainkey.example.org"
        self.dns[f"{name}.".encode()] = "".join(re.findall(r'"([^"]*)"', strings)).encode()
        return out

    def lookup(self, name: bytes, timeout: int = 5) -> bytes | None:
        return self.dns.get(name if name.endswith(b".") else name + b".")

    def verifies(self, data: bytes, index: int = 0) -> bool:
        try:
            return bool(dkim.DKIM(data).verify(idx=index, dnsfunc=self.lookup))
        except dkim.DKIMException:  # what dkim.verify turns into False
            return False


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("dkim-keys"))


def signature_tags(data: bytes, index: int = 0) -> dict[str, str]:
    fields = re.findall(rb"^DKIM-Signature:(.*?\r\n)(?! |\t)", data, re.M | re.S)
    value = re.sub(r"\s+", "", fields[index].decode())
    return dict(tag.split("=", 1) for tag in value.rstrip(";").split(";"))


def test_keygen_writes_a_private_key_only_its_owner_reads(workdir: Path, keys: Keys) -> None:
    assert stat.S_IMODE(keys.rsa.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.ed.stat().st_mode) == 0o600
    key = load_key(keys.rsa)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert keys.dns[b"rsa1._domainkey.example.org."].startswith(b"v=DKIM1; k=rsa; p=MIIB")
    assert keys.dns[b"ed1._domainkey.example.org."].startswith(b"v=DKIM1; k=ed25519; p=")


def test_keygen_never_overwrites_a_key(workdir: Path) -> None:
    Path("taken.pem").write_text("mine")
    code, out, err = run("dkim", "keygen", "--selector", "s", "--domain", "example.org",
                         "--out", "taken.pem")
    assert (code, out) == (1, "")
    assert err == ("Error: --out: taken.pem exists; keygen never overwrites a key, choose "
                   "another file\n")
    assert Path("taken.pem").read_text() == "mine"


def test_every_message_sent_over_smtp_verifies_with_rsa_and_ed25519(
    workdir: Path, smtp_server: FaultyServer, keys: Keys
) -> None:
    code, _, err = send(smtp_server, *SITE, "--dkim-key", str(keys.rsa), "--dkim-selector",
                        "rsa1", "--dkim-key", str(keys.ed), "--dkim-selector", "ed1")
    assert code == 0, err
    assert len(smtp_server.received) == 5
    for message in smtp_server.received:
        data = message.data
        assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n")
        assert keys.verifies(data, 0) and keys.verifies(data, 1)
        for index, algorithm in ((0, "rsa-sha256"), (1, "ed25519-sha256")):
            tags = signature_tags(data, index)
            assert (tags["a"], tags["d"], "l" in tags) == (algorithm, "example.org", False)
            signed = tags["h"].split(":")
            assert signed.count("list-unsubscribe-post") == 2  # once, and once more
            assert signed.count("from") == signed.count("subject") == 2
            assert {"to", "date", "message-id", "list-id", "mime-version",
                    "content-type"} <= set(signed)
        signatures = data[:data.index(b"\r\nFrom: ")].split(b"\r\n")
        assert max(len(line) for line in signatures) <= 78


def test_a_changed_header_or_body_byte_fails_verification(
    workdir: Path, smtp_server: FaultyServer, keys: Keys
) -> None:
    code, _, err = send(smtp_server, *SITE, "--dkim-key", str(keys.rsa), "--dkim-selector",
                        "rsa1", lists="five.csv")
    assert code == 0, err
    data = smtp_server.received[0].data
    assert keys.verifies(data)
    head, body = data.split(b"\r\n\r\n", 1)
    assert not keys.verifies(head.replace(b"Subject: ", b"Subject: X") + b"\r\n\r\n" + body)
    changed = body.replace(b"=\r\n", b"X=\r\n", 1)
    assert changed != body and not keys.verifies(head + b"\r\n\r\n" + changed)
    # An added List-Unsubscribe-Post is caught: the header is oversigned.
    added = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    assert not keys.verifies(head + b"\r\n" + added + b"\r\n" + body)


def test_every_message_in_a_maildir_verifies(workdir: Path, keys: Keys) -> None:
    code, _, err = run_send("--transport", "maildir:outbox", "--dkim-key", str(keys.ed),
                            "--dkim-selector", "ed1", "--dkim-domain", "example.org",
                            lists="five.csv")
    assert code == 0, err
    files = list((workdir / "outbox" / "new").iterdir())
    assert len(files) == 5
    for path in files:
        data = path.read_bytes()
        assert data.startswith(b"Return-Path: <digest@example.org>\nDKIM-Signature: v=1; ")
        assert keys.verifies(data.replace(b"\n", b"\r\n"))


def _write_rsa(path: Path, bits: int) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.mark.parametrize(("make", "selectors", "expected"), [
    (lambda: _write_rsa(Path("small.pem"), 1024), ("s",),
     "--dkim-key: small.pem is a 1024-bit RSA key; receivers want 2048 bits or more: make "
     "one with 'digest dkim keygen'"),
    (lambda: Path("text.pem").write_text("not a key") and Path("text.pem"), ("s",),
     "--dkim-key: text.pem is not an unencrypted PEM private key; make one with "
     "'digest dkim keygen'"),
    (lambda: Path("missing.pem"), ("s",),
     "--dkim-key: cannot read missing.pem: No such file or directory"),
    (lambda: _write_rsa(Path("ok.pem"), 2048), (),
     "--dkim-selector: 1 --dkim-key given with 0 --dkim-selector; give one selector per "
     "key, in the same order"),
], ids=["rsa-1024", "not-pem", "missing", "no-selector"])
def test_a_bad_key_is_one_line_naming_the_flag(
    workdir: Path, make: object, selectors: tuple[str, ...], expected: str
) -> None:
    path = make()  # type: ignore[operator]
    flags = [arg for s in selectors for arg in ("--dkim-selector", s)]
    code, out, err = run_send("--transport", "maildir:outbox", "--dkim-key", str(path),
                              *flags, lists="five.csv")
    assert (code, out, err) == (1, "", f"Error: {expected}\n")
    assert not (workdir / "outbox").exists()


@pytest.mark.parametrize(("flags", "expected"), [
    (("--dkim-domain", "example.org"),
     "--dkim-key: --dkim-selector and --dkim-domain need a key to sign with; add --dkim-key "
     "FILE (make one with 'digest dkim keygen')"),
    (("--dkim-key", "{rsa}", "--dkim-selector", "a;b"),
     "--dkim-selector: 'a;b' is not a selector like 'news2026' (letters, digits, dots and "
     "hyphens)"),
    (("--dkim-key", "{rsa}", "--dkim-selector", "s", "--dkim-domain", "x; s=evil"),
     "--dkim-domain: 'x; s=evil' is not a domain name like 'example.org'"),
], ids=["domain-without-key", "bad-selector", "bad-domain"])
def test_dkim_names_that_would_break_the_header_are_refused(
    workdir: Path, keys: Keys, flags: tuple[str, ...], expected: str
) -> None:
    args = [flag.format(rsa=keys.rsa) for flag in flags]
    code, out, err = run_send("--transport", "maildir:outbox", *args, lists="five.csv")
    assert (code, out, err) == (1, "", f"Error: {expected}\n")


def test_keygen_refuses_a_selector_that_is_no_dns_label(workdir: Path) -> None:
    code, out, err = run("dkim", "keygen", "--selector", "two words", "--domain", "example.org")
    assert (code, out) == (1, "")
    assert err == ("Error: --selector: 'two words' is not a selector like 'news2026' "
                   "(letters, digits, dots and hyphens)\n")
    assert list(workdir.glob("*.pem")) == []


def _signed(keys: Keys, head: bytes, body: bytes) -> bytes:
    signer = DkimSigner([DkimKey(load_key(keys.rsa), "rsa1", "example.org")])
    return signer(Envelope("a@example.org", "b@example.org", "<x@y>", head + b"\r\n" + body)).data


def test_odd_whitespace_and_folding_in_headers_still_verify(keys: Keys) -> None:
    head = (b"From:  Ann \t <a@example.org> \r\nTo: b@example.org\r\n"
            b"Subject: one\r\n \t two  \r\nsubject: a second subject\r\n"
            b"List-Unsubscribe:<mailto:u@example.org>\r\n")
    body = b"line with  two spaces \r\n\ttab\r\n\r\n\r\n"
    assert keys.verifies(_signed(keys, head, body))
    assert keys.verifies(_signed(keys, head, b""))


@given(st.lists(st.text(alphabet=" \tab", max_size=8), max_size=6), st.booleans())
def test_the_relaxed_body_is_dkimpys(lines: list[str], final_crlf: bool) -> None:
    body = "\r\n".join(lines).encode() + (b"\r\n" if final_crlf else b"")
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)
