"""Hostile input: nothing a file, a flag or the machine throws at digest may
crash it, hang it or exhaust memory. Each case ends in one line, naming the
file:line or the flag, and the exit code the README gives.

Cases that hung or exhausted memory before the fix run in a child process
with a timeout or an address-space limit, so a regression fails instead of
taking the suite down with it. Big and special files (FIFOs, symlink loops,
50 MB articles) are made at test time in tmp_path; small ones are fixtures
under tests/fixtures/hostile/.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest

from digest.content.articles import load_articles, load_bios
from digest.model import address_key, shown
from digest.state.store import open_store
from tests.helpers import AS_OF, REPO, TESTS, Mount, articles_folder, journal, run

HOSTILE = TESTS / "fixtures" / "hostile"
LISTS = TESTS / "fixtures" / "lists"
SAMPLE_ARTICLES = 9  # in the window that ends at AS_OF


def run_child(*args: str, limits: str = "",
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``digest ARGS`` in a child process of the working folder, after the Python
    statements in ``limits`` (resource limits): what hangs or blows up stays there."""
    code = ("import resource, sys\n" + limits +
            "from digest.cli.main import main\nsys.argv[0] = 'digest'\nmain()\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def articles_root(tmp_path: Path, *fixtures: str) -> Path:
    return articles_folder(tmp_path, HOSTILE, *fixtures)


def problems(root: Path) -> list[str]:
    return [str(problem).replace(f"{root}/", "") for problem in load_articles(root).problems]


# --- 1. YAML aliases that expand too far, and values quoted in messages ------------


def test_alias_bomb_in_front_matter_is_skipped_in_bounded_memory(workdir: Path) -> None:
    # ~500 bytes that expand to 10**9 values: before the fix, the warning's repr()
    # of the tags alone needed gigabytes. The child gets 1 GiB of address space.
    shutil.copy(HOSTILE / "alias-bomb.md", workdir / "articles")
    child = run_child("articles", "--as-of", AS_OF, "--format", "json",
                      limits="resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n")
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stderr == (
        "warning: skipped articles/alias-bomb.md:8: front matter uses YAML aliases that expand "
        "too far (more than 10,000 values); write the values out\n"
    )
    assert len(json.loads(child.stdout)) == SAMPLE_ARTICLES


def test_alias_bomb_in_the_authors_file_is_one_problem(tmp_path: Path) -> None:
    root = articles_root(tmp_path)
    shutil.copyfile(HOSTILE / "alias-bomb-authors.yaml", root / "authors.yaml")
    assert problems(root) == [
        "authors.yaml:4: uses YAML aliases that expand too far (more than 10,000 values); "
        "write the values out"
    ]
    # A few aliases are fine.
    (root / "authors.yaml").write_text(
        'common: &bio "Writes about the harbour."\nAmina Traoré: *bio\nBo Lindqvist: *bio\n',
        encoding="utf-8")
    assert load_bios(root)["Bo Lindqvist"] == "Writes about the harbour."


@pytest.mark.parametrize(("name", "message"), [
    ("long-url.md",
     "long-url.md:5: bad 'url': 'ftp://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…' is not an http(s) "
     "URL"),
    ("nested-tag.md",
     "nested-tag.md:4: bad 'tags': tag [[1, 2, 3, 4, ...], [1, 2, 3, 4, ...], [… is not text"),
    ("long-date.md",
     "long-date.md:4: bad 'date': '2026-11-24 2026-11-24 2026-11-24 2026-11…' is too long to "
     "be a date"),
    ("layout-long-byline.txt",
     "layout-long-byline.txt:6: expected a 'By: NAME' line, found 'Written by the harbour desk "
     "the harbour …'"),
])
def test_values_quoted_in_messages_are_cut_short(tmp_path: Path, name: str, message: str) -> None:
    root = articles_root(tmp_path, name)
    assert problems(root) == [message]


def test_shown_cuts_text_and_containers() -> None:
    assert shown("short") == "'short'"
    assert shown("x" * 1000) == repr("x" * 40 + "…")
    nested: list[object] = []
    for _ in range(1000):
        nested = [nested, nested]
    assert len(shown(nested)) <= 41  # the repr of 2**1000 lists, never built


# --- 2. Nesting too deep -----------------------------------------------------------


def test_deep_nesting_in_front_matter_is_one_warning(workdir: Path) -> None:
    shutil.copy(HOSTILE / "deep-tags.md", workdir / "articles")
    code, out, err = run("articles", "--as-of", AS_OF, "--format", "json")
    assert code == 0
    assert err == ("warning: skipped articles/deep-tags.md:5: front matter nests lists or "
                   "mappings more than 100 levels deep\n")
    assert len(json.loads(out)) == SAMPLE_ARTICLES


def test_deep_nesting_in_the_authors_file_is_one_problem(tmp_path: Path) -> None:
    root = articles_root(tmp_path)
    shutil.copyfile(HOSTILE / "deep-authors.yaml", root / "authors.yaml")
    assert problems(root) == [
        "authors.yaml:2: nests lists or mappings more than 100 levels deep"
    ]


def test_deep_nesting_in_the_config_file_is_one_error(workdir: Path) -> None:
    shutil.copy(HOSTILE / "deep.toml", workdir / "digest.toml")
    code, _, err = run("articles", "--as-of", AS_OF)
    assert (code, err) == (1, "Error: digest.toml: is not valid TOML: it nests too deeply\n")


# --- 3. Special files --------------------------------------------------------------


def test_symlink_loops_and_dangling_links_are_skipped(workdir: Path) -> None:
    articles = workdir / "articles"
    (articles / "loop.md").symlink_to("loop.md")
    (articles / "ping.md").symlink_to("pong.md")
    (articles / "pong.md").symlink_to("ping.md")
    (articles / "gone.md").symlink_to("nowhere.md")
    code, out, err = run("articles", "--as-of", AS_OF, "--format", "json")
    assert code == 0
    assert err.splitlines() == [
        "warning: skipped articles/gone.md: is a symlink to a file that does not exist; skipped",
        "warning: skipped articles/loop.md: is a symlink loop; skipped",
        "warning: skipped articles/ping.md: is a symlink loop; skipped",
        "warning: skipped articles/pong.md: is a symlink loop; skipped",
    ]
    assert len(json.loads(out)) == SAMPLE_ARTICLES


@pytest.mark.parametrize(("fifo", "args", "code", "err"), [
    ("articles/x.md", ["articles", "--as-of", AS_OF, "--format", "json"], 0,
     "warning: skipped articles/x.md: is not a regular file but a named pipe; skipped\n"),
    ("fifo.csv", ["subscribers", "check", "--list", "fifo.csv"], 1,
     "Error: fifo.csv: is not a regular file but a named pipe; give a CSV file\n"),
    ("fifo.toml", ["--config", "fifo.toml", "articles"], 1,
     "Error: fifo.toml: is not a regular file but a named pipe\n"),
    ("fifo.csv", ["suppress", "import", "fifo.csv"], 1,
     "Error: fifo.csv: cannot be read as UTF-8 CSV: is not a regular file but a named pipe\n"),
])
def test_a_named_pipe_never_blocks(workdir: Path, fifo: str, args: list[str], code: int,
                                   err: str) -> None:
    # Before the fix each of these blocked forever in open(); the timeout turns
    # that into a failure.
    os.mkfifo(workdir / fifo)
    child = run_child(*args, timeout=30)
    assert (child.returncode, child.stderr) == (code, err)


def test_a_named_pipe_as_the_authors_file_is_a_problem(tmp_path: Path) -> None:
    root = articles_root(tmp_path)
    os.mkfifo(root / "authors.yaml")
    assert problems(root) == ["authors.yaml: is not a regular file but a named pipe; skipped"]


def test_a_50_mb_article_is_skipped_from_its_size(tmp_path: Path) -> None:
    root = articles_root(tmp_path)
    with (root / "huge.md").open("wb") as huge:
        huge.truncate(50 << 20)  # sparse: no disk space, and never read
    shutil.copyfile(REPO / "articles" / "council-budget-vote.md", root / "small.md")
    result = load_articles(root)
    assert [str(p).replace(f"{root}/", "") for p in result.problems] == [
        "huge.md: is larger than 1 MiB (50 MiB); skipped"
    ]
    assert [a.source.name for a in result.articles] == ["small.md"]


def test_an_authors_file_over_10_mib_is_skipped(tmp_path: Path) -> None:
    root = articles_root(tmp_path)
    with (root / "authors.yaml").open("wb") as huge:
        huge.truncate((10 << 20) + 1)
    assert problems(root) == ["authors.yaml: is larger than 10 MiB (10 MiB); skipped"]


# --- 4. Non-finite and out-of-range numbers ---------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "nan"],
     "Error: Invalid value for '--rate' (env var: 'DIGEST_RATE'): 'nan' is not a finite "
     "number."),
    (["--retry-delay", "inf"],
     "Error: Invalid value for '--retry-delay' (env var: 'DIGEST_RETRY_DELAY'): 'inf' is not a "
     "finite number."),
    (["--timeout", "inf"],
     "Error: Invalid value for '--timeout' (env var: 'DIGEST_TIMEOUT'): 'inf' is not a finite "
     "number."),
    (["--timeout", "3601"],
     "Error: Invalid value for '--timeout' (env var: 'DIGEST_TIMEOUT'): 3601.0 is not in the "
     "range 0<x<=3600."),
    (["--retry-delay", "1e9"],
     "Error: Invalid value for '--retry-delay' (env var: 'DIGEST_RETRY_DELAY'): 1000000000.0 is "
     "not in the range 0<=x<=3600."),
])
def test_non_finite_and_huge_send_numbers_are_usage_errors(
    workdir: Path, args: list[str], message: str
) -> None:
    # --dry-run: before the fix, a real send with --rate nan waited forever.
    code, _, err = run("send", "--as-of", AS_OF, "--list", "subscribers.csv", "--dry-run", *args)
    assert code == 2
    assert err.splitlines()[-1] == message


@pytest.mark.parametrize(("toml", "message"), [
    # The README's examples, then the other float options.
    ("limit = inf\n", "bad value for 'limit': expected a finite number, not inf"),
    ("concurrency = 1.5\n", "bad value for 'concurrency': expected a whole number, not 1.5"),
    ('name = ["a", "b"]\n', "bad value for 'name': expected one value, not a list"),
    ("rate = nan\n", "bad value for 'rate': expected a finite number, not nan"),
    ("timeout = inf\n", "bad value for 'timeout': expected a finite number, not inf"),
    ("retry-delay = -inf\n", "bad value for 'retry-delay': expected a finite number, not -inf"),
    ("limit = true\n", "bad value for 'limit': expected a whole number, not true"),
    ('tag = [["climate"]]\n', "bad value for 'tag': expected a list of strings, not one "
                              "holding a list"),
])
def test_bad_numbers_and_lists_in_the_config_file(workdir: Path, toml: str, message: str) -> None:
    (workdir / "digest.toml").write_text(toml, encoding="utf-8")
    code, _, err = run("send", "--as-of", AS_OF, "--list", "subscribers.csv", "--dry-run")
    assert (code, err) == (1, f"Error: digest.toml: {message}\n")


# --- 6. A stray quote is one bad row ----------------------------------------------

STRAY = ("stray-quote-mid.csv:3: bad CSV: ',' expected after '\"'; a double quote inside a "
         'field must be doubled ("") and the whole field quoted')


def test_subscribers_check_reports_a_stray_quote_and_reads_on(workdir: Path) -> None:
    shutil.copy(LISTS / "stray-quote-mid.csv", workdir)
    code, out, _ = run("subscribers", "check", "--list", "stray-quote-mid.csv")
    assert code == 0
    assert out.splitlines() == [
        "rows                4", "valid               3", "invalid             1",
        "duplicate           0", "suppressed          0", "warnings            0",
        "overrides           0", "stray-quote-mid.csv: digest format", "", STRAY,
    ]


def test_send_skips_a_stray_quote_row_and_mails_the_rows_after_it(workdir: Path) -> None:
    shutil.copy(LISTS / "stray-quote-mid.csv", workdir)
    code, out, err = run("send", "--as-of", AS_OF, "--list", "stray-quote-mid.csv")
    assert code == 0
    assert err == f"warning: skipped {STRAY}\n"
    assert out == ("Sent 3 messages via maildir:outbox (campaign 2026-W48-stray-quote-mid-all; "
                   "now 3 sent).\n")
    assert len(list((workdir / "outbox" / "new").iterdir())) == 3


# --- 7. A TMPDIR that cannot take the de-duplication set --------------------------


def test_a_tmpdir_that_cannot_be_written_is_one_line_before_the_journal(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "file").write_text("not a folder\n", encoding="utf-8")
    # tempfile.tempdir is the process's TMPDIR once read; set it as TMPDIR would.
    monkeypatch.setattr(tempfile, "tempdir", str(workdir / "file" / "tmp"))
    code, _, err = run("send", "--as-of", AS_OF, "--list", "subscribers.csv")
    assert (code, err) == (
        1, f"Error: cannot write the temporary de-duplication set in TMPDIR "
           f"({workdir}/file/tmp): Not a directory; free space or set TMPDIR\n")
    assert deliveries(workdir) == 0
    assert not (workdir / "outbox").exists()


def deliveries(workdir: Path) -> int:
    """How many recipients the journal holds: none, when the list was never read."""
    if not (workdir / ".digest" / "journal.sqlite3").exists():
        return 0
    return len(journal(workdir, "status"))


@pytest.fixture
def tiny_tmpfs(tiny_disk: Mount) -> Path:
    """A 64 KiB tmpfs (see conftest's `tiny_disk`)."""
    return tiny_disk("tiny", 64)


def test_a_full_tmpdir_is_one_line(
    workdir: Path, tiny_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The set keeps where each address was first seen, so a list in a folder
    # with a long path fills its 2 MB page cache, and then the disk, in few rows.
    deep = Path(*["d" * 250] * 14)
    (workdir / deep).mkdir(parents=True)
    (workdir / deep / "list.csv").write_text(
        "email\n" + "".join(f"reader{i}@example.org\n" for i in range(1000)), encoding="utf-8")
    monkeypatch.setattr(tempfile, "tempdir", str(tiny_tmpfs))
    code, _, err = run("send", "--as-of", AS_OF, "--list", str(deep / "list.csv"),
                       "--campaign", "tiny")
    assert (code, err) == (
        1, f"Error: cannot write the temporary de-duplication set in TMPDIR ({tiny_tmpfs}): "
           "No space left on device; free space or set TMPDIR\n")
    assert deliveries(workdir) == 0
    assert not (workdir / "outbox").exists()


# --- 8. A suppression list that cannot be written ---------------------------------

# A file-size limit is a full disk that needs no mount: a write past it fails
# with EFBIG, and SQLite reports a disk I/O error.
FULL_DISK = "resource.setrlimit(resource.RLIMIT_FSIZE, (128 << 10, resource.RLIM_INFINITY))\n"
CANNOT_WRITE = ("Error: .digest/suppressions.sqlite3: cannot update the suppression list (disk "
                "I/O error); free space on its disk or fix the permissions of --state\n")


def test_suppress_add_on_a_full_disk_is_one_line(workdir: Path) -> None:
    assert run("suppress", "add", "first@example.org")[0] == 0
    many = [f"reader{i}.with.a.longer.name@example.org" for i in range(3000)]
    child = run_child("suppress", "add", *many, limits=FULL_DISK)
    assert (child.returncode, child.stdout, child.stderr) == (1, "", CANNOT_WRITE)


def test_send_with_a_suppression_list_that_cannot_be_written_is_one_line(workdir: Path) -> None:
    rows = "".join(f"leaver{i}.with.a.longer.name@example.org,,,unsubscribed\n"
                   for i in range(3000))
    (workdir / "leavers.csv").write_text("email,name,tags,status\nann@example.org,Ann,,\n" + rows,
                                         encoding="utf-8")
    child = run_child("send", "--as-of", AS_OF, "--list", "leavers.csv", limits=FULL_DISK)
    assert (child.returncode, child.stdout, child.stderr) == (1, "", CANNOT_WRITE)
    assert not (workdir / "outbox").exists()


# --- 9. Case-insensitive, but never merging two people ----------------------------


@pytest.mark.parametrize(("one", "other", "same"), [
    ("Ann@Example.org", "ann@example.org", True),
    ("ann@EXAMPLE.ORG", " ann@example.org ", True),
    ("strasse@example.org", "straße@example.org", False),
    ("Änne@example.org", "änne@example.org", False),
    ("änne@Example.ORG", "änne@example.org", True),
    ("A\u0308nne@example.org", "Änne@example.org", True),  # NFD and NFC
])
def test_address_key(one: str, other: str, same: bool) -> None:
    assert (address_key(one) == address_key(other)) is same


def test_strasse_and_strasse_with_eszett_are_two_people(workdir: Path) -> None:
    shutil.copy(HOSTILE / "strasse.csv", workdir)
    code, out, err = run("send", "--as-of", AS_OF, "--list", "strasse.csv")
    assert code == 0
    assert err == ("warning: skipped strasse.csv:5: duplicate of ann@example.org "
                   "(first seen at strasse.csv:4)\n")
    assert out == ("Sent 3 messages via maildir:outbox (campaign 2026-W48-strasse-all; "
                   "now 3 sent).\n")


def test_suppressing_one_does_not_suppress_the_other(workdir: Path) -> None:
    shutil.copy(HOSTILE / "strasse.csv", workdir)
    assert run("suppress", "add", "straße@example.org", "ANN@example.org")[0] == 0
    code, out, _ = run("send", "--as-of", AS_OF, "--list", "strasse.csv")
    assert code == 0
    assert out == ("Sent 1 messages via maildir:outbox (campaign 2026-W48-strasse-all; "
                   "now 1 sent, 2 suppressed).\n")
    (message,) = (workdir / "outbox" / "new").iterdir()
    assert b"To: Sascha Strasse <strasse@example.org>" in message.read_bytes()


def test_an_old_suppression_list_is_rekeyed_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with closing(sqlite3.connect(state / "suppressions.sqlite3")) as old, old:
        old.execute("CREATE TABLE suppressions (key TEXT PRIMARY KEY, email TEXT NOT NULL,"
                    " reason TEXT NOT NULL, source TEXT NOT NULL DEFAULT '',"
                    " created_at TEXT NOT NULL) WITHOUT ROWID")
        old.executemany("INSERT INTO suppressions VALUES (?, ?, 'manual', '', '2026-01-01')",
                        [(e.casefold(), e) for e in ("Straße@example.org", "Ann@example.org")])
    with closing(open_store(state)) as store:
        assert store.suppressions.reason("Straße@example.org") == "manual"
        assert store.suppressions.reason("strasse@example.org") is None
        assert store.suppressions.reason("ANN@example.org") == "manual"
