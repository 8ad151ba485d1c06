"""What only a PostgreSQL state has: its URL and password handling, its schema's
versions and `digest state migrate`, `digest state copy` between a folder and a
database, and a real `digest send` into one. Everything runs against the real
throwaway cluster of tests/postgres.py; tests/test_store.py runs the store's
own tests on both backends."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from bench.pgcluster import Cluster
from digest.errors import DigestError
from digest.state.copy import _reading
from digest.state.records import CampaignRecord, Entry, Update, stamp
from digest.state.store import open_store
from tests.helpers import AS_OF, digest_env, run, wait_for
from tests.postgres import PG_PASSWORD, PG_PASSWORD_ROLE

QUEUED = "2026-11-28T09:00:00+00:00"
TABLES = ("campaigns", "deliveries", "suppressions", "preferences", "bounce_scores",
          "inbox_messages")


@pytest.fixture(autouse=True)
def no_ambient_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No password from this machine's environment or ~/.pgpass: each test gives its own."""
    for name in ("PGPASSWORD", "DIGEST_STATE_PASSWORD", "PGSERVICE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def with_user(url: str, user: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}@{rest.partition('@')[2]}"


def populate(location: Path | str) -> None:
    """A state with a row in every table, an issue closed and a journal row of each kind."""
    with closing(open_store(location)) as store:
        journal = store.journal
        journal.pin(CampaignRecord("c1", "sel", QUEUED, series="s", as_of=QUEUED,
                                   definition='{"limit": 3}'))
        journal.pin(CampaignRecord("c0", "old", QUEUED, series="s", as_of="2026-11-21"))
        journal.close_campaign("c0", "superseded", QUEUED)
        journal.add("c1", [Entry(f"{who}@example.org", who.title(), "budget;climate",
                                 f"<{who}@example.org>", "pending", None)
                           for who in ("ann", "bo", "cy", "dee")], queued_at=QUEUED)
        journal.add("c1", [Entry("eve@example.org", "", "", "<eve>", "skipped", "tags")],
                    queued_at=QUEUED)
        journal.apply("c1", [Update("ann@example.org", "sent", 250, "ok", attempted=True),
                             Update("bo@example.org", "failed", 550, "no such user",
                                    attempted=True, bounced=True),
                             Update("cy@example.org", "inflight")])
        store.suppressions.add([("Gone@Example.org", "unsubscribed", "web:c1")])
        store.preferences.set("dee@example.org", ("budget",), "web:c1", QUEUED)
        store.bounces.set_score("bo@example.org", 2.5, QUEUED)
        store.bounces.record("<bounce-1@mx>", "hard", ("c1", "bo@example.org"), QUEUED)


def folder_tables(folder: Path) -> dict[str, list[tuple[object, ...]]]:
    tables = {}
    for table in TABLES:
        name = "journal.sqlite3" if table in ("campaigns", "deliveries") else \
            "suppressions.sqlite3"
        with closing(sqlite3.connect(folder / name)) as db:
            tables[table] = sorted(db.execute(f"SELECT * FROM {table}"), key=repr)
    return tables


def test_copy_moves_every_table_into_postgresql_and_back(
        workdir: Path, postgres_url: str) -> None:
    populate(workdir / "state")
    before = folder_tables(workdir / "state")
    assert all(before.values()), "every table must hold a row for this test to mean anything"
    code, out, err = run("state", "copy", "state", postgres_url)
    assert (code, err) == (0, ""), err
    assert out == (f"Copied state into {postgres_url}:\n  campaigns              2\n"
                   "  deliveries             5\n  suppressions           1\n"
                   "  preferences            1\n  bounce_scores          1\n"
                   "  inbox_messages         1\n")
    with closing(open_store(postgres_url, readonly=True)) as store:
        assert store.journal.counts("c1") == {"sent": 1, "failed": 1, "inflight": 1,
                                              "pending": 1, "skipped": 1}
        assert store.preferences.get("DEE@example.org") == ("budget",)
    code, out, err = run("state", "copy", postgres_url, "back")
    assert (code, err) == (0, ""), err
    assert out.startswith(f"Copied {postgres_url} into back:\n")
    assert folder_tables(workdir / "back") == before


def test_copy_refuses_a_destination_that_holds_a_state(workdir: Path, postgres_url: str) -> None:
    populate(workdir / "state")
    populate(postgres_url)
    code, out, err = run("state", "copy", "state", postgres_url)
    assert (code, out) == (1, "")
    assert err == (f"Error: copy: {postgres_url} already holds a state; copy into an empty "
                   "database or a new folder\n")
    code, _, err = run("state", "copy", postgres_url, "state")
    assert (code, err) == (1, "Error: copy: state already holds a state; copy into an empty "
                              "database or a new folder\n")


def test_copy_between_two_spellings_of_one_database_is_refused(postgres_url: str) -> None:
    populate(postgres_url)
    assert "@127.0.0.1:" in postgres_url
    other = postgres_url.replace("@127.0.0.1:", "@localhost:")
    code, out, err = run("state", "copy", postgres_url, other)
    assert (code, out) == (1, "")
    assert err == (f"Error: copy: {postgres_url} and {other} name one database: it is both "
                   "the source and the destination\n")


def test_copy_into_an_empty_private_folder_keeps_it_private(workdir: Path,
                                                           postgres_url: str) -> None:
    populate(postgres_url)
    (workdir / "private").mkdir(mode=0o700)
    code, _, err = run("state", "copy", postgres_url, "private")
    assert (code, err) == (0, ""), err
    assert (workdir / "private").stat().st_mode & 0o777 == 0o700
    assert all(folder_tables(workdir / "private").values())


def test_copy_through_a_symlink_fills_the_folder_it_names(workdir: Path,
                                                         postgres_url: str) -> None:
    populate(postgres_url)
    (workdir / "real").mkdir()
    (workdir / "link").symlink_to("real")
    code, _, err = run("state", "copy", postgres_url, "link")
    assert (code, err) == (0, ""), err
    assert (workdir / "link").is_symlink()
    assert all(folder_tables(workdir / "real").values())


def test_copy_out_of_an_empty_database_creates_nothing_there(workdir: Path,
                                                            postgres_url: str) -> None:
    code, out, err = run("state", "copy", postgres_url, "out")
    assert (code, out) == (1, "")
    assert err == f"Error: copy: {postgres_url} holds no state: there is nothing to copy\n"
    assert not (workdir / "out").exists()
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname='public'"
                          ).fetchone() == (0,)


def test_a_source_row_that_cannot_be_read_stops_the_copy_in_one_line(
    workdir: Path, postgres_url: str,
) -> None:
    populate(workdir / "state")
    with closing(sqlite3.connect(workdir / "state" / "journal.sqlite3")) as db, db:
        db.execute("UPDATE deliveries SET name=CAST(x'41ff42' AS TEXT) WHERE email LIKE 'bo@%'")
    code, out, err = run("state", "copy", "state", postgres_url)
    assert (code, out) == (1, "")
    assert err.startswith("Error: state: the source could not be read (Could not decode to ")
    assert err.endswith("); nothing was copied\n") and err.count("\n") == 1
    with closing(open_store(postgres_url, readonly=True)) as store:
        assert store.is_empty()  # type: ignore[attr-defined]


def test_a_folder_is_copied_from_one_snapshot(workdir: Path) -> None:
    """An unsubscribe that `digest serve` writes while the copy reads is in all of
    the copy or none of it, never in the tables read after it."""
    populate(workdir / "state")
    with _reading(workdir / "state") as rows:
        with closing(open_store(workdir / "state")) as store:
            store.suppressions.add([("late@example.org", "unsubscribed", "web:c1")])
        assert [row[0] for row in rows("suppressions")] == ["gone@example.org"]


def test_a_copy_killed_mid_way_leaves_nothing_for_the_next_one(workdir: Path,
                                                               postgres_url: str) -> None:
    populate(postgres_url)
    # As copies killed with kill -9 left them; one with this pid, as in a container, where
    # every run may be pid 1.
    for pid in (_a_dead_pid(), os.getpid()):
        left = workdir / f".out.copying-{pid}"
        left.mkdir()
        (left / "journal.sqlite3").write_bytes(b"half")
    code, _, err = run("state", "copy", postgres_url, "out")
    assert (code, err) == (0, ""), err
    assert sorted(p.name for p in workdir.iterdir() if "out" in p.name) == ["out"]


def _a_dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_copy_names_the_argument_whose_database_is_unreachable(workdir: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"postgresql://digest@127.0.0.1:{probe.getsockname()[1]}/news"
    code, out, err = run("state", "copy", url, "out")
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: SRC: cannot connect to {url} (") and err.count("\n") == 1
    populate(workdir / "state")
    code, _, err = run("state", "copy", "state", url)
    assert err.startswith(f"Error: DST: cannot connect to {url} (")


def test_a_libpq_keyword_string_is_refused_not_taken_for_a_folder(workdir: Path) -> None:
    code, _, err = run("state", "copy", "target_session_attrs=any host=db", "out")
    assert code == 2
    assert err.endswith(
        "Error: Invalid value for 'SRC': a libpq keyword string is not taken here; give the "
        "database as a URL, e.g. postgresql://digest@db.example.org:5432/news (the password "
        "from PGPASSWORD, ~/.pgpass or DIGEST_STATE_PASSWORD)\n")
    assert not list(workdir.glob("host=*"))


def test_migrate_says_a_folder_is_not_there_yet(workdir: Path) -> None:
    assert run("state", "migrate", "--state", "nowhere") == (
        0, "Nothing to migrate: there is no state at nowhere yet. A state folder is made, "
           "and its files upgrade themselves, when a command opens it.\n", "")
    assert not (workdir / "nowhere").exists()


@pytest.mark.parametrize("mistyped", ["psql://digest@db/news", "postgresq://digest@db/news"])
def test_a_url_of_another_scheme_is_refused_not_taken_for_a_folder(
    workdir: Path, mistyped: str,
) -> None:
    scheme = mistyped.partition("://")[0]
    code, _, err = run("state", "migrate", "--state", mistyped)
    assert code == 2
    assert err.endswith(
        f"\n\nError: Invalid value for '--state' (env var: 'DIGEST_STATE'): {scheme}:// is not a "
        "state: give a state folder or a postgresql://user@host/db URL\n")
    assert not list(workdir.glob("ps*"))


def test_a_file_is_refused_as_a_state_folder(workdir: Path) -> None:
    (workdir / "notes.txt").write_text("not a state\n")
    code, _, err = run("state", "migrate", "--state", "notes.txt")
    assert code == 2
    assert err.endswith("Error: Invalid value for '--state' (env var: 'DIGEST_STATE'): notes.txt "
                        "is a file, not a state folder: give a state folder (made if missing) "
                        "or a postgresql:// URL\n")
    assert (workdir / "notes.txt").read_text() == "not a state\n"


def test_a_copy_into_a_folder_it_cannot_make_names_dst(workdir: Path) -> None:
    populate(workdir / "state")
    (workdir / "afile").write_text("not a folder\n")
    assert run("state", "copy", "state", "afile/out") == (
        1, "", "Error: cannot use the state folder afile/out: Not a directory; check DST\n")


def test_the_default_state_folder_is_checked_too(workdir: Path) -> None:
    (workdir / ".digest").write_text("not a state\n")
    code, _, err = run("status")
    assert code == 2
    assert err.endswith("Error: Invalid value for '--state' (env var: 'DIGEST_STATE'): .digest "
                        "is a file, not a state folder: give a state folder (made if missing) "
                        "or a postgresql:// URL\n")


def test_a_state_folder_that_cannot_be_looked_at_gets_one_line_not_a_traceback(
    workdir: Path,
) -> None:
    name = "s" * 300  # ENAMETOOLONG, as EACCES would be under a folder of another user
    code, _, err = run("state", "migrate", "--state", name)
    assert (code, err) == (1, f"Error: --state: cannot look into {name}: File name too long\n")
    code, _, err = run("suppress", "list", "--state", name)
    assert code == 1
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_an_empty_state_argument_is_refused(workdir: Path) -> None:
    code, _, err = run("state", "copy", "state", "")
    assert code == 2
    assert err.endswith("Error: Invalid value for 'DST': it is empty; give a state folder or a "
                        "postgresql:// URL\n")
    assert list(workdir.glob("lock")) == []


def test_two_large_suppression_adds_at_once_both_land(postgres_url: str) -> None:
    """Two imports of 3,000 addresses each, in opposite orders, at once. Inserted a
    batch at a time, each held the other's next batch locked, and the server failed
    one for a deadlock. Now each is inserted in one statement, in key order."""
    def addresses(prefix: str) -> list[tuple[str, str, str]]:
        return [(f"{prefix}{n:04d}@example.org", "unsubscribed", "import") for n in range(1500)]

    paused, resume = threading.Event(), threading.Event()

    def first() -> Iterator[tuple[str, str, str]]:
        yield from addresses("m")
        paused.set()
        resume.wait(30)
        yield from addresses("a")

    def second() -> Iterator[tuple[str, str, str]]:
        yield from addresses("a")
        yield from addresses("m")

    added: dict[str, int | DigestError] = {}

    def add(name: str, entries: Iterator[tuple[str, str, str]]) -> None:
        with closing(open_store(postgres_url)) as store:
            try:
                added[name] = store.suppressions.add(entries)
            except DigestError as exc:
                added[name] = exc

    with closing(open_store(postgres_url)):
        pass  # the schema, made before either add
    one = threading.Thread(target=add, args=("first", first()))
    one.start()
    assert paused.wait(30)
    two = threading.Thread(target=add, args=("second", second()))
    two.start()
    with psycopg.connect(postgres_url, autocommit=True) as db:
        wait_for("the second add to end or wait on the first", lambda: not two.is_alive() or
                 db.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
                 != (0,))
    resume.set()
    one.join(60)
    two.join(60)
    assert [type(added[name]) for name in ("first", "second")] == [int, int], added
    assert sum(added.values()) == 3000  # type: ignore[arg-type]
    with closing(open_store(postgres_url, readonly=True)) as store:
        assert store.suppressions.reason("a0000@example.org") == "unsubscribed"
        assert store.suppressions.reason("m1499@example.org") == "unsubscribed"


def test_a_lock_whose_connection_was_cut_lets_the_real_error_through(
    postgres_url: str, pg_cluster: Cluster,
) -> None:
    # As in a copy, whose destination is locked by one connection and written by another.
    database = postgres_url.rsplit("/", 1)[1]
    with (closing(open_store(postgres_url)) as locked,
          closing(open_store(postgres_url)) as used,
          pytest.raises(DigestError, match="could not be read"), locked.lock()):
        pg_cluster.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           f" WHERE datname = '{database}' AND pid <> pg_backend_pid()")
        used.journal.counts("c1")  # the error the run stops with, not the unlock's


def test_migrate_creates_the_schema_once(workdir: Path, postgres_url: str) -> None:
    assert run("state", "migrate", "--state", postgres_url) == (
        0, f"Migrated {postgres_url} from 0 to 1.\n", "")
    assert run("state", "migrate", "--state", postgres_url) == (
        0, "Already at version 1.\n", "")


def test_any_command_creates_the_schema_of_an_empty_database(
        workdir: Path, postgres_url: str) -> None:
    assert run("suppress", "add", "ann@example.org", "--state", postgres_url)[0] == 0
    assert run("state", "migrate", "--state", postgres_url) == (
        0, "Already at version 1.\n", "")


@pytest.mark.parametrize(("version", "message"), [
    (0, "{url} holds schema version 0, this digest needs 1; run 'digest state migrate "
        "--state {url}'"),
    (2, "{url} holds schema version 2, newer than this digest knows (1); upgrade digest"),
])
def test_a_schema_of_another_version_is_refused(
        workdir: Path, postgres_url: str, version: int, message: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (%s)", (version,))
    code, out, err = run("status", "--state", postgres_url)
    assert (code, out, err) == (1, "", f"Error: --state: {message.format(url=postgres_url)}\n")
    if version == 0:
        assert run("state", "migrate", "--state", postgres_url) == (
            0, f"Migrated {postgres_url} from 0 to 1.\n", "")
        assert run("status", "--state", postgres_url)[2] == (
            "Error: --state: no journal in "
            f"{postgres_url}; nothing has been sent from here yet\n")
    else:
        assert run("state", "migrate", "--state", postgres_url)[::2] == (
            1, f"Error: --state: {message.format(url=postgres_url)}\n")


def test_a_password_in_the_url_is_refused_and_never_shown(workdir: Path,
                                                          postgres_url: str) -> None:
    for url in (postgres_url.replace("digest@", "digest:s3cret@"),
                f"{postgres_url}?password=s3cret"):
        code, out, err = run("status", "--state", url)
        assert (code, out) == (2, "")
        assert err.endswith("Error: Invalid value for '--state' (env var: 'DIGEST_STATE'): "
                            "a password in the URL is refused; put it in PGPASSWORD, "
                            "~/.pgpass or DIGEST_STATE_PASSWORD\n")
        assert "s3cret" not in err
    code, _, err = run("status", env={"DIGEST_STATE": postgres_url.replace("@", ":s3cret@")})
    assert code == 2 and "s3cret" not in err


def test_the_password_comes_from_digest_state_password(workdir: Path,
                                                       postgres_url: str) -> None:
    url = with_user(postgres_url, PG_PASSWORD_ROLE)
    port = url.rsplit(":", 1)[1].partition("/")[0]
    code, out, err = run("suppress", "add", "ann@example.org", "--state", url)
    assert (code, out) == (1, "")
    assert err == (f"Error: --state: cannot connect to {url} (connection to server at "
                   f"\"127.0.0.1\", port {port} failed: fe_sendauth: no password supplied); "
                   "set DIGEST_STATE_PASSWORD, PGPASSWORD or ~/.pgpass for this user\n")
    code, _, err = run("suppress", "add", "ann@example.org", "--state", url,
                       env={"DIGEST_STATE_PASSWORD": "wrong horse"})
    assert code == 1 and "password authentication failed" in err and "horse" not in err
    code, out, err = run("suppress", "add", "ann@example.org", "--state", url,
                         env={"DIGEST_STATE_PASSWORD": PG_PASSWORD})
    assert (code, err) == (0, ""), err
    with closing(open_store(postgres_url)) as store:
        assert store.suppressions.reason("ann@example.org") == "manual"


def test_a_server_that_is_not_there_is_one_line(workdir: Path, pg_cluster: Cluster) -> None:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        url = f"postgresql://digest@127.0.0.1:{port}/news"
        code, out, err = run("status", "--state", url)
    assert (code, out) == (1, "")
    assert err == (f"Error: --state: cannot connect to {url} (connection to server at "
                   f"\"127.0.0.1\", port {port} failed: Connection refused); check that "
                   "PostgreSQL runs there and accepts connections\n")
    url = pg_cluster.url("nosuchdb")
    assert run("status", "--state", url)[2] == (
        f"Error: --state: cannot connect to {url} (connection to server at \"127.0.0.1\", "
        f"port {pg_cluster.port} failed: FATAL:  database \"nosuchdb\" does not exist); "
        "create the database and role first, or fix the URL\n")


def sent_to(box: Path) -> list[str]:
    found = []
    for path in (box / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append(message["To"].addresses[0].addr_spec)
    return sorted(found)


def test_a_send_into_postgresql_mails_everyone_once(workdir: Path, postgres_url: str) -> None:
    args = ("send", "--as-of", AS_OF, "--list", "subscribers.csv", "--transport",
            "maildir:box", "--state", postgres_url)
    assert run(*args) == (0, "Sent 5 messages via maildir:box (campaign "
                             "2026-W48-subscribers-all; now 5 sent, 1 suppressed).\n", "")
    first = sent_to(workdir / "box")
    assert len(set(first)) == 5
    assert run(*args) == (0, "Campaign 2026-W48-subscribers-all is already finished: "
                             "nothing left to send (5 sent, 1 suppressed).\n", "")
    assert sent_to(workdir / "box") == first
    assert not (workdir / ".digest").exists()
    code, out, _ = run("status", "--state", postgres_url, "--format", "json")
    assert code == 0 and '"sent": 5' in out


@pytest.fixture
def held(postgres_url: str) -> Iterator[None]:
    with closing(open_store(postgres_url)) as store, store.lock():
        yield


def test_an_exclusive_holder_keeps_a_send_out_with_75(workdir: Path, postgres_url: str,
                                                      held: None) -> None:
    # Sends share a PostgreSQL state; `digest state copy` and `campaign close` hold it alone.
    code, out, err = run("send", "--as-of", AS_OF, "--list", "subscribers.csv",
                         "--transport", "maildir:box", "--state", postgres_url)
    assert (code, out) == (75, "")
    assert err.startswith(f"Error: another digest run holds {postgres_url} (digest pid ")
    assert err.endswith("); it is still running, so this run stops here. Try again when it "
                        "has finished.\n")
    assert not (workdir / "box").exists()


def test_a_readonly_look_at_an_empty_database_creates_nothing(postgres_url: str) -> None:
    with closing(open_store(postgres_url, readonly=True)) as store:
        assert not store.has_journal()
        assert store.journal.campaigns() == []
        assert store.journal.still_to_do("c1", "a@example.org") == (True, None)
        assert store.suppressions.reason("a@example.org") is None
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname='public'"
                          ).fetchone() == (0,)


def test_a_readonly_store_writes_nothing(postgres_url: str) -> None:
    populate(postgres_url)
    with closing(open_store(postgres_url, readonly=True)) as store:
        assert store.has_journal() and not store.journal.writable
        assert store.journal.counts("c1")["inflight"] == 1
        with pytest.raises(DigestError, match="the journal could not be written"):
            store.journal.recover("c1")
        with pytest.raises(DigestError, match="cannot update the suppression list"):
            store.suppressions.add([("new@example.org", "manual", "manual")])
    with closing(open_store(postgres_url)) as store:
        assert store.journal.counts("c1")["inflight"] == 1
        assert store.suppressions.reason("new@example.org") is None


def test_a_connection_cut_under_a_read_is_one_line(postgres_url: str,
                                                   pg_cluster: Cluster) -> None:
    # A server restarted or a connection cut mid-run: reads say so in one line, as writes do.
    database = postgres_url.rsplit("/", 1)[1]
    with closing(open_store(postgres_url)) as store:
        store.journal.pin(CampaignRecord("c1", "sel", "2026-11-28T06:00:00Z"))
        store.suppressions.add([("gone@example.org", "manual", "manual")])
        pg_cluster.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           f" WHERE datname = '{database}' AND pid <> pg_backend_pid()")
        for read in (lambda: store.journal.counts("c1"), lambda: list(store.journal.todo("c1")),
                     lambda: store.suppressions.reason("gone@example.org"),
                     lambda: list(store.suppressions)):
            with pytest.raises(DigestError) as caught:
                read()
            assert str(caught.value).startswith("the PostgreSQL state could not be read (")
            assert str(caught.value).endswith("check that the server is up and reachable, "
                                              "then run again")


def test_marks_that_lose_a_deadlock_are_written_again(postgres_url: str) -> None:
    """Marks lock their rows in one order; a lease renewal read through a bitmap, or
    another sender's look at the suppression list, may lock them in another. The
    server breaks the cycle by failing one statement; the marks run again."""
    first, second = "ann@example.org", "bo@example.org"  # the marks lock ann, then bo
    with closing(open_store(postgres_url)) as store:
        store.journal.add("c1", [Entry(e, "", "", f"<{e}>", "pending", None)
                                 for e in (first, second)], queued_at=QUEUED)
        with (psycopg.connect(postgres_url) as other,
              psycopg.connect(postgres_url, autocommit=True) as look):
            other.execute("SET deadlock_timeout = '60s'")  # so the marks are the ones failed
            other.execute("UPDATE deliveries SET attempts=7 WHERE key=%s", (second,))
            failed: list[BaseException] = []
            marks = threading.Thread(target=_catching(failed, lambda: store.journal.apply(
                "c1", [Update(first, "inflight"), Update(second, "inflight")])))
            marks.start()
            wait_for("the marks to wait on the other's row", lambda: look.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type='Lock'"
                " AND datname=current_database()").fetchone() == (1,))
            with pytest.raises(psycopg.errors.LockNotAvailable):  # they hold the first row
                look.execute("SELECT 1 FROM deliveries WHERE key=%s FOR UPDATE NOWAIT", (first,))
            # The cycle: this waits on the marks, which wait on this.
            other.execute("UPDATE deliveries SET attempts=7 WHERE key=%s", (first,))
            other.commit()
            marks.join(timeout=30)
            assert not marks.is_alive()
        assert failed == []
        assert {r.email: (r.status, r.attempts) for r in store.journal.rows("c1")} == {
            first: ("inflight", 7), second: ("inflight", 7)}


def _catching(failed: list[BaseException], call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            call()
        except BaseException as exc:  # the test asserts there is none
            failed.append(exc)
    return run


def _on_a_machine_off_by(offset: str, code: str, url: str) -> str:
    """What ``code`` prints, run with ``url`` as sys.argv[1] under a clock off by ``offset``."""
    done = subprocess.run(["faketime", "-f", offset, sys.executable, "-c", code, url],
                          capture_output=True, text=True, env=digest_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_clock_of_a_postgresql_state_is_the_servers(postgres_url: str) -> None:
    """On a machine whose clock is two hours fast, the state's clock still reads the
    server's: it is what every sender's leases and unsubscribe stamps are read by."""
    shown = _on_a_machine_off_by("+2h", (
        "import sys; from datetime import UTC, datetime; from digest.state.store import "
        "open_store; print(open_store(sys.argv[1]).clock().isoformat(), "
        "datetime.now(UTC).isoformat())"), postgres_url)
    state, machine = map(datetime.fromisoformat, shown.split())
    now = datetime.now(UTC)
    assert abs(machine - now - timedelta(hours=2)) < timedelta(seconds=30)  # it is fast
    assert abs(state - now) < timedelta(seconds=30)


def test_an_unsubscribe_stamped_on_a_slow_machine_is_still_new_to_the_senders(
    postgres_url: str,
) -> None:
    """`digest serve` on a machine ten minutes slow: its unsubscribe must still count as
    added since a sender's last look, or it would miss the rest of the run."""
    with closing(open_store(postgres_url)) as store:
        looked = stamp(store.clock())
        _on_a_machine_off_by("-10m", (
            "import sys; from digest.state.store import open_store; open_store(sys.argv[1])"
            ".suppressions.add([('late@example.org', 'unsubscribed', 'web')])"), postgres_url)
        assert store.suppressions.added_since(looked) == [("late@example.org", "unsubscribed")]
