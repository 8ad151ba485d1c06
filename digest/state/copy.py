"""``digest state copy``: move a whole state between backends, losing nothing.

Every table goes across with every column the two backends share (journal
rows with their recipient ids, statuses and stamps, campaign records with
their definitions, suppressions, preferences, bounce scores and processed
mail), while both states are locked, so no send changes either meanwhile.
The destination must be empty. Into PostgreSQL it is one transaction; into a
state folder the files are written beside it and renamed into place at the
end, so an interrupted copy leaves no half state either way.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

from digest.errors import ConfigError, DigestError, StateError, first_line
from digest.state.connect import connect, connect_readonly
from digest.state.postgres.location import PostgresLocation, is_postgres_url
from digest.state.sqlite import JOURNAL, SUPPRESSIONS, SqliteStore
from digest.state.store import Location, open_store

# Each table, its columns, in the order they are copied; and the file of a state folder
# that holds it.
TABLES: dict[str, tuple[str, ...]] = {
    "campaigns": ("campaign", "selection", "created_at", "series", "as_of", "definition",
                  "closed_at", "closed_reason"),
    "deliveries": ("campaign", "key", "email", "name", "tags", "message_id", "status",
                   "attempts", "resends", "bounced", "last_code", "last_reply", "created_at",
                   "updated_at", "rid"),
    "suppressions": ("key", "email", "reason", "source", "created_at"),
    "preferences": ("key", "email", "tags", "source", "updated_at"),
    "bounce_scores": ("key", "email", "score", "last_bounce"),
    "inbox_messages": ("id", "kind", "campaign", "email", "at"),
}
_FILES = {"campaigns": JOURNAL, "deliveries": JOURNAL}  # the rest: SUPPRESSIONS
Rows = Callable[[str], Iterator[tuple[object, ...]]]


def shown(location: Location) -> str:
    return PostgresLocation(location).shown if isinstance(location, str) else str(location)


def copy_state(src: Location, dst: Location) -> dict[str, int]:
    """Copy every table of ``src`` into the empty state ``dst``; rows per table."""
    if _same(src, dst):
        raise ConfigError(f"{shown(src)} is both the source and the destination", source="copy")
    if not _is_url(src) and not any((Path(src) / name).is_file()
                                    for name in (JOURNAL, SUPPRESSIONS)):
        raise ConfigError(f"{src} is not a state folder; name one that a send has used",
                          source="copy")
    with ExitStack() as stack:
        # The source only read: copying out of an empty database must not create its schema.
        with _as("SRC"):
            source = stack.enter_context(closing(open_store(src, readonly=True)))
        if _nothing_in(source):
            raise ConfigError(f"{shown(src)} holds no state: there is nothing to copy",
                              source="copy")
        with _as("DST"):
            destination = stack.enter_context(closing(open_store(dst)))
        if _one_database(source, destination):
            raise ConfigError(f"{shown(src)} and {shown(dst)} name one database: it is both "
                              "the source and the destination", source="copy")
        for argument, store in (("SRC", source), ("DST", destination)):
            with _as(argument):
                stack.enter_context(store.lock())
        rows = stack.enter_context(_reading(src))
        if _is_url(dst):
            return _into_postgres(str(dst), rows)
        return _into_folder(Path(dst), rows)
    raise AssertionError("unreachable")  # ExitStack swallows nothing; for mypy


@contextmanager
def _as(argument: str) -> Iterator[None]:
    """An error in opening a state names the argument it came from, not --state."""
    try:
        yield
    except StateError as exc:
        raise exc.named(argument) from exc
    except ConfigError as exc:
        if exc.source != "--state":
            raise
        raise ConfigError(exc.message, source=argument) from exc


def _nothing_in(store: object) -> bool:
    from digest.state.postgres.store import PostgresStore

    return isinstance(store, PostgresStore) and store.is_empty()


def _one_database(a: object, b: object) -> bool:
    """Whether two URLs name one database and schema under two spellings (localhost
    and 127.0.0.1, an added option): the second's server shows the first's own
    session in its database. Otherwise the second lock would wait on the first."""
    from digest.state.postgres.store import PostgresStore

    if not (isinstance(a, PostgresStore) and isinstance(b, PostgresStore)):
        return False
    mine = a.connection.execute("SELECT pid, backend_start, current_schema() FROM"
                                " pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
    return mine is not None and b.connection.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid=%s AND backend_start=%s"
        " AND datname=current_database() AND %s=current_schema()", mine).fetchone() is not None


def _is_url(location: Location) -> bool:
    return isinstance(location, str) and is_postgres_url(location)


def _same(src: Location, dst: Location) -> bool:
    if _is_url(src) or _is_url(dst):
        return src == dst
    return Path(src).resolve() == Path(dst).resolve()


@contextmanager
def _reading(src: Location) -> Iterator[Rows]:
    """Each table's rows of ``src``, read from one snapshot of it."""
    if _is_url(src):
        import psycopg

        from digest.state.postgres.store import PostgresStore

        with closing(PostgresStore(PostgresLocation(str(src)), readonly=True)) as store:
            db = store.connection
            with db.transaction():
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

                def pg_rows(table: str) -> Iterator[tuple[object, ...]]:
                    try:
                        with db.cursor(name=f"copy_{table}") as cursor:
                            cursor.execute(f"SELECT {', '.join(TABLES[table])} FROM {table}"
                                           .encode())
                            yield from cursor
                    except psycopg.Error as exc:
                        raise _unreadable(shown(src), exc) from exc

                yield pg_rows
        return
    folder = Path(src)
    _upgrade(folder)
    with ExitStack() as stack:
        opened: dict[str, sqlite3.Connection] = {}
        for name in (JOURNAL, SUPPRESSIONS):
            if (folder / name).is_file():
                file = stack.enter_context(closing(connect_readonly(folder / name,
                                                                    "sqlite_master")))
                # One read transaction per file, begun before any table is read: an
                # unsubscribe that `digest serve` writes mid-copy is in all of it or none.
                file.execute("BEGIN")
                file.execute("SELECT count(*) FROM sqlite_master").fetchone()
                opened[name] = file

        def sqlite_rows(table: str) -> Iterator[tuple[object, ...]]:
            db = opened.get(_FILES.get(table, SUPPRESSIONS))
            if db is None:
                return
            known = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if not known:
                return
            columns = ", ".join(c if c in known else f"NULL AS {c}" for c in TABLES[table])
            try:
                yield from db.execute(f"SELECT {columns} FROM {table}")
            except sqlite3.Error as exc:  # a row that is not UTF-8, a damaged page
                raise _unreadable(str(folder), exc) from exc

        yield sqlite_rows


def _upgrade(folder: Path) -> None:
    """Bring an older state folder's files up to date (new columns, rekeyed
    suppressions), as any command that opens them would, creating no file."""
    with closing(SqliteStore(folder)) as store:
        if (folder / JOURNAL).is_file():
            _ = store.journal
        if (folder / SUPPRESSIONS).is_file():
            _ = store.suppressions, store.preferences, store.bounces


def _into_postgres(url: str, rows: Rows) -> dict[str, int]:
    import psycopg

    from digest.state.postgres.store import PostgresStore

    location = PostgresLocation(url)
    counts: dict[str, int] = {}
    with closing(PostgresStore(location)) as store:
        if not store.is_empty():
            raise _not_empty(location.shown)
        db = store.connection
        try:
            with db.transaction(), db.cursor() as cursor:
                for table, columns in TABLES.items():
                    counts[table] = 0
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                                     .encode()) as copy:
                        for row in rows(table):
                            copy.write_row(row)
                            counts[table] += 1
        except psycopg.Error as exc:
            raise DigestError(f"{location.shown}: the copy failed and was rolled back "
                              f"({first_line(exc)}); the destination is as empty as it was"
                              ) from exc
    return counts


def _into_folder(named: Path, rows: Rows) -> dict[str, int]:
    """Written beside the folder, then renamed into place. Through a symlink, the
    folder it names is the one replaced (the link stays); an empty folder that was
    there already passes on its permissions and owner."""
    folder = named.resolve()
    if folder.exists() and (not folder.is_dir() or any(
            p.name != "lock" for p in folder.iterdir())):
        raise _not_empty(str(named))
    _clear_abandoned(folder)
    staging = folder.with_name(f".{folder.name}.copying-{os.getpid()}")
    with closing(SqliteStore(staging)) as store:
        _ = store.journal, store.suppressions, store.preferences, store.bounces
    counts: dict[str, int] = {}
    try:
        for table, columns in TABLES.items():
            with closing(connect(staging / _FILES.get(table, SUPPRESSIONS))) as db:
                db.execute("BEGIN IMMEDIATE")
                cursor = db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)})"
                    f" VALUES ({', '.join('?' * len(columns))})", rows(table))
                db.execute("COMMIT")
                counts[table] = max(cursor.rowcount, 0)
        if folder.exists():
            _same_access(folder, staging)
            (folder / "lock").unlink(missing_ok=True)
            folder.rmdir()
        staging.rename(folder)
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DigestError(f"{named}: the copy could not be written ({first_line(exc)}); "
                          "nothing of it was left, so run again once that is mended") from exc
    except DigestError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return counts


def _clear_abandoned(folder: Path) -> None:
    """Remove what an earlier copy into ``folder`` left when it was killed: its
    staging folder, named with its pid, once no such process runs. (A live copy
    into the same folder is kept out by the destination's lock.)"""
    for left in folder.parent.glob(f".{glob.escape(folder.name)}.copying-*"):
        pid = left.name.rpartition("-")[2]
        # This process's own pid too: in a container every run may be pid 1.
        if pid.isdigit() and (int(pid) == os.getpid() or not _running(int(pid))):
            shutil.rmtree(left, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    return True


def _same_access(folder: Path, staging: Path) -> None:
    """Give ``staging`` the mode and, where this process may, the owner of ``folder``,
    which it replaces: a folder made private stays private."""
    before = folder.stat()
    os.chmod(staging, stat.S_IMODE(before.st_mode))
    with contextlib.suppress(PermissionError):
        os.chown(staging, before.st_uid, before.st_gid)


def _unreadable(where: str, exc: BaseException) -> DigestError:
    return DigestError(f"{where}: the source could not be read ({first_line(exc)}); nothing "
                       "was copied")


def _not_empty(where: str) -> ConfigError:
    return ConfigError(f"{where} already holds a state; copy into an empty database or "
                       "a new folder", source="copy")
