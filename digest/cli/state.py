"""``digest state``: look after the state itself: migrate a PostgreSQL state's
schema, and copy a state between a folder and a database."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.kit import StateParam, reports_errors, state_option


@click.group()
def state() -> None:
    """The state: the journal, campaigns, suppressions, preferences and bounces,
    in a folder (SQLite) or a PostgreSQL database.

    \b
    Examples:
      digest state migrate --state postgresql://digest@db.example.org/news
      digest state copy .digest postgresql://digest@db.example.org/news
    """


@state.command("migrate")
@state_option
@reports_errors
def migrate(state: Path | str) -> None:
    """Bring a PostgreSQL state's schema up to this digest's version. A run
    creates the schema in an empty database by itself, but upgrades an older
    one only through this command.

    \b
    Examples:
      digest state migrate --state postgresql://digest@db.example.org/news
    """
    from digest.delivery.stateadmin import migrate_state

    done = migrate_state(state)
    if not done.exists:
        click.echo(f"Nothing to migrate: there is no state at {done.shown} yet. A state "
                   "folder is made, and its files upgrade themselves, when a command opens it.")
    elif done.before is None:
        click.echo(f"Nothing to migrate: {done.shown} is a state folder, whose files "
                   "upgrade themselves when opened.")
    elif done.before == done.after:
        click.echo(f"Already at version {done.after}.")
    else:
        click.echo(f"Migrated {done.shown} from {done.before} to {done.after}.")


@state.command("copy")
@click.argument("src", type=StateParam())
@click.argument("dst", type=StateParam())
@reports_errors
def copy(src: Path | str, dst: Path | str) -> None:
    """Copy a whole state, every table, from SRC into DST, which must be empty
    (a new folder, or an empty database). Each is a folder or a PostgreSQL URL.
    Both are locked meanwhile, so no send may run on either.

    \b
    Examples:
      digest state copy .digest postgresql://digest@db.example.org/news
      digest state copy postgresql://digest@db.example.org/news .digest-back
    """
    from digest.delivery.stateadmin import copy_state, describe

    counts = copy_state(src, dst)
    click.echo(f"Copied {describe(src)} into {describe(dst)}:")
    for table, count in counts.items():
        click.echo(f"  {table:<15} {count:>8}")
