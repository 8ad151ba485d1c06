"""A send with tag preferences and real-world lists, over SMTP to a real aiosmtpd server
(tests/smtpd.py): each subscriber gets exactly the selected articles that match their
tags, newest first; a subscriber whom nothing matches gets nothing; unsubscribed,
cleaned, blocklisted and bounced people are never mailed.

Expected article sets are derived from the articles' own tags, as `digest articles`
reports them, never copied from the implementation."""

from __future__ import annotations

import csv
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    AS_OF,
    TESTS,
    every_article,
    journal,
    known_slugs,
    known_tags_listing,
    parse,
    run,
    send,
    slug,
    suppression_list,
)
from tests.smtpd import FaultyServer

FIXTURES = TESTS / "fixtures" / "campaign"
pytestmark = pytest.mark.workdir(*FIXTURES.glob("*.csv"))


def selected() -> list[dict[str, Any]]:
    """This week's articles, in the editor's order that `digest articles` lists them in
    (the sample has a featured and weighted stories; test_cli checks that order)."""
    code, out, err = run("articles", "--format", "json", "--as-of", AS_OF)
    assert code == 0, err
    items: list[dict[str, Any]] = json.loads(out)
    assert len(items) == 9
    return items


def expected_titles(articles: Iterable[dict[str, Any]], prefs: Sequence[str]) -> list[str]:
    """The titles a subscriber with these preferences should get: all when there are none."""
    wanted = {slug(p) for p in prefs if slug(p)}
    return [a["title"] for a in articles
            if not wanted or wanted & {slug(t) for t in a["tags"]}]


def titles(message: EmailMessage) -> list[str]:
    """The numbered article titles of the plain-text part, in order (a long title may wrap)."""
    part = message.get_body(("plain",))
    assert part is not None
    text = part.get_content().replace("\r\n", "\n")
    found = re.findall(r"(?m)^(\d+)\. (.+(?:\n(?!By ).+)*)\nBy ", text)
    assert [int(number) for number, _ in found] == list(range(1, len(found) + 1))
    return [" ".join(title.split()) for _, title in found]


def delivered(server: FaultyServer) -> dict[str, list[str]]:
    """Recipient (casefolded) -> the titles they got. Everyone got at most one message,
    and its HTML part shows the same articles as its text part."""
    every = [a["title"] for a in selected()]
    counts = Counter(rcpt.casefold() for m in server.received for rcpt in m.rcpt_tos)
    assert all(n == 1 for n in counts.values()), counts
    result = {}
    for received in server.received:
        assert len(received.rcpt_tos) == 1
        message = parse(received.data)
        got = titles(message)
        html_part = message.get_body(("html",))
        assert html_part is not None
        shown = html.unescape(html_part.get_content())
        assert [t for t in every if t in shown] == [t for t in every if t in got]
        result[received.rcpt_tos[0].casefold()] = got
    return result


def expected_deliveries(prefs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Who should get what, from each address's preferences: nobody gets an empty digest."""
    articles = selected()
    wanted = {addr.casefold(): expected_titles(articles, tags) for addr, tags in prefs.items()}
    return {addr: got for addr, got in wanted.items() if got}


def our_list_prefs(path: Path) -> dict[str, list[str]]:
    """email -> tags, read from a list in our own format."""
    with path.open(encoding="utf-8", newline="") as f:
        return {row["email"]: [t for t in row["tags"].split(";") if t.strip()]
                for row in csv.DictReader(f)}


def suppressions() -> dict[str, tuple[str, str]]:
    return {e["email"].casefold(): (e["reason"], e["source"]) for e in suppression_list()}


def replies(workdir: Path, campaign: str) -> dict[str, tuple[Any, ...]]:
    """email -> (status, last_reply) of CAMPAIGN's rows in the journal."""
    return journal(workdir, "status", "last_reply", campaign=campaign)


def status(campaign: str) -> dict[str, Any]:
    code, out, err = run("status", "--campaign", campaign, "--format", "json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


COUNTS = ("recipients", "sent", "failed", "deferred", "ambiguous", "skipped", "suppressed")


def report_counts(path: Path) -> dict[str, Any]:
    report = json.loads(path.read_text(encoding="utf-8"))
    return {key: report[key] for key in (*COUNTS, "variants", "skips")}


# --- preferences ---------------------------------------------------------------------


def test_the_fixture_preferences_cover_each_case(workdir: Path) -> None:
    """Guards the premises of the next test, so that it tests what it says."""
    prefs = our_list_prefs(workdir / "prefs.csv")
    articles = selected()
    chosen = {email: expected_titles(articles, tags) for email, tags in prefs.items()}
    all_tags = {slug(t) for a in every_article() for t in a["tags"]}
    this_week = {slug(t) for a in articles for t in a["tags"]}
    assert chosen["all@example.org"] == [a["title"] for a in articles]
    assert "science" in all_tags - this_week  # in the folder, in no selected article
    assert "gardening" not in all_tags
    assert chosen["sci@example.org"] == chosen["garden@example.org"] == []
    assert all(chosen[e] for e in prefs if e not in ("sci@example.org", "garden@example.org"))
    # "local_government" only matches "Local Government" by slug.
    assert "local_government" not in {t.lower() for a in articles for t in a["tags"]}


def test_each_subscriber_gets_the_articles_their_tags_select(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, out, err = send(smtp_server, "--report", "run.json", lists=["prefs.csv"])
    assert code == 0, err
    prefs = our_list_prefs(workdir / "prefs.csv")
    expected = expected_deliveries(prefs)
    assert delivered(smtp_server) == expected
    assert len(expected["all@example.org"]) == 9
    assert "sci@example.org" not in expected and "garden@example.org" not in expected

    assert (f"warning: prefs.csv:7: unknown tag preference 'gardening'; known tags: "
            f"{known_tags_listing(known_slugs())}") in err.splitlines()
    skips = [
        {"email": "garden@example.org", "reason": "no article matches their tags (gardening)"},
        {"email": "sci@example.org", "reason": "no article matches their tags (science)"},
    ]
    assert report_counts(workdir / "run.json") == {
        "recipients": len(prefs), "sent": len(expected), "failed": 0, "deferred": 0,
        "ambiguous": 0, "skipped": 2, "suppressed": 0,
        "variants": len({tuple(got) for got in expected.values()}),
        "skips": skips,
    }
    assert out == (f"Sent {len(expected)} messages via smtp://127.0.0.1:{smtp_server.port} "
                   f"(campaign 2026-W48-prefs-all; now {len(expected)} sent, 2 skipped).\n")

    result = status("2026-W48-prefs-all")
    assert result["counts"] == {"sent": len(expected), "skipped": 2}
    assert [(p["email"], p["status"], p["reply"]) for p in result["problems"]] == [
        (s["email"], "skipped", s["reason"]) for s in skips]


def test_variants_count_distinct_article_sets_not_subscribers(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    # Three spellings of one tag, and two people who want everything: two article sets.
    code, _, err = send(smtp_server, "--report", "run.json", lists=["same-set.csv"])
    assert code == 0, err
    expected = expected_deliveries(our_list_prefs(workdir / "same-set.csv"))
    assert delivered(smtp_server) == expected
    sets = {tuple(got) for got in expected.values()}
    report = report_counts(workdir / "run.json")
    assert (report["sent"], report["variants"]) == (len(expected), len(sets))
    assert len(sets) < len(expected)


# --- Mailchimp, listmonk ---------------------------------------------------------------

MAILCHIMP_PREFS: dict[str, Sequence[str]] = {
    # From mailchimp-audience.csv's TAGS column.
    "nadia@example.org": ["Climate", "Local Government"],
    "Olu.Ade@example.org": ["Culture"],
    "pat@example.org": [],
}


@pytest.mark.parametrize(
    "lists",
    [["mailchimp-audience.csv", "mailchimp-unsubscribed.csv"],
     ["mailchimp-unsubscribed.csv", "mailchimp-audience.csv"]],
    ids=["audience-first", "unsubscribed-first"],
)
def test_mailchimp_unsubscribed_export_wins_in_any_letter_case(
    workdir: Path, smtp_server: FaultyServer, lists: list[str]
) -> None:
    # Olu.Ade@example.org is in the audience; OLU.ADE@EXAMPLE.ORG has unsubscribed.
    code, _, err = send(smtp_server, "--report", "run.json", lists=lists)
    assert code == 0, err
    expected = expected_deliveries(
        {k: v for k, v in MAILCHIMP_PREFS.items() if k != "Olu.Ade@example.org"})
    assert delivered(smtp_server) == expected
    assert set(expected) == {"nadia@example.org", "pat@example.org"}
    report = report_counts(workdir / "run.json")
    assert {k: report[k] for k in ("recipients", "sent", "skipped", "suppressed")} == {
        "recipients": 3, "sent": 2, "skipped": 0, "suppressed": 1}
    assert suppressions() == {
        "olu.ade@example.org": ("unsubscribed", "list:mailchimp-unsubscribed.csv")}


def test_mailchimp_cleaned_export_is_suppressed_as_bounced(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    # Pat@Example.org was cleaned (and is still in the audience as pat@example.org);
    # quinn@example.org is only in the cleaned export.
    code, _, err = send(smtp_server, "--report", "run.json",
                        lists=["mailchimp-audience.csv", "mailchimp-cleaned.csv"])
    assert code == 0, err
    expected = expected_deliveries(
        {k: v for k, v in MAILCHIMP_PREFS.items() if k != "pat@example.org"})
    assert delivered(smtp_server) == expected
    assert set(expected) == {"nadia@example.org", "olu.ade@example.org"}
    report = report_counts(workdir / "run.json")
    assert {k: report[k] for k in ("recipients", "sent", "suppressed")} == {
        "recipients": 4, "sent": 2, "suppressed": 2}
    assert suppressions() == {
        "pat@example.org": ("bounced", "list:mailchimp-cleaned.csv"),
        "quinn@example.org": ("bounced", "list:mailchimp-cleaned.csv"),
    }


@pytest.mark.parametrize(
    ("name", "prefs", "blocked"),
    [("listmonk-blocklist.csv",
      {"rae@example.org": ["Health"], "tia@example.org": ["Culture", "Climate"]},
      "sam@example.org"),
     ("listmonk-blocklisted-column.csv", {"uli@example.org": []}, "val@example.org")],
    ids=["status-column", "blocklisted-column"],
)
def test_listmonk_blocklisted_rows_are_not_mailed(
    workdir: Path, smtp_server: FaultyServer, name: str, prefs: dict[str, Sequence[str]],
    blocked: str,
) -> None:
    code, _, err = send(smtp_server, "--report", "run.json", lists=[name])
    assert code == 0, err
    assert delivered(smtp_server) == expected_deliveries(prefs)
    assert report_counts(workdir / "run.json")["suppressed"] == 1
    assert suppressions() == {blocked: ("unsubscribed", f"list:{name}")}


# --- bounces and suppressions between runs -------------------------------------------


def test_a_bounce_suppresses_the_address_for_later_campaigns(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("vic@example.org", 550, "no such user", times=5)
    code, _, err = send(smtp_server, lists=["bounce.csv"])
    assert code == 3, err
    assert set(delivered(smtp_server)) == {"uma@example.org", "wes@example.org"}
    assert suppressions() == {
        "vic@example.org": ("bounced", "campaign:2026-W48-bounce-all")}
    assert smtp_server.pending_faults == 4  # a 550 is tried once

    code, _, err = send(smtp_server, "--campaign", "other", lists=["bounce.csv"])
    assert code == 0, err
    assert smtp_server.pending_faults == 4  # not even a RCPT TO for them
    assert Counter(r for m in smtp_server.received for r in m.rcpt_tos) == Counter(
        {"uma@example.org": 2, "wes@example.org": 2})
    assert status("other")["counts"] == {"sent": 2, "suppressed": 1}
    assert replies(workdir, "other")["vic@example.org"] == ("suppressed", "bounced")


def test_suppressed_between_a_partial_run_and_the_rerun_is_not_mailed(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    smtp_server.fail_rcpt("yara@example.org", 451, "try again later")
    code, _, err = send(smtp_server, "--max-attempts", "1", lists=["deferred.csv"])
    assert code == 3, err
    campaign = "2026-W48-deferred-all"
    assert replies(workdir, campaign)["Yara@example.org"] == ("deferred", "try again later")

    assert run("suppress", "add", "YARA@example.org") == (
        0, "Suppressed 1 new addresses (0 already were).\n", "")
    code, out, err = send(smtp_server, lists=["deferred.csv"])
    assert (code, err) == (0, "")
    assert out == (f"Campaign {campaign} is already finished: nothing left to send "
                   "(2 sent, 1 suppressed).\n")
    assert set(delivered(smtp_server)) == {"xan@example.org", "zed@example.org"}
    assert replies(workdir, campaign)["Yara@example.org"] == ("suppressed", "manual")


def test_suppressed_and_gone_from_the_list_before_the_rerun_is_not_mailed(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    # As after a Mailchimp unsubscribe: the next audience export no longer has them,
    # but the journal still owes them the issue.
    smtp_server.fail_rcpt("yara@example.org", 451, "try again later")
    code, _, err = send(smtp_server, "--campaign", "w48", "--max-attempts", "1",
                        lists=["deferred.csv"])
    assert code == 3, err
    assert run("suppress", "add", "--reason", "unsubscribed", "yara@example.org")[0] == 0
    code, _, err = send(smtp_server, "--campaign", "w48", lists=["deferred-later.csv"])
    assert code == 0, err
    assert set(delivered(smtp_server)) == {"xan@example.org", "zed@example.org"}
    assert replies(workdir, "w48")["Yara@example.org"] == ("suppressed", "unsubscribed")
    assert status("w48")["counts"] == {"sent": 2, "suppressed": 1}


# --- duplicates across lists --------------------------------------------------------


def test_the_same_address_in_two_lists_in_another_case_is_mailed_once(
    workdir: Path, smtp_server: FaultyServer
) -> None:
    code, _, err = send(smtp_server, "--report", "run.json",
                        lists=["dup-first.csv", "dup-second.csv"])
    assert code == 0, err
    assert ("warning: skipped dup-second.csv:3: duplicate of ann.lee@example.org "
            "(first seen at dup-first.csv:2)") in err.splitlines()
    # The first occurrence counts, preferences included.
    first = our_list_prefs(workdir / "dup-first.csv")
    second = {k: v for k, v in our_list_prefs(workdir / "dup-second.csv").items()
              if k.casefold() != "ann.lee@example.org"}
    assert delivered(smtp_server) == expected_deliveries({**first, **second})
    rcpts = [r for m in smtp_server.received for r in m.rcpt_tos]
    assert "Ann.Lee@example.org" in rcpts
    assert report_counts(workdir / "run.json")["recipients"] == 3
