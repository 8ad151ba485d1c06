"""``digest send``: options, progress and the closing summary."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.clikit import (
    F,
    option,
    render_options,
    reports_errors,
    selection_options,
    settings_from,
    state_option,
    warn,
)
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.campaign import SendReport
    from digest.send import Tally


def send_options(f: F) -> F:
    for decorator in reversed([
        option("--list", "lists", multiple=True, required=True, type=click.Path(path_type=Path),
               help="Subscriber CSV file (repeatable; merged, duplicates dropped)."),
        option("--transport", default="maildir:outbox", show_default=True,
               help="maildir:PATH, smtp://[user@]host[:port] (STARTTLS) or smtps://..."),
        option("--campaign", default=None,
               help="Campaign id. Default: ISO week, list and tags, e.g. "
                    "2026-W48-subscribers-all."),
        option("--list-format", type=click.Choice(["digest", "mailchimp", "listmonk"]),
               default=None, help="Read every list as this format (default: detect it)."),
        option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
               help="SMTP connections in parallel."),
        option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
               help="At most this many messages a second, overall."),
        option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
               help="Tries per recipient in one run before they are deferred to the next."),
        option("--max-connection-errors", type=click.IntRange(min=1), default=50,
               show_default=True, help="Stop the run after this many in a row."),
        option("--retry-delay", type=click.FloatRange(min=0), default=1.0, show_default=True,
               help="First backoff step in seconds; it doubles per attempt, with jitter."),
        option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
               show_default=True, help="Seconds to wait for each SMTP reply."),
        option("--tls-policy", type=click.Choice(["auto", "require", "allow-plaintext"]),
               default="auto", show_default=True,
               help="auto: STARTTLS required except to loopback. allow-plaintext: explicit "
                    "opt-in to send and AUTH without TLS."),
        option("--ca-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
               help="PEM file of CA certificates to trust, for a private CA."),
        option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
               default=None, help="Write a JSON summary of the run here."),
        option("--quiet", "-q", is_flag=True, default=False, help="Print only errors."),
        option("--dry-run", is_flag=True, default=False, help="Build everything, deliver nothing."),
        option("--no-journal", "no_journal", is_flag=True, default=False, hidden=True,
               help="Benchmarks only: keep the journal in memory."),
    ]):
        f = decorator(f)
    return f


def _progress_printer(quiet: bool) -> Callable[[Tally, int], None] | None:
    """A progress bar on a terminal; a log line every few seconds elsewhere."""
    if quiet:
        return None
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(tally: Tally, total: int) -> None:
        rate = tally.done / max(tally.elapsed, 0.001)
        eta = (total - tally.done) / rate if rate else 0
        line = f"{tally.done}/{total} done, {tally.sent} sent, {rate:.0f}/s, ETA {eta:.0f}s"
        if tty:
            filled = int(30 * tally.done / max(total, 1))
            click.echo(f"\r[{'#' * filled}{'.' * (30 - filled)}] {line}   ", err=True, nl=False)
        elif tally.elapsed - last[0] >= 5:
            last[0] = tally.elapsed
            click.echo(f"progress: {line}", err=True)

    return show


@click.command()
@selection_options
@render_options
@send_options
@state_option
@click.pass_obj
@reports_errors
def send(obj: dict[str, Any] | None, /, lists: tuple[Path, ...], transport: str,
         campaign: str | None, state: Path, report_file: Path | None, quiet: bool,
         dry_run: bool, **params: Any) -> None:
    """Send one personalised message per subscriber.

    Every step is journalled in --state, so a rerun after a crash sends to
    those who did not get the issue and to no one else. Exit codes: 0 done,
    1 bad input, 3 finished with failed or deferred recipients, 69 stopped
    after repeated connection errors, 75 another run holds the lock.

    \b
    Examples:
      digest send --since 7d --list subscribers.example.csv
      digest send --list subscribers.csv --transport maildir:/var/mail/digest --dry-run
      DIGEST_SMTP_PASSWORD=... digest send --list subscribers.csv \\
          --transport smtp://news@mail.example.org:587 --rate 50 --report run.json
    """
    from digest import campaign as library
    from digest.pipeline import write_atomic
    from digest.send import SendOptions
    from digest.transports import make_transport

    if report_file is not None and not report_file.parent.is_dir():
        raise ConfigError(f"the folder of {report_file} does not exist; create it first",
                          source="--report")
    now = datetime.now(UTC)
    password = os.environ.get("DIGEST_SMTP_PASSWORD") or (obj or {}).get("smtp_password")
    connection = make_transport(
        transport, password=password, tls_policy=params.pop("tls_policy"),
        ca_file=params.pop("ca_file"), timeout=params["timeout"],
    )
    options = SendOptions(
        concurrency=params.pop("concurrency"), rate=params.pop("rate"),
        max_attempts=params.pop("max_attempts"),
        max_connection_errors=params.pop("max_connection_errors"),
        retry_delay=params.pop("retry_delay"),
    )
    request = library.SendRequest(tuple(lists), connection, state, campaign, dry_run, options,
                                  list_format=params.pop("list_format"),
                                  journal=not params.pop("no_journal"))
    report = library.send(settings_from(params, now), request, now=now, warn=warn,
                           on_tick=_progress_printer(quiet))
    if report_file is not None:
        write_atomic(report_file, json.dumps(report.as_json(), indent=2).encode())
    if not quiet:
        _print_send_summary(report, connection.description)
    if report.aborted:
        click.secho(f"Error: {report.aborted}", fg="red", err=True)
    sys.exit(report.exit_code)


def _print_send_summary(report: SendReport, where: str) -> None:
    if sys.stderr.isatty() and report.todo:
        click.echo("", err=True)
    if report.articles == 0:
        click.echo("No articles selected; nothing sent.")
    elif report.recipients == 0:
        click.echo("No subscribers in the list; nothing sent.")
    elif report.dry_run:
        click.echo(f"Dry run: would send {report.todo} messages ({report.articles} articles, "
                   f"{report.variants} variants) via {where}, campaign {report.campaign}; "
                   f"{_counts(report.counts)}. Nothing was delivered.")
    elif report.todo == 0:
        click.echo(f"Campaign {report.campaign} is already finished: nothing left to send "
                   f"({_counts(report.counts)}).")
    else:
        click.echo(f"Sent {report.sent_now} messages via {where} (campaign {report.campaign}"
                   f"; now {_counts(report.counts)}).")
        if report.recovered:
            click.echo(f"{report.recovered} recipients were in flight when the last run "
                       "stopped; they were sent again with the same Message-ID.")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "empty"
