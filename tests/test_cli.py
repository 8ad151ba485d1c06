"""The command line, through click's CliRunner: exit codes and exact messages."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import AS_OF, REPO, run


def test_articles_json_lists_the_window_in_the_editors_order(workdir: Path) -> None:
    code, out, _ = run("articles", "--as-of", AS_OF, "--format", "json")
    assert code == 0
    items = json.loads(out)
    dates = [item["date"] for item in items]
    assert len(items) == 9
    assert [i["date"] for i in sorted(items, key=lambda i: i["date"])]  # ISO strings
    from datetime import datetime

    # The sample's featured story, then its two weighted ones (weight 1, 2), then the
    # rest newest first.
    assert [item["source"] for item in items[:3]] == [
        "articles/council-budget-vote.md", "articles/library-late-fees.md",
        "articles/harbour-wind-farm.md"]
    instants = [datetime.fromisoformat(d) for d in dates]
    assert instants[3:] == sorted(instants[3:], reverse=True)
    assert all(datetime.fromisoformat("2026-11-21T00:00:00+00:00") <= t for t in instants)
    assert all(t < datetime.fromisoformat("2026-11-28T00:00:00+00:00") for t in instants)
    keys = {"title", "author", "date", "tags", "section", "summary", "author_bio", "source"}
    assert all(keys <= item.keys() for item in items)


def test_tag_filter_is_case_insensitive(workdir: Path) -> None:
    code, out, _ = run("articles", "--as-of", AS_OF, "--format", "json", "--tag", "CLIMATE")
    assert code == 0
    items = json.loads(out)
    assert items and all("Climate" in item["tags"] for item in items)


def test_env_var_sets_an_option_and_a_flag_wins(workdir: Path) -> None:
    _, out, _ = run("articles", "--as-of", AS_OF, "--format", "json", env={"DIGEST_LIMIT": "2"})
    assert len(json.loads(out)) == 2
    _, out, _ = run("articles", "--as-of", AS_OF, "--format", "json", "--limit", "3",
                    env={"DIGEST_LIMIT": "2"})
    assert len(json.loads(out)) == 3


def test_config_file_sets_defaults(workdir: Path) -> None:
    (workdir / "digest.toml").write_text('limit = 1\nname = "Harbour Weekly"\n', encoding="utf-8")
    _, out, _ = run("articles", "--as-of", AS_OF, "--format", "json")
    assert len(json.loads(out)) == 1
    code, _, _ = run("build", "--as-of", AS_OF, "--out", "out")
    assert code == 0
    assert "Harbour Weekly" in (workdir / "out" / "digest.txt").read_text(encoding="utf-8")


def test_unknown_config_key_is_refused(workdir: Path) -> None:
    (workdir / "digest.toml").write_text('nmae = "x"\n', encoding="utf-8")
    code, _, err = run("articles", "--as-of", AS_OF)
    assert code == 1
    assert err.startswith("Error: digest.toml: unknown key 'nmae'; known keys: archive, "
                          "archive_url, articles, as_of,")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('limit = "ten"\n', "Error: digest.toml: bad value for 'limit': 'ten' is not a valid "
                             "integer range.\n"),
        ("tag = 5\n", "Error: digest.toml: bad value for 'tag': expected a list, e.g. "
                      'tag = ["first", "second"]\n'),
        ('since = "7x"\n', "Error: digest.toml: bad value for 'since': '7x' is neither a "
                           "duration (7d, 2w, 36h) nor an ISO date (2026-11-21)\n"),
    ],
)
def test_bad_config_values_name_the_file(workdir: Path, toml: str, message: str) -> None:
    (workdir / "digest.toml").write_text(toml, encoding="utf-8")
    code, _, err = run("articles", "--as-of", AS_OF)
    assert (code, err) == (1, message)


def test_a_single_tag_in_the_config_is_a_list_of_one(workdir: Path) -> None:
    (workdir / "digest.toml").write_text('tag = "culture"\n', encoding="utf-8")
    _, out, _ = run("articles", "--as-of", AS_OF, "--format", "json")
    items = json.loads(out)
    assert items and all("Culture" in item["tags"] for item in items)


def test_build_writes_three_files(workdir: Path) -> None:
    code, out, _ = run("build", "--as-of", AS_OF, "--out", "build")
    assert code == 0
    assert out.splitlines()[0] == "Built a digest of 9 articles:"
    html = (workdir / "build" / "digest.html").read_text(encoding="utf-8")
    assert "Hi Sample Reader," in html and "\ue000" not in html
    message = email.message_from_bytes(
        (workdir / "build" / "sample.eml").read_bytes(), policy=email.policy.default
    )
    assert message["To"] == "Sample Reader <reader@example.org>"


def test_non_ascii_names_and_titles_are_encoded_in_headers(workdir: Path) -> None:
    code, _, err = run("build", "--as-of", AS_OF, "--out", "build", "--name", "Café Weekly",
                       "--from", "Zoë’s Desk <desk@example.org>",
                       "--subject", "{{ name }}, {{ date }}: {{ lead.title }}")
    assert code == 0, err
    data = (workdir / "build" / "sample.eml").read_bytes()
    assert data.isascii()
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"].startswith("Café Weekly, November 28, 2026: ")
    assert message["From"].addresses[0].display_name == "Zoë’s Desk"


def test_send_fills_the_maildir_with_parseable_messages(workdir: Path) -> None:
    code, out, _ = run("send", "--as-of", AS_OF, "--list", "subscribers.csv",
                       "--transport", "maildir:box")
    assert code == 0
    assert out == ("Sent 5 messages via maildir:box "
                   "(campaign 2026-W48-subscribers-all; now 5 sent, 1 suppressed).\n")
    files = sorted((workdir / "box" / "new").iterdir())
    assert len(files) == 5
    assert not list((workdir / "box" / "tmp").iterdir())
    recipients = set()
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(message["To"].addresses[0].addr_spec)
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        lead = re.sub(r" and \d+ more$", "", message["Subject"])
        assert lead in message.get_body(("plain",)).get_content()
        assert lead in message.get_body(("html",)).get_content()
    assert len(recipients) == 5


def test_dry_run_delivers_nothing(workdir: Path) -> None:
    code, out, _ = run("send", "--as-of", AS_OF, "--list", "subscribers.csv",
                       "--transport", "maildir:box", "--dry-run")
    assert code == 0
    assert out == ("Dry run: would send 5 messages (9 articles, 4 variants) via maildir:box, "
                   "campaign 2026-W48-subscribers-all; 5 pending, 1 suppressed. "
                   "Nothing was delivered.\n")
    assert not (workdir / ".digest").exists()
    assert not (workdir / "box").exists()


def test_no_articles_sends_nothing(workdir: Path) -> None:
    code, out, _ = run("send", "--as-of", "2020-01-01", "--list", "subscribers.csv",
                       "--transport", "maildir:box")
    assert (code, out) == (0, "No articles selected; nothing sent.\n")
    assert not (workdir / "box").exists()


def test_bad_article_is_a_warning_and_strict_makes_it_an_error(workdir: Path) -> None:
    shutil.copy(REPO / "tests" / "fixtures" / "cli" / "broken-date.md", workdir / "articles")
    code, _, err = run("articles", "--as-of", AS_OF, "--format", "json")
    assert code == 0
    assert err == (
        "warning: skipped articles/broken-date.md:3: bad 'date': 'next tuesday' is not an "
        "ISO 8601 date or datetime (e.g. 2026-11-24 or 2026-11-24T09:15:00+01:00)\n"
    )
    code, _, err = run("articles", "--as-of", AS_OF, "--strict")
    assert code == 1
    assert err == (
        "Error: articles/broken-date.md:3: bad 'date': 'next tuesday' is not an "
        "ISO 8601 date or datetime (e.g. 2026-11-24 or 2026-11-24T09:15:00+01:00)\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["articles", "--since", "7x"],
         2, ("Error: Invalid value for '--since' (env var: 'DIGEST_SINCE'): '7x' is neither a "
            "duration (7d, 2w, 36h) nor an ISO date (2026-11-21)")),
        (["articles", "--as-of", "2026-11-28T10:00"],
         2, ("Error: Invalid value for '--as-of' (env var: 'DIGEST_AS_OF'): '2026-11-28T10:00' "
            "has no time-zone offset; add one, e.g. 2026-11-28T10:00:00+00:00")),
        (["articles", "--articles", "missing"],
         1, "Error: missing: not a folder; point --articles at your articles folder"),
        (["send", "--as-of", AS_OF, "--list", "missing.csv"],
         1, "Error: missing.csv: cannot be read: No such file or directory"),
        (["send", "--as-of", AS_OF, "--list", "subscribers.csv", "--transport", "carrier:pigeon"],
         1, ("Error: --transport: unknown transport 'carrier:pigeon'; use maildir:PATH, "
            "smtp://[user@]host[:port] or smtps://[user@]host[:port]")),
        (["build", "--as-of", AS_OF, "--templates", "missing"],
         1, "Error: --templates: missing is not a folder; point it at a folder of templates"),
        (["build", "--as-of", AS_OF, "--from", "a@example.org, b@example.org"],
         1, "Error: --from: 'a@example.org, b@example.org' must be exactly one address"),
        (["build", "--as-of", AS_OF, "--from", "nobody"],
         1, ("Error: --from: from address 'nobody' is not an address; set it like "
            "'Harbour Weekly <news@example.org>'")),
    ],
)
def test_bad_input_gets_one_clear_line(
    workdir: Path, args: list[str], code: int, message: str
) -> None:
    exit_code, _, err = run(*args)
    assert exit_code == code
    assert err.strip().splitlines()[-1] == message
    assert "Traceback" not in err


def test_help_shows_examples_and_env_vars() -> None:
    code, out, _ = run("send", "--help")
    assert code == 0
    assert "digest send --since 7d --list subscribers.example.csv" in out
    assert "DIGEST_TRANSPORT" in out


def test_config_reaches_subcommands_of_groups(workdir: Path) -> None:
    (workdir / "digest.toml").write_text('state = "st"\n', encoding="utf-8")
    code, _, _ = run("suppress", "add", "ben.holloway@example.com")
    assert code == 0
    assert (workdir / "st" / "suppressions.sqlite3").is_file()
    assert not (workdir / ".digest").exists()
    _, out, _ = run("subscribers", "check", "--list", "subscribers.csv", "--format", "json")
    assert json.loads(out)["suppressed"] == 2


def test_dry_run_after_a_send_knows_who_already_got_it(workdir: Path) -> None:
    assert run("send", "--as-of", AS_OF, "--list", "subscribers.csv")[0] == 0
    code, out, _ = run("send", "--as-of", AS_OF, "--list", "subscribers.csv", "--dry-run")
    assert code == 0
    assert out == ("Dry run: would send 0 messages (9 articles, 4 variants) via maildir:outbox, "
                   "campaign 2026-W48-subscribers-all; 5 sent, 1 suppressed. "
                   "Nothing was delivered.\n")
