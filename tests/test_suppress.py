"""`digest suppress add|remove|list|import|export` and `digest subscribers check`, through
click's CliRunner: exit codes and exact messages."""

from __future__ import annotations

import csv
import io
import json
import shutil
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.audience.suppression import export_suppressions, spreadsheet_safe
from digest.state.store import open_store
from tests.helpers import (
    AS_OF,
    TESTS,
    invoke,
    known_slugs,
    known_tags_listing,
    run,
    slug,
    suppression_list,
)

FIXTURES = TESTS / "fixtures" / "campaign"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_HEADER = "email,reason,source,created_at\r\n"


pytestmark = pytest.mark.workdir(*FIXTURES.glob("*.csv"))


def run_bytes(*args: str) -> tuple[int, bytes, str]:
    """For CSV on stdout: click's Result.stdout turns CRLF into LF."""
    result = invoke(*args)
    return result.exit_code, result.stdout_bytes, result.stderr


def entries(*state: str) -> list[tuple[str, str, str]]:
    return [(e["email"], e["reason"], e["source"]) for e in suppression_list(*state)]


def export_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# --- add, remove, list ---------------------------------------------------------------


def test_add_with_a_reason_and_list_as_table_and_json(workdir: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    assert run("suppress", "add", "Someone@Example.ORG", "other@example.org",
               "--reason", "complained") == (
        0, "Suppressed 2 new addresses (0 already were).\n", "")
    # Already listed, in another case: it keeps its first reason.
    assert run("suppress", "add", "someone@example.org", "third@example.org") == (
        0, "Suppressed 1 new addresses (1 already were).\n", "")
    got = suppression_list()
    assert [(e["email"], e["reason"], e["source"]) for e in got] == [
        ("other@example.org", "complained", "manual"),
        ("Someone@example.org", "complained", "manual"),
        ("third@example.org", "manual", "manual"),
    ]
    for e in got:
        created = datetime.fromisoformat(e["created_at"])
        assert before <= created <= datetime.now(UTC) + timedelta(seconds=1)
    code, out, err = run("suppress", "list")
    assert (code, err) == (0, "")
    assert out == "".join(
        f"{e['email']:<40} {e['reason']:<13} {e['created_at']}  {e['source']}\n" for e in got)


@pytest.mark.parametrize(
    ("address", "why"),
    [("not-an-address", "An email address must have an @-sign."),
     ("@x@example.org", "There must be something before the @-sign.")],
)
def test_add_an_invalid_address_is_one_line_and_adds_nothing(
    workdir: Path, address: str, why: str
) -> None:
    code, out, err = run("suppress", "add", "good@example.org", address)
    assert (code, out) == (1, "")
    assert err == f"Error: {address!r} is not an email address: {why}\n"
    assert not (workdir / ".digest").exists()


def test_add_an_unknown_reason_is_a_usage_error(workdir: Path) -> None:
    code, _, err = run("suppress", "add", "a@example.org", "--reason", "spam")
    assert code == 2
    assert err.splitlines()[-1] == (
        "Error: Invalid value for '--reason' (env var: 'DIGEST_REASON'): 'spam' is not one of "
        "'unsubscribed', 'bounced', 'complained', 'manual'.")


def test_remove(workdir: Path) -> None:
    run("suppress", "add", "ann@example.org", "bob@example.org")
    assert run("suppress", "remove", "ANN@example.org", "nobody@example.org") == (
        0, "Removed 1 of 2 addresses from the suppression list.\n", "")
    assert entries() == [("bob@example.org", "manual", "manual")]


# --- import --------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "default"),
                         [((), "unsubscribed"), (("--reason", "manual"), "manual")])
def test_import_a_csv_with_email_and_reason(
    workdir: Path, flags: tuple[str, ...], default: str
) -> None:
    assert run("suppress", "import", "suppress-import.csv", *flags) == (
        0, "Imported 3 addresses from suppress-import.csv (3 new).\n", "")
    source = "import:suppress-import.csv"
    assert entries() == [
        ("one@example.org", "complained", source),
        ("three@example.org", "bounced", source),
        ("Two@example.org", default, source),  # no reason in the file: --reason
    ]
    assert run("suppress", "import", "suppress-import.csv") == (
        0, "Imported 3 addresses from suppress-import.csv (0 new).\n", "")


def test_import_with_a_bad_reason_names_the_line_and_imports_nothing(workdir: Path) -> None:
    run("suppress", "add", "kept@example.org")
    code, out, err = run("suppress", "import", "suppress-import-bad-reason.csv")
    assert (code, out) == (1, "")
    assert err == ("Error: suppress-import-bad-reason.csv:3: unknown reason 'spam'; "
                   "use one of unsubscribed, bounced, complained, manual\n")
    assert entries() == [("kept@example.org", "manual", "manual")]


def test_import_a_file_without_an_email_column(workdir: Path) -> None:
    code, _, err = run("suppress", "import", "unknown-header.csv")
    assert code == 1
    assert err == "Error: unknown-header.csv:1: has no 'email' column\n"
    assert not (workdir / ".digest").exists()


# --- export --------------------------------------------------------------------------


def test_export_to_a_file_and_to_stdout(workdir: Path) -> None:
    run("suppress", "add", "ann@example.org", "--reason", "complained")
    run("suppress", "import", "suppress-import.csv")
    got = suppression_list()
    expected = EXPORT_HEADER + "".join(
        f"{e['email']},{e['reason']},{e['source']},{e['created_at']}\r\n" for e in got)

    code, out, err = run("suppress", "export", "out.csv")
    assert (code, out, err) == (0, "", "Exported 4 addresses to out.csv.\n")
    assert (workdir / "out.csv").read_bytes() == expected.encode()
    assert run_bytes("suppress", "export") == (0, expected.encode(), "")
    assert run_bytes("suppress", "export", "-") == (0, expected.encode(), "")
    assert not list(workdir.glob(".out.csv*"))  # no temporary file left behind


def test_export_of_an_empty_list_is_just_the_header(workdir: Path) -> None:
    assert run_bytes("suppress", "export") == (0, EXPORT_HEADER.encode(), "")


# These are valid addresses (=, + and - are allowed in a local part) that a spreadsheet
# would run as formulas.
FORMULA_ADDRESSES = ("=cmd@example.org", "+x@example.org", "-x@example.org", "=1+2@example.org")


def test_export_defuses_addresses_that_look_like_formulas(workdir: Path) -> None:
    # "--": "-x@example.org" would be read as an option.
    code, _, err = run("suppress", "add", "--", *FORMULA_ADDRESSES)
    assert (code, err) == (0, "")
    code, out, _ = run("suppress", "export")
    assert code == 0
    rows = export_rows(out)
    assert rows[0] == ["email", "reason", "source", "created_at"]
    assert sorted(row[0] for row in rows[1:]) == sorted("'" + a for a in FORMULA_ADDRESSES)
    assert not [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]


def test_the_source_column_is_defused_too(workdir: Path, tmp_path: Path) -> None:
    # Through the CLI a source always starts with its kind ("import:", "list:", ...),
    # so a file named like a formula is harmless there...
    shutil.copy(workdir / "suppress-import-plain.csv", workdir / "=evil.csv")
    assert run("suppress", "import", "=evil.csv")[0] == 0
    code, out, _ = run("suppress", "export")
    assert code == 0
    assert [row[:3] for row in export_rows(out)[1:]] == [
        ["fresh@example.org", "unsubscribed", "import:=evil.csv"]]
    # ...and one that does start like a formula is defused like any other cell.
    buffer = io.StringIO()
    with closing(open_store(tmp_path / "lib-state")) as store:
        store.suppressions.add([("lib@example.org", "manual", '=HYPERLINK("http://evil.example")'),
                                ("tab@example.org", "manual", "\tx")])
    assert export_suppressions(tmp_path / "lib-state", buffer) == 2
    rows = export_rows(buffer.getvalue())
    assert [row[2] for row in rows[1:]] == ["'=HYPERLINK(\"http://evil.example\")", "'\tx"]


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=repr)
def test_spreadsheet_safe_prefixes_formula_starts(start: str) -> None:
    assert spreadsheet_safe(f"{start}SUM(A1:A9)") == f"'{start}SUM(A1:A9)"


@pytest.mark.parametrize("cell", ["ann@example.org", "", "'quoted", "a=b", " =x"])
def test_spreadsheet_safe_leaves_other_cells_alone(cell: str) -> None:
    assert spreadsheet_safe(cell) == cell


def test_export_re_imports_cleanly(workdir: Path) -> None:
    run("suppress", "add", "--reason", "complained", "--", *FORMULA_ADDRESSES)
    # An apostrophe is allowed in a local part too, first character included.
    run("suppress", "add", "--reason", "bounced", "'quoted@example.org", "o'neil@example.org")
    run("suppress", "import", "suppress-import.csv")
    assert run("suppress", "export", "out.csv")[0] == 0
    assert run("suppress", "import", "out.csv", "--state", "other") == (
        0, "Imported 9 addresses from out.csv (9 new).\n", "")
    assert [(e, r) for e, r, _ in entries("--state", "other")] == [
        (e, r) for e, r, _ in entries()]
    assert {s for _, _, s in entries("--state", "other")} == {"import:out.csv"}


# --- subscribers check ---------------------------------------------------------------


def check(*args: str) -> tuple[int, str, str]:
    return run("subscribers", "check", "--list", "check-digest.csv",
               "--list", "check-listmonk.csv", *args)


def check_problems() -> list[str]:
    slugs = known_slugs()
    assert "gardening" not in slugs
    return [
        "check-digest.csv:3: bad address 'not-an-address': An email address must have an "
        "@-sign.",
        f"warning: check-digest.csv:5: unknown tag preference 'gardening'; known tags: "
        f"{known_tags_listing(slugs)}",
        "check-digest.csv:7: bad status 'paused'; use subscribed, unsubscribed or leave it "
        "empty",
    ]


# check-digest.csv: ann (valid), a bad address, ANN again (duplicate), bob (valid, unknown
# tag), cy (unsubscribed), dee (bad status), eve (valid unless the suppression list has her).
# check-listmonk.csv: fay (valid), gus (blocklisted), Bob again (duplicate).
@pytest.mark.parametrize(("suppressed_in_state", "valid", "suppressed"),
                         [(False, 4, 2), (True, 3, 3)], ids=["no-state", "eve-in-state"])
def test_check_json_counts_formats_and_problems(
    workdir: Path, suppressed_in_state: bool, valid: int, suppressed: int
) -> None:
    if suppressed_in_state:
        run("suppress", "add", "EVE@example.org")
    code, out, err = check("--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "rows": 10, "valid": valid, "invalid": 2, "duplicate": 2, "suppressed": suppressed,
        "warnings": 1, "overrides": 0,
        "formats": {"check-digest.csv": "digest", "check-listmonk.csv": "listmonk"},
        "problems": check_problems(),
    }


def test_check_table(workdir: Path) -> None:
    run("suppress", "add", "eve@example.org")
    code, out, err = check()
    assert (code, err) == (0, "")
    assert out == (
        "rows               10\n"
        "valid               3\n"
        "invalid             2\n"
        "duplicate           2\n"
        "suppressed          3\n"
        "warnings            1\n"
        "overrides           0\n"
        "check-digest.csv: digest format\n"
        "check-listmonk.csv: listmonk format\n"
        "\n" + "".join(p + "\n" for p in check_problems())
    )


def test_check_reads_the_state_folder_it_is_given(workdir: Path) -> None:
    run("suppress", "add", "eve@example.org", "--state", "elsewhere")
    counts: dict[str, Any] = json.loads(check("--format", "json")[1])
    assert (counts["valid"], counts["suppressed"]) == (4, 2)
    counts = json.loads(check("--format", "json", "--state", "elsewhere")[1])
    assert (counts["valid"], counts["suppressed"]) == (3, 3)


@pytest.mark.parametrize(
    "lists",
    [["mailchimp-audience.csv", "mailchimp-unsubscribed.csv"],
     ["mailchimp-unsubscribed.csv", "mailchimp-audience.csv"]],
    ids=["audience-first", "unsubscribed-first"],
)
def test_check_counts_an_unsubscribe_in_a_later_file_as_a_send_would(
    workdir: Path, lists: list[str]
) -> None:
    # Olu.Ade@example.org is in the audience and, as OLU.ADE@EXAMPLE.ORG, unsubscribed:
    # a send never mails them, whichever file comes first.
    args = [arg for name in lists for arg in ("--list", name)]
    code, out, err = run("subscribers", "check", *args, "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "rows": 4, "valid": 2, "invalid": 0, "duplicate": 1, "suppressed": 1, "warnings": 0,
        "overrides": 0, "formats": dict.fromkeys(lists, "mailchimp"), "problems": [],
    }


def test_check_a_list_that_does_not_exist(workdir: Path) -> None:
    code, out, err = run("subscribers", "check", "--list", "check-digest.csv",
                         "--list", "missing.csv")
    assert (code, out) == (1, "")
    assert err == "Error: missing.csv: cannot be read: No such file or directory\n"


def test_check_a_list_with_an_unknown_header(workdir: Path) -> None:
    code, out, err = run("subscribers", "check", "--list", "unknown-header.csv")
    assert (code, out) == (1, "")
    assert err == (
        "Error: unknown-header.csv:1: unknown list format: no email column in "
        "'id,address,who'; expected email,name,tags,status (digest), "
        '"Email Address","First Name","Last Name",…,"TAGS" (Mailchimp export) '
        "or email,name,attributes (listmonk); --list-format forces one\n"
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_list_longer_than_a_page_gets_the_states_answers_on_every_page(
    workdir: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """A send and a check ask the state about a page of rows at a time (one round
    trip each to PostgreSQL): a suppression and a preference far down the list
    still reach their rows."""
    state = (request.getfixturevalue("postgres_url") if backend == "postgresql"
             else str(workdir / "state"))
    people = [f"reader{i:04d}@example.org" for i in range(1201)]
    (workdir / "long.csv").write_text("email\n" + "".join(p + "\n" for p in people))
    assert run("suppress", "add", people[1100].upper(), "--state", state)[0] == 0
    listed = json.loads(run("articles", "--format", "json", "--as-of", AS_OF)[1])
    tag = slug(listed[0]["tags"][0])  # not every article's: the reader gets a variant of their own
    with closing(open_store(state)) as store:
        store.preferences.set(people[700], (tag,), "web", "2026-11-28T09:00:00+00:00")
    code, out, err = run("subscribers", "check", "--list", "long.csv", "--state", state,
                         "--format", "json")
    assert (code, err) == (0, "")
    counts = json.loads(out)
    assert (counts["valid"], counts["suppressed"], counts["overrides"]) == (1200, 1, 1)
    code, out, err = run("send", "--as-of", AS_OF, "--list", "long.csv", "--state", state,
                         "--dry-run", "--report", "report.json")
    assert (code, err) == (0, "")
    report = json.loads((workdir / "report.json").read_text())
    assert (report["recipients"], report["suppressed"], report["skipped"]) == (1201, 1, 0)
    assert report["variants"] == 2
