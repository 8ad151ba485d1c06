"""`digest send --test ADDR`: the current issue to a few addresses, now, against the real
aiosmtpd server of tests/smtpd.py (and a real Maildir), with nothing recorded in the state."""

from __future__ import annotations

import re
from contextlib import closing
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest.email.message import Identity
from digest.email.signing import Key, Signer
from digest.state.records import now_stamp
from digest.state.store import open_store
from tests.helpers import (
    AS_OF,
    TEST_SECRET,
    TESTS,
    parse,
    run,
    run_send,
    suppressed,
    transport,
)
from tests.smtpd import FaultyServer

FIXTURES = TESTS / "fixtures" / "send_test"
pytestmark = pytest.mark.workdir(FIXTURES / "subscribers.csv", articles=FIXTURES / "articles")
TITLES = ("Harbour Wall Approved", "Ferry Timetable Changes", "What the New Budget Means")
# A send without a list, refused as click words it (CliRunner calls the program cli).
NO_LIST = ("Usage: cli send [OPTIONS]\nTry 'cli send --help' for help.\n\n"
           "Error: Missing option '--list' (env var: 'DIGEST_LIST').\n")


def send_tests(server: FaultyServer, *args: str) -> tuple[int, str, str]:
    """`digest send --test ...` of the issue as of AS_OF to SERVER; ARGS hold the --test
    flags and anything else."""
    return run("send", "--as-of", AS_OF, "--transport", transport(server), *args)


def flags(*addresses: str) -> list[str]:
    return [arg for address in addresses for arg in ("--test", address)]


def by_recipient(server: FaultyServer) -> dict[str, EmailMessage]:
    return {m.rcpt_tos[0]: parse(m.data) for m in server.received}


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def files(folder: Path) -> dict[str, bytes]:
    """The state in FOLDER, byte for byte: each file by name, but SQLite's side files. A
    read-only reader of a WAL database (a test, a dry run, `digest status`) leaves its -shm
    index and an empty -wal beside it; that -wal must stay empty, or something was written."""
    found = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert all(data == b"" for name, data in found.items() if name.endswith("-wal"))
    return {name: data for name, data in found.items() if not name.endswith(("-shm", "-wal"))}


def test_two_runs_after_an_edit_deliver_two_messages_and_leave_the_state_alone(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    # The issue went out for real already, so a plain rerun would say "already finished".
    code, _, err = run_send("--transport", "maildir:outbox", lists="subscribers.csv")
    assert code == 0, err
    state = files(workdir / ".digest")
    assert "journal.sqlite3" in state
    args = (*flags("ann@example.org"), "--list", "subscribers.csv")
    assert send_tests(smtp_server, *args) == (
        0, "Sent test to ann@example.org (variant: 1 story).\n", "")
    article = workdir / "articles" / "harbour-wall.md"
    article.write_text(article.read_text().replace("on Monday", "on Tuesday"))
    assert send_tests(smtp_server, *args) == (
        0, "Sent test to ann@example.org (variant: 1 story).\n", "")
    first, second = (parse(m.data) for m in smtp_server.received)
    for message in (first, second):
        assert str(message["Subject"]).startswith("[Test] Harbour Wall Approved")
    assert "voted on Monday" in text_of(first) and "voted on Tuesday" in text_of(second)
    assert first["Message-ID"] != second["Message-ID"]
    assert files(workdir / ".digest") == state


def test_a_listed_address_gets_its_variant_and_any_other_the_whole_digest(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, out, err = send_tests(smtp_server, *flags("Ann@Example.org", "new@example.org"),
                                "--list", "subscribers.csv", "--site-url",
                                "https://news.example.org")
    assert (code, err) == (0, "")
    assert out == ("Sent test to ann@example.org (variant: 1 story).\n"
                   "Sent test to new@example.org (variant: 3 stories).\n")
    messages = by_recipient(smtp_server)
    ann, new = text_of(messages["ann@example.org"]), text_of(messages["new@example.org"])
    assert "Hi Ann Listed," in ann and [t for t in TITLES if t in ann] == [TITLES[0]]
    assert "Hi Test Reader," in new and all(t in new for t in TITLES)
    # Signed as a real send signs them, for a recipient id that leads to no one.
    signer = Signer([Key.of(TEST_SECRET)], Identity("The Weekly Digest",
                                                    "digest@example.org").list_key)
    for message in messages.values():
        token = re.search(r"/unsubscribe/([\w.-]+)>", str(message["List-Unsubscribe"]))
        assert token is not None and signer.verify(token[1], "unsubscribe") is not None
    assert not (workdir / ".digest").exists()


def test_stored_preferences_choose_the_variant_as_in_a_real_send(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    with closing(open_store(Path(".digest"))) as store:
        assert store.suppressions.reason("ann@example.org") is None  # as `digest serve` opens it
        store.preferences.set("ann@example.org", ("budget",), "web:test", now_stamp())
    state = files(workdir / ".digest")
    code, out, _ = send_tests(smtp_server, *flags("ann@example.org"), "--list",
                              "subscribers.csv")
    assert (code, out) == (0, "Sent test to ann@example.org (variant: 1 story).\n")
    ann = text_of(by_recipient(smtp_server)["ann@example.org"])
    assert [t for t in TITLES if t in ann] == [TITLES[2]]
    assert files(workdir / ".digest") == state


def test_a_suppressed_address_still_gets_its_test_with_a_note(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    assert run("suppress", "add", "new@example.org")[0] == 0
    state = files(workdir / ".digest")
    code, out, err = send_tests(smtp_server, *flags("gone@example.org", "new@example.org"),
                                "--list", "subscribers.csv")
    assert (code, err) == (0, "")
    assert out == (
        "Note: gone@example.org is suppressed (unsubscribed): a real send skips them; this "
        "test goes to them because you asked for it.\n"
        "Sent test to gone@example.org (variant: 3 stories).\n"
        "Note: new@example.org is suppressed (manual): a real send skips them; this test "
        "goes to them because you asked for it.\n"
        "Sent test to new@example.org (variant: 3 stories).\n")
    assert sorted(by_recipient(smtp_server)) == ["gone@example.org", "new@example.org"]
    assert "Hi Gone Reader," in text_of(by_recipient(smtp_server)["gone@example.org"])
    assert files(workdir / ".digest") == state


def test_a_refused_rcpt_is_reported_and_suppresses_no_one(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    assert run("suppress", "add", "other@example.org")[0] == 0
    state = files(workdir / ".digest")
    smtp_server.fail_rcpt("ann@example.org", 550, "no such user")
    code, out, err = send_tests(smtp_server, *flags("ann@example.org", "new@example.org"),
                                "--list", "subscribers.csv")
    assert code == 3
    assert out == "Sent test to new@example.org (variant: 3 stories).\n"
    assert err == ("Error: the test to ann@example.org was not delivered (failed): "
                   "550 no such user\n")
    assert list(by_recipient(smtp_server)) == ["new@example.org"]
    assert files(workdir / ".digest") == state
    assert suppressed() == ["other@example.org"]


def test_no_list_is_needed_with_test_and_still_is_without(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    assert send_tests(smtp_server, *flags("new@example.org")) == (
        0, "Sent test to new@example.org (variant: 3 stories).\n", "")
    code, out, err = send_tests(smtp_server)
    assert (code, out, err) == (2, "", NO_LIST)
    assert len(smtp_server.received) == 1


def test_test_is_a_flag_only_never_the_environment_or_the_file(
    workdir: Path, smtp_server: FaultyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A DIGEST_TEST left exported would turn the cron send into a test: it is not read.
    monkeypatch.setenv("DIGEST_TEST", "new@example.org")
    assert send_tests(smtp_server) == (2, "", NO_LIST)
    (workdir / "digest.toml").write_text('test = ["new@example.org"]\n')
    code, out, err = send_tests(smtp_server)
    assert (code, out) == (1, "")
    assert err.startswith("Error: digest.toml: unknown key 'test'; known keys: ")
    assert smtp_server.received == []


def test_a_bad_test_address_is_one_line_naming_the_flag(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, out, err = send_tests(smtp_server, *flags("new@example.org", "nobody"))
    assert (code, out) == (1, "")
    assert err == "Error: --test: 'nobody' is not an email address: An email address must " \
                  "have an @-sign.\n"
    assert smtp_server.received == []


def test_without_a_key_the_links_are_placeholders(
    workdir: Path, smtp_server: FaultyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    code, out, err = send_tests(smtp_server, *flags("new@example.org"))
    assert (code, out) == (0, "Sent test to new@example.org (variant: 3 stories).\n")
    assert err == ("warning: no link-signing key (DIGEST_SECRET or secret-file): the "
                   "unsubscribe links in this test are placeholders that no server accepts\n")
    message = by_recipient(smtp_server)["new@example.org"]
    assert "PLACEHOLDER-no-secret-set" in str(message["List-Unsubscribe"])


def test_a_dry_run_builds_and_delivers_nothing(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    (workdir / "subscribers.csv").write_text(
        (workdir / "subscribers.csv").read_text() + "cy@example.org,Cy,Sport,\n")
    code, out, err = send_tests(
        smtp_server, *flags("ann@example.org", "ANN@example.org", "cy@example.org"),
        "--list", "subscribers.csv", "--dry-run")
    assert code == 0
    assert out == (
        "Dry run: would send test to ann@example.org (variant: 1 story); nothing was "
        "delivered.\n"
        "No test for cy@example.org: no article matches their tags (sport), so a real send "
        "skips them too.\n")
    assert err == ("warning: subscribers.csv:5: unknown tag preference 'sport'; known tags: "
                   "budget, climate, transport\n")
    assert smtp_server.received == []
    assert not (workdir / ".digest").exists()


def test_a_maildir_test_is_wrapped_like_a_send(workdir: Path) -> None:
    key = workdir / "dkim.pem"
    assert run("dkim", "keygen", "--selector", "s1", "--domain", "example.org", "--type",
               "ed25519", "--out", str(key))[0] == 0
    code, out, err = run("send", "--as-of", AS_OF, *flags("new@example.org"),
                         "--bounce-domain", "bounces.example.org", "--dkim-key", str(key),
                         "--dkim-selector", "s1")
    assert (code, out, err) == (0, "Sent test to new@example.org (variant: 3 stories).\n", "")
    (path,) = (workdir / "outbox" / "new").iterdir()
    data = path.read_bytes()
    assert data.startswith(b"Return-Path: <bounces+")
    assert b"\nDKIM-Signature: v=1; a=ed25519-sha256;" in data
    assert b"\nSubject: [Test] " in data


def test_an_error_that_stops_the_run_is_one_line_and_exit_1(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, out, err = send_tests(smtp_server, *flags("ann@example.org", "new@example.org"),
                                "--tls-policy", "require")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: 127.0.0.1:{smtp_server.port} does not offer STARTTLS, and the TLS policy "
        "(require) forbids sending in the clear; nothing was sent. Use smtps://, a server "
        "with STARTTLS, or set tls-policy = \"allow-plaintext\" in the config if you must\n"
    )
    assert smtp_server.received == []
