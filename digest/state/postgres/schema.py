"""The PostgreSQL schema, as numbered migrations, and the check every open makes.

``schema_version`` holds one row: the number of migrations applied. An empty
database gets every migration when first opened; one at an older version is
refused until ``digest state migrate`` (a migration may lock or rewrite large
tables, which an operator should choose to do, not a cron run), and one newer
than this digest knows is refused too, since its meaning may have changed.

Keys and ids compare byte for byte (``COLLATE "C"``), as in SQLite, so pages
and orders are the same on both backends whatever the database's locale.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

from digest.errors import ConfigError, DigestError
from digest.state.postgres.location import PostgresLocation

_V1 = """
CREATE TABLE campaigns (
    campaign      text COLLATE "C" PRIMARY KEY,
    selection     text NOT NULL,
    created_at    text NOT NULL,
    series        text COLLATE "C",
    as_of         text,
    definition    text,  -- JSON that the sender writes and reads
    closed_at     text,
    closed_reason text
);
CREATE INDEX campaigns_series ON campaigns (series, as_of);
CREATE TABLE deliveries (
    campaign    text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,  -- model.address_key(email)
    email       text NOT NULL,
    name        text NOT NULL DEFAULT '',
    tags        text NOT NULL DEFAULT '',
    message_id  text NOT NULL,
    status      text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    resends     integer NOT NULL DEFAULT 0,
    bounced     integer NOT NULL DEFAULT 0,
    last_code   integer,
    last_reply  text,
    created_at  text NOT NULL,
    updated_at  text NOT NULL,
    rid         text COLLATE "C" UNIQUE,
    -- For senders that share a campaign (next): who claimed the row, until when.
    claimed_by  text,
    lease_until timestamptz,
    PRIMARY KEY (campaign, key)
);
CREATE INDEX deliveries_status ON deliveries (campaign, status);
-- Who a run still owes the issue, in key order: todo's pages (and, next, claims) read only
-- these, whatever the planner's statistics say right after a bulk add.
CREATE INDEX deliveries_todo ON deliveries (campaign, key)
    WHERE status IN ('pending', 'deferred') OR (status = 'ambiguous' AND resends = 0);
CREATE TABLE suppressions (
    key        text COLLATE "C" PRIMARY KEY,
    email      text NOT NULL,
    reason     text NOT NULL,
    source     text NOT NULL DEFAULT '',
    created_at text NOT NULL
);
CREATE INDEX suppressions_created ON suppressions (created_at);
CREATE TABLE preferences (
    key        text COLLATE "C" PRIMARY KEY,
    email      text NOT NULL,
    tags       text NOT NULL,  -- tag slugs joined by semicolons, or empty for all
    source     text NOT NULL DEFAULT '',
    updated_at text NOT NULL
);
CREATE TABLE bounce_scores (
    key         text COLLATE "C" PRIMARY KEY,
    email       text NOT NULL,
    score       double precision NOT NULL,
    last_bounce text NOT NULL
);
CREATE TABLE inbox_messages (
    id       text COLLATE "C" PRIMARY KEY,
    kind     text NOT NULL,
    campaign text COLLATE "C" NOT NULL DEFAULT '',
    email    text NOT NULL DEFAULT '',
    at       text NOT NULL
);
CREATE INDEX inbox_messages_campaign ON inbox_messages (campaign, kind);
"""

# Migration n (from 1) takes a database from version n-1 to n. Append, never edit.
MIGRATIONS: tuple[str, ...] = (_V1,)
NEWEST = len(MIGRATIONS)
TABLES = ("campaigns", "deliveries", "suppressions", "preferences", "bounce_scores",
          "inbox_messages")
# Serialises migrations of one database: two first runs at once create the schema once.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('digest schema', 0))"

Connection = psycopg.Connection[TupleRow]


@dataclass(frozen=True, slots=True)
class Migrated:
    """What ``migrate`` did: the version found and the version left."""

    before: int
    after: int


def version(db: Connection) -> int | None:
    """The schema's version; None for a database with none of our tables."""
    found = db.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace"
        " WHERE n.nspname=current_schema() AND c.relkind IN ('r', 'p')"
        " AND c.relname=ANY(%s)", (["schema_version", *TABLES],)).fetchall()
    names = {str(name) for (name,) in found}
    if "schema_version" not in names:
        return 0 if names else None
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(db: Connection) -> Migrated:
    """Apply every migration the database lacks, all in one transaction."""
    with db.transaction():
        db.execute(_MIGRATION_LOCK)
        before = version(db) or 0
        if before > NEWEST:
            return Migrated(before, before)
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        for script in MIGRATIONS[before:]:
            db.execute(script.encode())
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (%s)", (max(before, NEWEST),))
    return Migrated(before, max(before, NEWEST))


def ensure(db: Connection, shown: str, *, readonly: bool) -> bool:
    """Make the database usable at NEWEST, or refuse it; False when it is empty
    and ``readonly`` (nothing may be created), so the caller reads it as empty."""
    try:
        found = version(db)
        if found is None and readonly:
            return False
        if found is None:
            found = migrate(db).after
    except psycopg.Error as exc:
        raise DigestError(f"{shown}: cannot read or create the schema ({exc}); check that "
                          "the role may create tables there, or run 'digest state migrate' "
                          "as one that may") from exc
    if found < NEWEST:
        raise ConfigError(f"{shown} holds schema version {found}, this digest needs {NEWEST}; "
                          f"run 'digest state migrate --state {shown}'", source="--state")
    if found > NEWEST:
        raise ConfigError(f"{shown} holds schema version {found}, newer than this digest "
                          f"knows ({NEWEST}); upgrade digest", source="--state")
    return True


def empty_scratch(db: Connection) -> None:
    """Every table as an empty temporary one, for a read-only look at an empty
    database: it answers like a state that never sent anything, and writes nothing."""
    bare = "\n".join(line.partition("--")[0] for line in _V1.splitlines())
    for statement in bare.split(";"):
        if statement.strip().startswith("CREATE TABLE"):
            db.execute(statement.replace("CREATE TABLE", "CREATE TEMPORARY TABLE", 1).encode())


def migrate_location(location: PostgresLocation) -> Migrated:
    """``digest state migrate``: bring the database at ``location`` to NEWEST."""
    db = location.connect()
    try:
        done = migrate(db)
    except psycopg.Error as exc:
        raise DigestError(f"{location.shown}: the migration failed and was rolled back "
                          f"({exc}); check that the role may create tables there") from exc
    finally:
        db.close()
    if done.before > NEWEST:
        raise ConfigError(f"{location.shown} holds schema version {done.before}, newer than "
                          f"this digest knows ({NEWEST}); upgrade digest", source="--state")
    return done
