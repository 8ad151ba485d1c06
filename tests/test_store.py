"""The storage seam (digest/state/), through the real SQLite store: what
delivery/ and audience/ may ask of it, and what stays behind it."""

from __future__ import annotations

import ast
import dataclasses
import fcntl
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from digest.errors import DigestError, LockedError
from digest.model import address_key
from digest.state.records import CampaignRecord, Entry, Follows, Update, stamp
from digest.state.store import JournalStore, Store, SuppressionStore, open_store

DIGEST = Path(__file__).resolve().parent.parent / "digest"
QUEUED = "2026-11-28T09:00:00+00:00"
LATER = "2999-01-01T00:00:00+00:00"


def entry(email: str, status: str = "pending", reason: str | None = None) -> Entry:
    return Entry(email, "", "", f"<{email}>", status, reason)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A fresh state on each backend: a folder, or an empty PostgreSQL database
    (tests/postgres.py), so every test using it holds for both."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return tmp_path / "state"


@pytest.fixture
def store(location: Path | str) -> Iterator[Store]:
    with closing(open_store(location)) as opened:
        yield opened


def test_a_pin_that_follows_an_issue_no_longer_newest_records_nothing(store: Store) -> None:
    """Two sends either side of a week's turn plan W48 and W49, each after W47.
    The first pin wins; the second gets the winner back and records nothing,
    so everyone on the lists gets one issue."""
    journal = store.journal
    w47 = CampaignRecord("W47", "sel", QUEUED, series="s", as_of="2026-11-16")
    assert journal.pin(w47) == w47
    w48 = CampaignRecord("W48", "sel", QUEUED, series="s", as_of="2026-11-29T23:59:59")
    w49 = CampaignRecord("W49", "sel", QUEUED, series="s", as_of="2026-11-30T00:00:01")
    assert journal.pin(w49, Follows("W47")) == w49
    assert journal.pin(w48, Follows("W47")) == w49
    assert journal.campaign("W48") is None
    # Joining the same campaign is no conflict; nor is a send told which one to pin.
    assert journal.pin(dataclasses.replace(w49, selection="other"), Follows("W47")) == w49
    assert journal.pin(w48) == w48
    # A series' first issue follows none.
    first = CampaignRecord("T1", "sel", QUEUED, series="t", as_of=QUEUED)
    assert journal.pin(first, Follows(None)) == first
    assert journal.pin(dataclasses.replace(first, campaign="T2"), Follows(None)) == first


def test_a_long_suppression_add_is_stamped_once_it_is_read(store: Store) -> None:
    """Senders look for entries stamped since their last look, less 10 s. An import
    stamped as it began, and committed minutes later, would be missed by them all.
    (1,500 entries: over PostgreSQL, more than one batch.)"""
    read: list[str] = []

    def entries() -> Iterator[tuple[str, str, str]]:
        yield from ((f"s{n:04d}@example.org", "unsubscribed", "import") for n in range(1500))
        time.sleep(1.1)  # stamps are to the second
        read.append(stamp(store.clock()))

    assert store.suppressions.add(entries()) == 1500
    assert len(store.suppressions.added_since(read[0])) == 1500
    assert store.suppressions.add([("s0000@example.org", "bounced", "x")]) == 0


def test_each_store_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store.journal, JournalStore)
    assert isinstance(store.suppressions, SuppressionStore)


def test_a_campaign_round_trip(store: Store) -> None:
    journal = store.journal
    record = CampaignRecord("c1", "sel", QUEUED, series="s", as_of=QUEUED, definition="{}")
    assert journal.pin(record) == record
    # A campaign already pinned keeps its first record.
    assert journal.pin(CampaignRecord("c1", "other", QUEUED)) == record
    assert journal.newest("s") == record
    people = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]
    offered = journal.add("c1", [*map(entry, people), entry("e@example.org", "skipped", "tags")],
                          queued_at=QUEUED)
    assert offered == 5
    assert journal.count_todo("c1") == 4
    journal.apply("c1", [Update("a@example.org", "inflight"), Update("b@example.org", "inflight")])
    journal.apply("c1", [
        Update("A@EXAMPLE.ORG", "sent", 250, "ok", attempted=True),  # by address_key
        Update("c@example.org", "failed", 550, "no such user", attempted=True, bounced=True),
        Update("d@example.org", "deferred", 451, "later", attempted=True),
    ])
    assert journal.recover("c1") == 1  # b was in flight
    assert journal.counts("c1") == {"sent": 1, "ambiguous": 1, "failed": 1, "deferred": 1,
                                    "skipped": 1}
    assert [(p.email, p.resend) for p in journal.todo("c1")] == [
        ("b@example.org", True), ("d@example.org", False)]
    assert journal.still_to_do("c1", "a@example.org") == (False, "sent")
    assert journal.still_to_do("c1", "new@example.org") == (True, None)
    assert journal.bounced("c1") == ["c@example.org"]
    (failed,) = journal.rows("c1", ("failed",))
    assert (failed.last_code, failed.last_reply, failed.attempts) == (550, "no such user", 1)
    assert journal.unfinished("c1") == 2
    assert journal.expire("c1", "2026-11-28T09:00:01+00:00", "too old") == 2
    assert journal.unfinished("c1") == 0
    assert journal.close_campaign("c1", "superseded", QUEUED)
    assert not journal.close_campaign("c1", "again", QUEUED)
    closed = journal.campaign("c1")
    assert closed is not None and closed.closed_reason == "superseded"
    assert journal.campaigns() == ["c1"]


def test_apply_suppressions_marks_only_those_still_owed_the_issue(store: Store) -> None:
    journal, suppressions = store.journal, store.suppressions
    journal.add("c1", map(entry, ["owed@example.org", "sent@example.org", "kept@example.org",
                                  "late@example.org"]), queued_at=QUEUED)
    journal.add("c2", [entry("owed@example.org")], queued_at=QUEUED)
    journal.apply("c1", [Update("sent@example.org", "sent", 250)])
    journal.apply("c1", [Update("late@example.org", "deferred", 451)])
    assert suppressions.add([("OWED@example.org", "complained", "manual"),
                             ("sent@example.org", "bounced", "manual"),
                             ("late@example.org", "unsubscribed", "manual"),
                             ("nobody@example.org", "manual", "manual")]) == 4
    assert store.apply_suppressions("c1") == 2
    rows = {r.email: (r.status, r.last_reply) for r in journal.rows("c1")}
    assert rows == {"owed@example.org": ("suppressed", "complained"),
                    "sent@example.org": ("sent", None),
                    "kept@example.org": ("pending", None),
                    "late@example.org": ("suppressed", "unsubscribed")}
    assert journal.counts("c2") == {"pending": 1}  # another campaign is its own business


def test_apply_suppressions_without_a_list_creates_none(tmp_path: Path) -> None:
    with closing(open_store(tmp_path)) as store:
        store.journal.add("c1", [entry("a@example.org")], queued_at=QUEUED)
        assert store.apply_suppressions("c1") == 0
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == ["journal.sqlite3", "journal.sqlite3-writer"]


def test_no_database_attaches_another() -> None:
    # The seam is that each database stands alone, so a second backend can
    # keep them apart; an ATTACH anywhere would quietly tie them together.
    attaching = [str(path.relative_to(DIGEST)) for path in DIGEST.rglob("*.py")
                 if re.search(r"\bATTACH\b", path.read_text(encoding="utf-8"))]
    assert attaching == []


def test_only_the_state_package_touches_its_storage() -> None:
    # audience/seen.py keeps a temporary de-duplication set in SQLite:
    # scratch space of one run, not state.
    importers = set()
    for path in DIGEST.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        names |= {node.module or "" for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom)}
        where = path.relative_to(DIGEST)
        if "sqlite3" in names and where.parts[0] != "state":
            importers.add(where.as_posix())
        if any(n.startswith("digest.state") for n in names):
            assert where.parts[0] in ("state", "delivery", "audience"), where
    assert importers == {"audience/seen.py"}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of each file, but SQLite's -wal and -shm companions: a
    read-only reader of a WAL database needs them, and cannot remove them."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
            if not p.name.endswith(("-wal", "-shm"))}


def test_a_readonly_store_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with closing(open_store(state)) as store:
        store.journal.pin(CampaignRecord("c1", "sel", QUEUED))
        store.journal.add("c1", [entry("a@example.org")], queued_at=QUEUED)
        store.suppressions.add([("gone@example.org", "manual", "manual")])
    before = snapshot(state)
    with closing(open_store(state, readonly=True)) as store:
        assert store.has_journal()
        assert not store.journal.writable
        assert store.journal.counts("c1") == {"pending": 1}
        assert store.suppressions.reason("GONE@example.org") == "manual"
        assert [s.email for s in store.suppressions] == ["gone@example.org"]
        with pytest.raises(DigestError, match="the journal could not be written"):
            store.journal.recover("c1")
        with pytest.raises(DigestError, match="cannot update the suppression list"):
            store.suppressions.add([("new@example.org", "manual", "manual")])
    assert snapshot(state) == before


def test_a_readonly_store_of_nothing_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "none"
    with closing(open_store(state, readonly=True)) as store:
        assert not store.has_journal()
        assert store.journal.campaigns() == []
        assert store.journal.still_to_do("c1", "a@example.org") == (True, None)
        assert store.suppressions.reason("a@example.org") is None
    assert not state.exists()


def test_a_readonly_look_at_preferences_without_a_suppression_list(tmp_path: Path) -> None:
    # `digest serve` saves a preference first: the file exists, its suppressions table not.
    with closing(open_store(tmp_path)) as store:
        store.preferences.set("ann@example.org", ("budget",), "web:test", QUEUED)
    before = snapshot(tmp_path)
    with closing(open_store(tmp_path, readonly=True)) as store:
        assert store.suppressions.reason("ann@example.org") is None
        assert store.preferences.get("ann@example.org") is not None
    assert snapshot(tmp_path) == before


def test_a_readonly_look_at_an_old_suppression_list_rekeys_it_first(tmp_path: Path) -> None:
    # Keys written before address_key casefolded every local part; read as they
    # stand, straße would match strasse. Rekeying is the one write a look allows.
    with closing(sqlite3.connect(tmp_path / "suppressions.sqlite3")) as old, old:
        old.execute("CREATE TABLE suppressions (key TEXT PRIMARY KEY, email TEXT NOT NULL,"
                    " reason TEXT NOT NULL, source TEXT NOT NULL DEFAULT '',"
                    " created_at TEXT NOT NULL) WITHOUT ROWID")
        old.execute("INSERT INTO suppressions VALUES (?, ?, 'manual', '', '2026-01-01')",
                    ("straße@example.org".casefold(), "straße@example.org"))
    with closing(open_store(tmp_path, readonly=True)) as store:
        assert store.suppressions.reason("straße@example.org") == "manual"
        assert store.suppressions.reason("strasse@example.org") is None


def test_a_second_holder_of_the_lock_is_refused(location: Path | str) -> None:
    with closing(open_store(location)) as first, closing(open_store(location)) as second:
        with first.lock(), pytest.raises(LockedError), second.lock():
            pass
        with second.lock():
            pass  # released on exit


def test_undo_takes_back_a_web_unsubscribe_from_any_issue_and_nothing_else(
    store: Store,
) -> None:
    from digest.audience.selfservice import SelfService

    for campaign in ("week-48", "week-49"):
        store.journal.add(campaign, [entry("ann@example.org"), entry("bo@example.org")],
                          queued_at=QUEUED)
    rids = {(p.email, campaign): p.rid for campaign in ("week-48", "week-49")
            for p in store.journal.todo(campaign)}
    service = SelfService(store)
    last_week = service.reader(rids["ann@example.org", "week-48"])
    this_week = service.reader(rids["ann@example.org", "week-49"])
    assert last_week is not None and this_week is not None
    assert service.unsubscribe(last_week) and not service.unsubscribe(this_week)
    assert service.undo(this_week)  # last week's link did it; this week's Undo takes it back
    assert not service.unsubscribed(this_week)

    store.suppressions.add([("bo@example.org", "complained", "manual")])
    bo = service.reader(rids["bo@example.org", "week-49"])
    assert bo is not None and not service.undo(bo)
    assert store.suppressions.reason("bo@example.org") == "complained"


def test_one_person_twice_in_a_run_is_one_row_and_a_suppression_wins(store: Store) -> None:
    journal = store.journal
    assert journal.add("c1", [entry("ann@example.org"), entry("ANN@example.org"),
                              entry("bo@example.org", "skipped", "tags"),
                              entry("bo@example.org", "suppressed", "complained"),
                              entry("cy@example.org"),
                              entry("Cy@example.org", "suppressed", "unsubscribed")],
                       queued_at=QUEUED) == 6
    rows = {r.email: (r.status, r.last_reply) for r in journal.rows("c1")}
    assert rows == {"ann@example.org": ("pending", None), "bo@example.org": ("skipped", "tags"),
                    "cy@example.org": ("suppressed", "unsubscribed")}
    journal.add("c1", [entry("ann@example.org", "suppressed", "bounced")], queued_at=QUEUED)
    assert journal.still_to_do("c1", "ann@example.org") == (False, "suppressed")


# --- claims: senders sharing a campaign (JournalStore.claim) -------------------------

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def owed(journal: JournalStore, count: int) -> list[str]:
    people = [f"r{i:02d}@example.org" for i in range(count)]
    journal.add("c1", [Entry(e, "", "", f"<{e}>", "pending", None) for e in people],
                queued_at=QUEUED)
    return people


def test_two_senders_claim_disjoint_batches_until_none_is_left(store: Store) -> None:
    journal = store.journal
    people = owed(journal, 10)
    first = journal.claim("c1", "a", 4, 60, at(0))
    second = journal.claim("c1", "b", 4, 60, at(0))
    third = journal.claim("c1", "a", 4, 60, at(1))
    assert [p.email for p in first] == people[:4]  # in key order
    assert [p.email for p in second] == people[4:8]
    assert [p.email for p in third] == people[8:]
    assert journal.claim("c1", "b", 4, 60, at(2)) == []  # every lease is live
    assert journal.count_todo("c1") == 10  # a claim is not a result


def test_a_result_clears_the_claim_and_a_deferred_try_keeps_it(store: Store) -> None:
    journal = store.journal
    people = owed(journal, 3)
    journal.claim("c1", "a", 3, 60, at(0))
    journal.apply("c1", [Update(people[0], "sent", 250), Update(people[1], "deferred", 451)])
    journal.apply("c1", [Update(people[2], "failed", 550)])
    assert journal.claim("c1", "b", 3, 61, at(59)) == []  # a's deferred row is still a's
    assert [p.email for p in journal.claim("c1", "b", 3, 60, at(61))] == [people[1]]


def test_an_expired_lease_is_claimable_by_another_sender_and_a_live_one_is_not(
    store: Store,
) -> None:
    journal = store.journal
    people = owed(journal, 2)
    assert len(journal.claim("c1", "dead", 2, 10, at(0))) == 2
    assert journal.claim("c1", "b", 2, 10, at(9.5)) == []
    assert journal.held("c1", "b", at(9.5)) == pytest.approx(0.5)
    assert journal.held("c1", "dead", at(9.5)) is None  # not its own
    assert journal.held("c1", "b", at(10.5)) == 0  # ended, not yet taken: claim now
    taken = journal.claim("c1", "b", 2, 10, at(10.5))
    assert [p.email for p in taken] == people
    assert journal.held("c1", "b", at(11)) is None


def test_renew_extends_only_the_leases_the_sender_holds(store: Store) -> None:
    journal = store.journal
    people = owed(journal, 4)
    journal.claim("c1", "a", 2, 10, at(0))
    journal.claim("c1", "b", 2, 10, at(0))
    assert journal.renew("c1", "a", people, 10, at(8)) == 2  # b's rows are not a's to renew
    assert [p.email for p in journal.claim("c1", "c", 4, 10, at(12))] == people[2:]
    assert [p.email for p in journal.claim("c1", "c", 4, 10, at(18.5))] == people[:2]


def test_in_flight_under_an_expired_lease_becomes_ambiguous_with_its_id(store: Store) -> None:
    journal = store.journal
    people = owed(journal, 3)
    rids = {p.email: p.rid for p in journal.todo("c1")}
    journal.claim("c1", "dead", 1, 10, at(0))
    journal.claim("c1", "live", 2, 10, at(0))
    journal.apply("c1", [Update(people[0], "inflight"), Update(people[1], "inflight")])
    assert journal.reclaim("c1", at(5)) == 0  # both leases are live
    assert journal.reclaim("c1", at(9.9)) == 0
    journal.renew("c1", "live", people[1:], 10, at(9))
    assert journal.reclaim("c1", at(11)) == 1  # dead's, never live's
    assert journal.counts("c1") == {"ambiguous": 1, "inflight": 1, "pending": 1}
    (again,) = journal.claim("c1", "live", 5, 10, at(11))[:1]
    assert (again.email, again.resend, again.rid) == (people[0], True, rids[people[0]])
    (row,) = journal.rows("c1", ("ambiguous",))
    assert row.message_id == f"<{people[0]}>"
    assert row.last_reply == "in flight when its sender's lease expired"


def test_release_frees_a_senders_claims_but_not_its_rows_in_flight(store: Store) -> None:
    journal = store.journal
    people = owed(journal, 3)
    journal.claim("c1", "a", 3, 60, at(0))
    journal.apply("c1", [Update(people[0], "inflight")])
    assert journal.release("c1", "b") == 0
    assert journal.release("c1", "a") == 2
    assert [p.email for p in journal.claim("c1", "b", 3, 60, at(1))] == people[1:]
    assert journal.held("c1", "c", at(1)) == pytest.approx(59)


def test_sends_share_a_shared_state_and_exclusive_holders_keep_them_out(
    location: Path | str,
) -> None:
    with closing(open_store(location)) as first, closing(open_store(location)) as second:
        if first.shared:
            with first.send_lock(), second.send_lock():
                pass
            with first.lock(), pytest.raises(LockedError), second.send_lock():
                pass
        else:
            with first.send_lock(), pytest.raises(LockedError), second.send_lock():
                pass
        with second.lock():
            pass


def vm_steps(db: sqlite3.Connection, call: Callable[[], object]) -> int:
    """How much work SQLite did for ``call``: its virtual machine's steps, in hundreds."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    db.set_progress_handler(count, 100)
    try:
        call()
    finally:
        db.set_progress_handler(None, 100)
    return steps[0]


def test_a_sqlite_claim_reads_the_rows_still_owed_not_those_already_sent(
    tmp_path: Path,
) -> None:
    """Claims come every few hundred messages: scanning the rows already sent
    each time would make a campaign's claims cost the square of its size."""
    with closing(open_store(tmp_path / "state")) as store:
        journal = store.journal
        for campaign, sent in (("small", 0), ("large", 3900)):
            people = [f"r{i:04d}@example.org" for i in range(sent + 100)]
            journal.add(campaign, [entry(e) for e in people], queued_at=QUEUED)
            journal.apply(campaign, [Update(e, "sent", 250) for e in people[:sent]])
        db = journal._db  # type: ignore[attr-defined]

        def claiming(campaign: str) -> int:
            return vm_steps(db, lambda: (journal.reclaim(campaign, at(0)),
                                         journal.claim(campaign, "a", 16, 60, at(0)),
                                         journal.held(campaign, "b", at(0))))

        assert claiming("large") < 2 * claiming("small")


def test_sqlite_writers_take_turns_through_the_writer_flock(tmp_path: Path) -> None:
    """A write waits in the kernel for the process holding the writer lock,
    rather than sleeping in SQLite's busy handler, and goes ahead once it is free."""
    with closing(open_store(tmp_path / "state")) as store:
        journal = store.journal
        people = owed(journal, 2)
        lock = tmp_path / "state" / "journal.sqlite3-writer"
        with open(lock, "rb") as other:  # another process's descriptor, as far as flock goes
            fcntl.flock(other, fcntl.LOCK_EX)

            def write() -> None:  # with a connection of its own, as another process has
                with closing(open_store(tmp_path / "state")) as own:
                    own.journal.apply("c1", [Update(people[0], "sent", 250)])

            writing = threading.Thread(target=write)
            writing.start()
            writing.join(timeout=0.5)
            assert writing.is_alive()  # waiting its turn
            fcntl.flock(other, fcntl.LOCK_UN)
            writing.join(timeout=10)
        assert not writing.is_alive()
        assert journal.counts("c1") == {"pending": 1, "sent": 1}


def test_two_updates_of_one_recipient_in_one_batch_apply_in_turn(store: Store) -> None:
    """A deferred try's result and the next try's in-flight mark can share a
    commit: the row ends as if they had been written one after the other."""
    journal = store.journal
    first, second = owed(journal, 2)
    journal.claim("c1", "a", 2, 60, at(0))
    journal.apply("c1", [Update(first, "deferred", 451, "try later", attempted=True),
                         Update(first, "inflight"),
                         Update(second, "deferred", 421, "busy", attempted=True),
                         Update(second, "inflight"),
                         Update(second, "sent", 250, "queued", attempted=True)])
    rows = {row.email: row for row in journal.rows("c1")}
    assert (rows[first].status, rows[first].attempts, rows[first].last_code,
            rows[first].last_reply) == ("inflight", 1, 451, "try later")
    assert (rows[second].status, rows[second].attempts, rows[second].last_code,
            rows[second].last_reply) == ("sent", 2, 250, "queued")
    assert journal.claim("c1", "b", 2, 60, at(1)) == []  # first is still a's, in flight
    assert journal.held("c1", "b", at(1)) == pytest.approx(59)


def test_a_postgresql_check_for_new_unsubscribes_reads_none_of_the_rows_owed(
    postgres_url: str,
) -> None:
    """Every claim first applies the unsubscribes since the last one. Joining the
    whole campaign to find that there are none would make a campaign's claims
    cost the square of its size."""
    with closing(open_store(postgres_url)) as store:
        people = owed(store.journal, 2000)
        store.suppressions.add([(people[5], "unsubscribed", "web")])
        db = store.journal._db  # type: ignore[attr-defined]
        db.execute("BEGIN")  # pg_stat_xact_* count this transaction's reads
        try:
            for _ in range(5):  # stamps have whole seconds: a later mark sees nothing new
                assert store.apply_suppressions("c1", since=LATER) == 0
            (read,) = db.execute(
                "SELECT seq_tup_read + COALESCE(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
                " WHERE relname='deliveries'").fetchone()
        finally:
            db.execute("ROLLBACK")
        assert read == 0
        assert store.apply_suppressions("c1", since="2000-01-01T00:00:00+00:00") == 1
        assert store.journal.counts("c1") == {"pending": 1999, "suppressed": 1}


def test_a_sender_out_of_rows_past_its_last_claim_looks_again_from_the_start(
    store: Store,
) -> None:
    journal = store.journal
    people = owed(journal, 30)
    assert [p.email for p in journal.claim("c1", "a", 10, 60, at(30))] == people[:10]
    assert [p.email for p in journal.claim("c1", "b", 10, 60, at(0))] == people[10:20]
    assert [p.email for p in journal.claim("c1", "a", 10, 60, at(30))] == people[20:]
    assert journal.claim("c1", "a", 10, 60, at(31)) == []  # b's lease holds the rest
    # b dies; its lease ends (a's has not), and a finds b's rows behind its last claim.
    assert [p.email for p in journal.claim("c1", "a", 10, 60, at(61))] == people[10:20]


def test_a_postgresql_claim_does_not_step_over_the_rows_already_claimed(
    postgres_url: str,
) -> None:
    """An UPDATE leaves a row's old index entry until VACUUM, so claims that each
    began at the campaign's first key would cost the square of its size. So would
    looking, before each claim, for rows copied without a recipient id: the planner
    answers that from the (campaign, status) index, every row of the campaign."""
    with closing(open_store(postgres_url)) as store:
        journal = store.journal
        owed(journal, 2000)
        for _ in range(19):
            assert len(journal.claim("c1", "a", 100, 60, at(0))) == 100
        db = journal._db  # type: ignore[attr-defined]
        # Rows read by a sequential scan of the table, and entries read from each index.
        count = ("SELECT c.relname, pg_stat_get_xact_tuples_returned(c.oid) FROM pg_class c"
                 " WHERE c.oid='deliveries'::regclass OR c.oid IN (SELECT indexrelid"
                 " FROM pg_index WHERE indrelid='deliveries'::regclass)")
        db.execute("BEGIN")  # no statistics are flushed, and so reset, inside it
        try:
            before = dict(db.execute(count).fetchall())
            assert len(journal.claim("c1", "a", 100, 60, at(0))) == 100
            after = dict(db.execute(count).fetchall())
        finally:
            db.execute("ROLLBACK")
        read = {name: after[name] - before[name] for name in after if after[name] - before[name]}
        # The rows taken (and the one that ends the page), then each taken row by key.
        assert set(read) <= {"deliveries_todo", "deliveries_pkey"}, read
        assert all(entries <= 101 for entries in read.values()), read


def test_recipients_that_no_one_holds_send_a_waiting_sender_back_to_claim(store: Store) -> None:
    """A sender that stopped gives its claims up; a reclaim leaves a dead sender's rows
    in flight unclaimed and ambiguous. A sender out of work must take them, not end."""
    journal = store.journal
    people = owed(journal, 4)
    journal.claim("c1", "a", 4, 60, at(0))
    assert journal.held("c1", "b", at(1)) == pytest.approx(59)
    journal.release("c1", "a")  # a stopped before sending anyone
    assert journal.held("c1", "b", at(1)) == 0
    journal.claim("c1", "b", 4, 60, at(1))
    journal.apply("c1", [Update(people[0], "inflight"),
                         *(Update(e, "sent", 250, "ok") for e in people[1:])])
    assert journal.held("c1", "c", at(2)) == pytest.approx(59)
    assert journal.reclaim("c1", at(62)) == 1  # b died with people[0] in flight
    assert journal.held("c1", "c", at(62)) == 0
    assert [p.email for p in journal.claim("c1", "c", 4, 60, at(62))] == [people[0]]
    journal.apply("c1", [Update(people[0], "sent", 250, "ok")])
    assert journal.held("c1", "c", at(63)) is None


def test_a_page_of_addresses_gets_its_suppressions_and_choices_by_key(store: Store) -> None:
    store.suppressions.add([("Left@Example.org", "unsubscribed", "web"),
                            ("gone@example.org", "bounced", "inbox")])
    store.preferences.set("picky@example.org", ("python", "rust"), "web", QUEUED)
    store.preferences.set("all@example.org", (), "web", QUEUED)
    page = ["left@example.org", "picky@EXAMPLE.ORG", "all@example.org", "other@example.org"]
    assert store.suppressions.reasons(page) == {"left@example.org": "unsubscribed"}
    assert store.preferences.chosen(page) == {"picky@example.org": ("python", "rust"),
                                              "all@example.org": ()}
    assert store.suppressions.reasons([]) == store.preferences.chosen([]) == {}


def test_an_address_added_twice_keeps_its_first_reason_across_a_long_import(
    store: Store,
) -> None:
    store.suppressions.add([("kept@example.org", "complained", "fbl")])
    entries = (  # from a generator, longer than one statement's batch
        (f"bulk{n:04d}@example.org" if n % 997 else "KEPT@example.org", "bounced", "import")
        for n in range(2500))
    assert store.suppressions.add(entries) == 2500 - 3  # 0, 997 and 1994 name kept@
    again = [("bulk0001@example.org", "manual", "cli"), ("new@example.org", "manual", "cli"),
             ("New@Example.org", "unsubscribed", "web")]
    assert store.suppressions.add(again) == 1
    assert store.suppressions.reasons(["kept@example.org", "bulk0001@example.org",
                                       "new@example.org"]) == {
        "kept@example.org": "complained", "bulk0001@example.org": "bounced",
        "new@example.org": "manual"}


def test_an_unsubscribe_committed_after_a_look_past_its_stamp_still_reaches_the_send(
    store: Store, location: Path | str,
) -> None:
    """A writer stamps its entry, then commits it; a sender may look in between, and
    move its mark past the stamp. Its next look must still find the entry."""
    store.journal.add("c1", [entry("slow@example.org")], queued_at=QUEUED)
    store.suppressions.add([("first@example.org", "manual", "manual")])  # creates the list
    looked = stamp(store.clock())
    assert store.apply_suppressions("c1", since=looked) == 0
    _commit_stamped(location, "slow@example.org", stamp(store.clock() - timedelta(seconds=3)))
    assert store.apply_suppressions("c1", since=looked) == 1
    assert [r.status for r in store.journal.rows("c1")] == ["suppressed"]


def _commit_stamped(location: Path | str, email: str, at: str) -> None:
    """Add an unsubscribe stamped ``at``, as a writer that stamped it then would."""
    row = (address_key(email), email, "unsubscribed", "web", at)
    sql = "INSERT INTO suppressions (key, email, reason, source, created_at) VALUES ({})"
    if isinstance(location, str):
        with psycopg.connect(location) as db:
            db.execute(sql.format(", ".join(["%s"] * 5)), row)
    else:
        with closing(sqlite3.connect(location / "suppressions.sqlite3")) as db, db:
            db.execute(sql.format(", ".join("?" * 5)), row)
