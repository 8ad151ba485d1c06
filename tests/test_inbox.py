"""`digest inbox`: each returned message in tests/fixtures/inbox/ causes exactly its
suppression, Maildir and mbox run end to end through the CLI and a second run changes
nothing, soft bounces score across days, and `digest status` gives the rates."""

from __future__ import annotations

import json
import mailbox
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.audience.inbox import Decoders, Policy, read_inbox
from digest.audience.mailboxes import MaildirSource
from digest.email.links import make_signer
from digest.email.message import Identity
from digest.email.signing import Signer, parse_keys
from digest.email.verp import decode_verp, verp_address
from digest.state.records import CampaignRecord, Entry, Update
from digest.state.store import open_store
from tests.helpers import TEST_SECRET, TESTS, journal, run, send, suppressed
from tests.smtpd import FaultyServer

FIXTURES = TESTS / "fixtures" / "inbox"
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
CAMPAIGN = "2026-W49-subscribers-all"
READERS = ["leaver@example.org", "angry@example.org",
           *(f"reader{i}@example.org" for i in range(8))]
ENV = {"DIGEST_SECRET": TEST_SECRET}

# fixture -> (whose tokens replace {TOKEN} and {VERP}, the suppressions it causes, what it
# counts as)
CASES: dict[str, tuple[str | None, list[tuple[str, str]], str]] = {
    "postfix-hard-550.eml": (None, [("gone@example.org", "bounced")], "hard"),
    "postfix-verp-forwarded.eml": ("reader0@example.org", [("reader0@example.org", "bounced")],
                                   "hard"),
    "postfix-soft-mailbox-full.eml": (None, [], "soft"),
    "postfix-delayed-4xx.eml": (None, [], "soft"),
    "postfix-policy-571.eml": (None, [], "policy"),
    "exim-nonstandard.eml": (None, [("nobody@example.org", "bounced")], "hard"),
    "exim-dsn.eml": (None, [("moved@example.org", "bounced")], "hard"),
    "exchange-hard.eml": (None, [("left@corp.example.net", "bounced")], "hard"),
    "exchange-policy-574.eml": (None, [], "policy"),
    "gmail-hard.eml": (None, [("missing.reader@example.org", "bounced")], "hard"),
    "gmail-over-quota-422.eml": (None, [], "soft"),
    "dsn-original-recipient-only.eml": (None, [("alias@example.org", "bounced")], "hard"),
    "dsn-delivered-success.eml": (None, [], "ignored"),
    "yahoo-arf-complaint.eml": ("angry@example.org", [("angry@example.org", "complained")],
                                "complaints"),
    "aol-arf-redacted-headers.eml": (None, [("annoyed@example.org", "complained")],
                                     "complaints"),
    "vacation-auto-reply.eml": (None, [], "ignored"),
    "vacation-no-headers.eml": (None, [], "ignored"),
    "mailto-unsubscribe.eml": ("leaver@example.org", [("leaver@example.org", "unsubscribed")],
                               "unsubscribes"),
    "mailto-forged-token.eml": (None, [], "unrecognised"),
    "unrecognised-human-reply.eml": (None, [], "unrecognised"),
}


def signer() -> Signer:
    identity = Identity("The Weekly Digest", "The Weekly Digest <digest@example.org>", None,
                        None)
    return make_signer(parse_keys(TEST_SECRET, "test"), identity)


def journalled(state: Path, sent: int = 0) -> dict[str, str]:
    """A campaign to READERS, the first ``sent`` of them sent; email -> recipient id."""
    with closing(open_store(state)) as store:
        journal = store.journal
        journal.pin(CampaignRecord(CAMPAIGN, "sel", "2026-11-30T06:00:00+00:00"))
        journal.add(CAMPAIGN, [Entry(e, "", "", f"<{e}>", "pending", None) for e in READERS])
        rids = {p.email: p.rid for p in journal.todo(CAMPAIGN)}
        journal.apply(CAMPAIGN, [Update(e, "sent", 250, "ok", attempted=True)
                                 for e in READERS[:sent]])
    return rids


def fixture(name: str, rids: dict[str, str]) -> bytes:
    owner = CASES[name][0]
    text = (FIXTURES / name).read_bytes()
    if owner is None:
        return text
    verp = verp_address(signer(), rids[owner], "example.net")
    return (text.replace(b"{TOKEN}", signer().tokens(rids[owner])[0].encode())
            .replace(b"{VERP}", verp.encode()))


def maildir(root: Path, names: list[str], tokens: dict[str, str]) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    for number, name in enumerate(names):
        (root / "new" / f"17644800{number:02d}.M{number}P1.mx").write_bytes(
            fixture(name, tokens))
    return root


def suppressions(state: Path) -> list[tuple[str, str]]:
    with closing(open_store(state)) as store:
        return sorted((s.email, s.reason) for s in store.suppressions)


def decoders() -> Decoders:
    signed = signer()
    return Decoders(verp=lambda address: decode_verp(address, signed),
                    unsubscribe=lambda token: signed.verify(token, "unsubscribe"))


def test_the_corpus_has_a_case_for_every_fixture() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_fixture_causes_exactly_its_suppression(tmp_path: Path, name: str) -> None:
    state = tmp_path / "state"
    tokens = journalled(state)
    box = maildir(tmp_path / "Maildir", [name], tokens)
    result = read_inbox(MaildirSource(box), state, Policy(), decoders(), NOW)
    expected, counted = CASES[name][1], CASES[name][2]
    assert suppressions(state) == expected
    assert {k: v for k, v in result.counts.items() if v} == {counted: 1}


def test_maildir_end_to_end_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    tokens = journalled(state)
    box = maildir(tmp_path / "Maildir", sorted(CASES), tokens)
    code, out, err = run("inbox", str(box), "--state", str(state), "--format", "json", env=ENV)
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["counts"] == {"hard": 7, "soft": 3, "policy": 2, "complaints": 2,
                                "unsubscribes": 1, "ignored": 3, "unrecognised": 2,
                                "already_seen": 0}
    expected = sorted(s for case in CASES.values() for s in case[1])
    assert suppressions(state) == expected
    left = sorted(p.name for p in (box / "new").iterdir())
    assert len(left) == 2 and report["unrecognised"] == [f"new/{n}" for n in left]
    assert all(p.name.endswith(":2,S") for p in (box / "cur").iterdir())
    assert len(list((box / "cur").iterdir())) == len(CASES) - 2
    before = sorted(p.name for p in box.rglob("*"))

    code, out, err = run("inbox", str(box), "--state", str(state), env=ENV)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == ("hard 0, soft 0, policy 0, complaints 0, unsubscribes 0, "
                                   "ignored 0, unrecognised 2, already seen 0")
    assert sorted(p.name for p in box.rglob("*")) == before
    assert suppressions(state) == expected


def test_mbox_end_to_end_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    tokens = journalled(state)
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for name in ("postfix-hard-550.eml", "mailto-unsubscribe.eml", "vacation-auto-reply.eml",
                 "unrecognised-human-reply.eml"):
        box.add(fixture(name, tokens))
    box.close()
    data = path.read_bytes()
    code, out, _ = run("inbox", str(path), "--state", str(state), env=ENV)
    assert code == 0
    assert out.splitlines() == [
        "hard 1, soft 0, policy 0, complaints 0, unsubscribes 1, ignored 1, unrecognised 1,"
        " already seen 0",
        "  suppressed gone@example.org (bounced)",
        "  suppressed leaver@example.org (unsubscribed)",
        "  unrecognised, left unread: 3"]
    code, out, _ = run("inbox", str(path), "--state", str(state), env=ENV)
    assert out.splitlines()[0] == ("hard 0, soft 0, policy 0, complaints 0, unsubscribes 0, "
                                   "ignored 0, unrecognised 1, already seen 3")
    assert path.read_bytes() == data  # an mbox is only read
    assert suppressions(state) == [("gone@example.org", "bounced"),
                                   ("leaver@example.org", "unsubscribed")]


def soft_bounce(tmp_path: Path, state: Path, day: int, now: datetime) -> None:
    """The mailbox-full DSN again, as a new message, read at ``now``."""
    box = tmp_path / f"Maildir{day}-{now:%H}"
    data = (FIXTURES / "postfix-soft-mailbox-full.eml").read_bytes()
    maildir(box, [], {})
    (box / "new" / "1.mx").write_bytes(data.replace(b"5A2b3C4d@", f"day{day}{now:%H}@".encode()))
    read_inbox(MaildirSource(box), state, Policy(), Decoders(), now)


def test_soft_bounces_score_once_a_day_reset_after_a_week_and_suppress_at_five(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    for day in range(9):  # nine days: 4.5, and a second bounce on a day counts nothing
        soft_bounce(tmp_path, state, day, start + timedelta(days=day))
        soft_bounce(tmp_path, state, day, start + timedelta(days=day, hours=3))
    assert suppressions(state) == []
    # Seven days without a bounce: the score starts again from nothing.
    later = start + timedelta(days=8 + 7)
    for day in range(9):
        soft_bounce(tmp_path, state, 100 + day, later + timedelta(days=day))
    assert suppressions(state) == []
    soft_bounce(tmp_path, state, 109, later + timedelta(days=9))
    assert suppressions(state) == [("full@example.org", "bounced")]


def test_status_shows_the_bounce_and_complaint_rates_and_warns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    tokens = journalled(state, sent=9)
    with closing(open_store(state)) as store:  # the tenth was refused at RCPT
        store.journal.apply(CAMPAIGN, [Update(READERS[9], "failed", 550, "5.1.1 unknown",
                                              attempted=True, bounced=True)])
    box = maildir(tmp_path / "Maildir", ["yahoo-arf-complaint.eml"], tokens)
    assert run("inbox", str(box), "--state", str(state), env=ENV)[0] == 0
    code, out, err = run("status", "--state", str(state))
    assert code == 0
    assert "  bounce rate 10.00%, complaint rate 10.00%\n" in out
    assert err == ("warning: bounce rate 10.00% is above 2%; clean the list before the next "
                   "send\nwarning: complaint rate 10.00% is above 0.1%; mailbox providers "
                   "will start to block you\n")
    code, out, _ = run("status", "--state", str(state), "--format", "json")
    assert json.loads(out)["rates"] == {"bounce": 0.1, "complaint": 0.1}


def test_a_source_that_is_neither_maildir_nor_mbox_is_one_line(tmp_path: Path) -> None:
    code, out, err = run("inbox", str(tmp_path), "--state", str(tmp_path / "s"))
    assert (code, out) == (1, "")
    assert err == (f"Error: SOURCE: {tmp_path} is a folder without new/ or cur/, not a "
                   "Maildir; give a Maildir or an mbox file\n")


@pytest.mark.workdir(TESTS / "fixtures" / "send" / "five.csv")
def test_a_policy_block_at_rcpt_fails_but_does_not_suppress(
        workdir: Path, smtp_server: FaultyServer) -> None:
    smtp_server.fail_rcpt("reader1@example.org", 550, "5.1.1 no such user", times=5)
    smtp_server.fail_rcpt("reader2@example.org", 550, "5.7.1 blocked by policy", times=5)
    code, _, err = send(smtp_server)
    assert (code, err) == (3, "")
    rows = journal(workdir)
    assert rows["reader1@example.org"][0] == rows["reader2@example.org"][0] == "failed"
    assert suppressed() == ["reader1@example.org"]
