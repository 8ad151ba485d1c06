"""The library behind ``digest state``: migrate a PostgreSQL state's schema, and
copy a whole state between a folder and a database. The state package does
the work; this is the use case the command line may call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digest.errors import ConfigError
from digest.state.copy import copy_state as _copy_state
from digest.state.copy import shown
from digest.state.postgres.location import PostgresLocation, is_postgres_url
from digest.state.postgres.schema import migrate_location
from digest.state.store import Location


@dataclass(frozen=True, slots=True)
class Migration:
    """What ``migrate_state`` did to the state ``shown``: versions before and after;
    None for a state folder, whose files upgrade themselves when opened."""

    shown: str
    before: int | None
    after: int | None
    exists: bool = True  # False: a folder not made yet, by any command


def migrate_state(location: Location) -> Migration:
    if isinstance(location, str) and is_postgres_url(location):
        where = PostgresLocation(location)
        done = migrate_location(where)
        return Migration(where.shown, done.before, done.after)
    folder = Path(location)
    try:
        exists = folder.is_dir()
    except OSError as exc:  # EACCES, a name too long: what a run would meet too
        raise ConfigError(f"cannot look into {folder}: {exc.strerror}", source="--state"
                          ) from exc
    return Migration(str(folder), None, None, exists=exists)


def copy_state(src: Location, dst: Location) -> dict[str, int]:
    """Copy every table of ``src`` into the empty state ``dst``; rows per table."""
    return _copy_state(src, dst)


def describe(location: Location) -> str:
    """``location`` as messages show it: a URL never with a password."""
    return shown(location)
