"""``digest subscribers`` and ``digest suppress``: look after the lists."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from digest.cli.kit import format_option, list_options, option, reports_errors, state_option


@click.group()
def subscribers() -> None:
    """Check subscriber lists before a send."""


@subscribers.command("check")
@list_options("Subscriber list (repeatable).", required=True)
@option("--articles", type=click.Path(path_type=Path), default=Path("articles"),
        show_default=True, help="Articles folder, to check tag preferences against.")
@state_option
@format_option
@reports_errors
def check(lists: tuple[Path, ...], list_format: str | None, articles: Path, state: Path,
          fmt: str) -> None:
    """Count valid, invalid, duplicate and suppressed rows, and list the problems.

    \b
    Examples:
      digest subscribers check --list subscribers.csv
      digest subscribers check --list mailchimp.csv --list extra.csv --format json
    """
    from digest.audience.check import check_lists

    result = check_lists(list(lists), list_format=list_format, articles=articles, state=state)
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
        return
    for name, count in result.counts.items():
        click.echo(f"{name:<12} {count:>8}")
    for path, list_format in result.formats.items():
        click.echo(f"{path}: {list_format} format")
    if result.problems:
        click.echo("")
    for problem in result.problems:
        click.echo(problem)


@click.group()
def suppress() -> None:
    """The suppression list: addresses that are never mailed.

    \b
    Examples:
      digest suppress add someone@example.org --reason complained
      digest suppress import unsubscribes.csv --reason unsubscribed
      digest suppress export suppressed.csv
    """


@suppress.command("add")
@click.argument("emails", nargs=-1, required=True)
@option("--reason", type=click.Choice(["unsubscribed", "bounced", "complained", "manual"]),
        default="manual", show_default=True, help="Why they are suppressed.")
@state_option
@reports_errors
def add(emails: tuple[str, ...], reason: str, state: Path) -> None:
    """Suppress these addresses."""
    from digest.audience.suppression import suppress_addresses

    added = suppress_addresses(state, emails, reason)
    click.echo(f"Suppressed {added.new} new addresses ({added.given - added.new} already were).")


@suppress.command("remove")
@click.argument("emails", nargs=-1, required=True)
@state_option
@reports_errors
def remove(emails: tuple[str, ...], state: Path) -> None:
    """Take these addresses off the suppression list."""
    from digest.audience.suppression import unsuppress

    removed = unsuppress(state, emails)
    click.echo(f"Removed {removed} of {len(emails)} addresses from the suppression list.")


@suppress.command("list")
@state_option
@format_option
@reports_errors
def list_(state: Path, fmt: str) -> None:
    """Show the suppression list."""
    from digest.audience.suppression import list_suppressions

    entries = list_suppressions(state)
    if fmt == "json":
        rows = [{"email": e.email, "reason": e.reason, "source": e.source,
                 "created_at": e.created_at} for e in entries]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for e in entries:
        click.echo(f"{e.email:<40} {e.reason:<13} {e.created_at}  {e.source}")


@suppress.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@option("--reason", type=click.Choice(["unsubscribed", "bounced", "complained", "manual"]),
        default="unsubscribed", show_default=True,
        help="Reason for rows without a 'reason' column.")
@state_option
@reports_errors
def import_(file: Path, reason: str, state: Path) -> None:
    """Add every address of a CSV file (an 'email' column, optionally 'reason')."""
    from digest.audience.suppression import import_suppressions

    added = import_suppressions(state, file, reason)
    click.echo(f"Imported {added.given} addresses from {file} ({added.new} new).")


@suppress.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
                default="-")
@state_option
@reports_errors
def export(file: Path, state: Path) -> None:
    """Write the suppression list as CSV (to FILE, or stdout), safe to open in a spreadsheet."""
    import io

    from digest.audience.suppression import export_suppressions
    from digest.files import write_atomic

    buffer = io.StringIO()
    count = export_suppressions(state, buffer)
    if str(file) == "-":
        sys.stdout.write(buffer.getvalue())
        return
    write_atomic(file, buffer.getvalue().encode())
    click.echo(f"Exported {count} addresses to {file}.", err=True)
