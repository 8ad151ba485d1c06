"""The IMAP source of `digest inbox`, against a real Dovecot (tests/dovecot.py): it reads the
folder's unseen mail, flags what it finished \\Seen, never deletes, and says in one line
what is wrong with a password, a certificate or a URL."""

from __future__ import annotations

import imaplib
import ssl
from pathlib import Path

import pytest

from digest.audience.imap import open_imap, parse_imap_url
from digest.errors import ConfigError, TransportError
from tests.dovecot import PASSWORD, Dovecot
from tests.helpers import REPO, TESTS, run

FIXTURES = REPO / "tests" / "fixtures" / "imap"
MESSAGES = (FIXTURES / "bounce.eml", FIXTURES / "unsubscribe.eml")
# From the bounce corpus: a hard bounce, an auto-reply and mail nobody can classify, last.
CORPUS = tuple(TESTS / "fixtures" / "inbox" / name for name in (
    "postfix-hard-550.eml", "vacation-auto-reply.eml", "unrecognised-human-reply.eml"))


def deliver(server: Dovecot, *paths: Path) -> None:
    """Deliver as a local delivery agent does: one file per message in Maildir/new."""
    for number, path in enumerate(paths, 1):
        (server.maildir / "new" / f"{1796000000 + number}.M1P1.mx").write_bytes(path.read_bytes())


def flags(server: Dovecot, ca_file: Path) -> list[bytes]:
    """Every message still in the folder with its flags, as a second client sees them."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with imaplib.IMAP4_SSL(server.host, server.port, ssl_context=context) as imap:
        imap.login(server.user, server.password)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(FLAGS)")
    return [item for item in data if isinstance(item, bytes)]


def read_all(server: Dovecot, ca_file: Path, *, finish: bool) -> list[bytes]:
    with open_imap(server.url(), server.password, ca_file=ca_file, timeout=10) as box:
        found = []
        for handle, raw in box.messages():
            found.append(raw)
            if finish:
                box.mark_seen(handle)
    return found


def test_reads_unseen_mail_flags_it_seen_and_a_second_run_skips_it(
        dovecot: Dovecot, tls_ca_file: Path) -> None:
    deliver(dovecot, *MESSAGES)

    first = read_all(dovecot, tls_ca_file, finish=True)

    assert sorted(first) == sorted(path.read_bytes() for path in MESSAGES)
    state = flags(dovecot, tls_ca_file)
    assert len(state) == 2 and all(b"\\Seen" in line for line in state), state
    assert not any(b"\\Deleted" in line for line in state), state
    assert read_all(dovecot, tls_ca_file, finish=True) == []
    assert len(flags(dovecot, tls_ca_file)) == 2  # still there: nothing is ever expunged


def test_reading_alone_does_not_mark_a_message_seen(dovecot: Dovecot,
                                                    tls_ca_file: Path) -> None:
    """A run that stops before recording a message must meet it again next time."""
    deliver(dovecot, MESSAGES[0])

    assert len(read_all(dovecot, tls_ca_file, finish=False)) == 1

    assert [b"\\Seen" in line for line in flags(dovecot, tls_ca_file)] == [False]
    assert read_all(dovecot, tls_ca_file, finish=True) == [MESSAGES[0].read_bytes()]


def test_a_wrong_password_is_one_line_that_does_not_repeat_it(
        dovecot: Dovecot, tls_ca_file: Path) -> None:
    with (pytest.raises(TransportError) as caught,
          open_imap(dovecot.url(), "hunter2-wrong", ca_file=tls_ca_file, timeout=10)):
        pass

    assert str(caught.value) == (
        f"127.0.0.1 refused the login of {dovecot.user} ([AUTHENTICATIONFAILED] Authentication "
        "failed.); check the user in the IMAP URL and the password (set "
        "DIGEST_IMAP_PASSWORD or imap-password in the config file)")


def test_an_untrusted_certificate_is_one_line_naming_ca_file(dovecot: Dovecot) -> None:
    with pytest.raises(TransportError) as caught, open_imap(dovecot.url(), dovecot.password):
        pass

    assert str(caught.value) == (
        "the certificate of 127.0.0.1 failed verification (unable to get local issuer "
        "certificate); nothing was read. Use --ca-file for a private CA")


def test_a_folder_that_does_not_exist_is_one_line(dovecot: Dovecot, tls_ca_file: Path) -> None:
    with (pytest.raises(ConfigError) as caught,
          open_imap(dovecot.url("Bounces"), dovecot.password, ca_file=tls_ca_file)):
        pass

    assert str(caught.value) == (
        "SOURCE: cannot open the folder 'Bounces' on 127.0.0.1 (Mailbox doesn't exist: "
        "Bounces.); name an existing folder in the IMAP URL: imaps://user@host[:port]/Folder")


def test_the_url_gives_user_host_port_and_folder() -> None:
    config = parse_imap_url("imaps://bounces%40news@mail.example.org/Returned Mail")

    assert (config.user, config.host, config.port, config.folder) == (
        "bounces@news", "mail.example.org", 993, "Returned Mail")
    assert parse_imap_url("imaps://b@[::1]:1993").folder == "INBOX"
    assert parse_imap_url("imaps://b@[::1]:1993").port == 1993


@pytest.mark.parametrize(("spec", "message"), [
    ("imaps://bounces:hunter2@mail.example.org/INBOX",
     "SOURCE: a password does not belong in the IMAP URL (it would show in the process "
     "list); set DIGEST_IMAP_PASSWORD or imap-password in the config file"),
    ("imap://bounces@mail.example.org/INBOX",
     "SOURCE: only IMAP over TLS is supported, so that the password never crosses the "
     "network in the clear; use imaps://user@host[:port]/Folder"),
    ("imaps://mail.example.org/INBOX",
     "SOURCE: the IMAP URL needs a user and a host; use imaps://user@host[:port]/Folder, "
     "e.g. imaps://bounces@mail.example.org/INBOX"),
    ("imaps://bounces@mail.example.org:99999/INBOX",
     "SOURCE: cannot read the IMAP URL; use imaps://user@host[:port]/Folder, with a port "
     "from 1 to 65535"),
])
def test_a_bad_url_is_one_line(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_imap_url(spec)

    assert str(caught.value) == message
    assert "hunter2" not in str(caught.value)


def test_no_password_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        open_imap("imaps://bounces@mail.example.org/INBOX", None)

    assert str(caught.value) == (
        "SOURCE: reading imaps://bounces@mail.example.org:993/INBOX needs the IMAP password; "
        "set DIGEST_IMAP_PASSWORD or imap-password in the config file")


def test_digest_inbox_reads_an_imap_folder_end_to_end(dovecot: Dovecot, tls_ca_file: Path,
                                                      tmp_path: Path) -> None:
    """The real command: what it dealt with is flagged \\Seen, what it could not classify
    stays unread, nothing is deleted, and a second run meets only the unread one."""
    deliver(dovecot, *CORPUS)
    state, env = str(tmp_path / "state"), {"DIGEST_IMAP_PASSWORD": dovecot.password}

    code, out, err = run("inbox", dovecot.url(), "--state", state, "--ca-file",
                         str(tls_ca_file), env=env)

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "hard 1, soft 0, policy 0, complaints 0, unsubscribes 0, ignored 1, unrecognised 1,"
        " already seen 0",
        "  suppressed gone@example.org (bounced)",
        "  unrecognised, left unread: UID 3"]
    assert [b"\\Seen" in line for line in flags(dovecot, tls_ca_file)] == [True, True, False]
    code, out, err = run("inbox", dovecot.url(), "--state", state, "--ca-file",
                         str(tls_ca_file), env=env)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == ("hard 0, soft 0, policy 0, complaints 0, unsubscribes 0, "
                                   "ignored 0, unrecognised 1, already seen 0")
    assert len(flags(dovecot, tls_ca_file)) == 3


def test_digest_inbox_takes_the_imap_password_from_the_config_file(
        dovecot: Dovecot, tls_ca_file: Path, tmp_path: Path) -> None:
    deliver(dovecot, CORPUS[0])
    config = tmp_path / "digest.toml"
    config.write_text(f'imap-password = "{dovecot.password}"\n')

    code, out, err = run("--config", str(config), "inbox", dovecot.url(), "--state",
                         str(tmp_path / "state"), "--ca-file", str(tls_ca_file))

    assert (code, err) == (0, "")
    assert out.splitlines()[1] == "  suppressed gone@example.org (bounced)"


@pytest.mark.parametrize(("password", "ca", "message"), [
    ("hunter2-wrong", True,
     "Error: 127.0.0.1 refused the login of {user} ([AUTHENTICATIONFAILED] Authentication "
     "failed.); check the user in the IMAP URL and the password (set DIGEST_IMAP_PASSWORD or "
     "imap-password in the config file)\n"),
    (PASSWORD, False,
     "Error: the certificate of 127.0.0.1 failed verification (unable to get local issuer "
     "certificate); nothing was read. Use --ca-file for a private CA\n"),
])
def test_digest_inbox_says_in_one_line_what_is_wrong(
        dovecot: Dovecot, tls_ca_file: Path, tmp_path: Path, password: str, ca: bool,
        message: str) -> None:
    deliver(dovecot, CORPUS[0])
    ca_args = ["--ca-file", str(tls_ca_file)] if ca else []

    code, out, err = run("inbox", dovecot.url(), "--state", str(tmp_path / "state"), *ca_args,
                         env={"DIGEST_IMAP_PASSWORD": password})

    assert (code, out, err) == (1, "", message.format(user=dovecot.user))
    assert [b"\\Seen" in line for line in flags(dovecot, tls_ca_file)] == [False]
