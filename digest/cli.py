"""The ``digest`` command line: parse options, call one pipeline function, and
turn a DigestError into one clear line on stderr and an exit code.

Every option ``--foo-bar`` can also come from the environment variable
DIGEST_FOO_BAR or from the key ``foo-bar`` in digest.toml; a flag wins.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from digest import pipeline
from digest.config import DEFAULT_CONFIG, FILE_ONLY_KEYS, Settings, read_config
from digest.dates import parse_datetime, parse_duration
from digest.errors import DigestError
from digest.model import Article

if TYPE_CHECKING:
    from digest.send import Tally

F = TypeVar("F", bound=Callable[..., Any])


def option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose environment variable is DIGEST_ + its long name."""
    long = next(d for d in decls if d.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", "DIGEST_" + long[2:].upper().replace("-", "_"))
    kwargs.setdefault("show_envvar", True)
    return click.option(*decls, **kwargs)


class DateTimeParam(click.ParamType):  # type: ignore[type-arg]
    name = "DATETIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_datetime(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class SinceParam(click.ParamType):  # type: ignore[type-arg]
    name = "SINCE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if parse_duration(text) is None:
            try:
                parse_datetime(text)
            except ValueError:
                self.fail(f"{text!r} is neither a duration (7d, 2w, 36h) nor an ISO date "
                          "(2026-11-21)", param, ctx)
        return text


def selection_options(f: F) -> F:
    for decorator in reversed([
        option("--articles", type=click.Path(path_type=Path), default=Path("articles"),
               show_default=True, help="Folder of articles (*.md, *.txt)."),
        option("--tag", "tags", multiple=True, metavar="TAG",
               help="Only articles with this tag (repeatable, any match, case-insensitive)."),
        option("--exclude-tag", "exclude_tags", multiple=True, metavar="TAG",
               help="Leave out articles with this tag (repeatable)."),
        option("--since", type=SinceParam(), default="7d", show_default=True,
               help="Window start: a duration back from --as-of (7d, 2w, 36h) or an ISO date."),
        option("--as-of", type=DateTimeParam(), default=None,
               help="Window end (exclusive) and the digest's date. Default: now, in UTC."),
        option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
               help="At most this many articles."),
        option("--summary-words", type=click.IntRange(min=1), default=60, show_default=True,
               help="Word budget for summaries taken from the article's start."),
        option("--strict", is_flag=True, default=False,
               help="Stop at the first article that cannot be parsed, instead of skipping it."),
    ]):
        f = decorator(f)
    return f


def render_options(f: F) -> F:
    for decorator in reversed([
        option("--templates", type=click.Path(path_type=Path), default=None,
               help="Folder whose templates override the built-in ones, by name."),
        option("--name", default="The Weekly Digest", show_default=True,
               help="The newsletter's name."),
        option("--from", "sender", default="The Weekly Digest <digest@example.org>",
               show_default=True, help="The From address."),
        option("--reply-to", default=None, help="The Reply-To address."),
        option("--site-url", default=None, help="Base URL for links such as unsubscribe."),
    ]):
        f = decorator(f)
    return f


def settings_from(params: dict[str, Any], now: datetime) -> Settings:
    names = Settings.__dataclass_fields__
    values = {k: v for k, v in params.items() if k in names}
    values["as_of"] = values.get("as_of") or now
    values["tags"] = tuple(values.get("tags", ()))
    values["exclude_tags"] = tuple(values.get("exclude_tags", ()))
    return Settings(**values)


def warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def reports_errors(f: F) -> F:
    """Turn a DigestError into one line on stderr and its exit code: no traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except DigestError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _flag_names(group: click.Group) -> dict[str, str]:
    """Config keys (long flag names) to parameter names, across all commands."""
    names: dict[str, str] = {}
    for command in group.commands.values():
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and param.name:
                    names[opt[2:].replace("-", "_")] = param.name
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", type=click.Path(path_type=Path), envvar="DIGEST_CONFIG",
              help="Config file (default: ./digest.toml if it exists).", show_envvar=True)
@click.version_option(package_name="digest")
@click.pass_context
@reports_errors
def cli(ctx: click.Context, config: Path | None) -> None:
    """Turn a folder of articles into a weekly newsletter and deliver it.

    \b
    Examples:
      digest articles --since 7d --as-of 2026-11-28
      digest build --since 7d --out build/
      digest send --since 7d --list subscribers.example.csv --dry-run
    """
    path = config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    if path is None:
        return
    assert isinstance(ctx.command, click.Group)
    flags = _flag_names(ctx.command)
    values = read_config(path, [*flags, *FILE_ONLY_KEYS])
    ctx.obj = {k: values.pop(k) for k in FILE_ONLY_KEYS if k in values}
    params = {flags[k]: v for k, v in values.items()}
    ctx.default_map = {name: params for name in ctx.command.commands}


def _article_json(article: Article, summary: str) -> dict[str, Any]:
    return {
        "title": article.title,
        "author": article.author,
        "date": article.date.isoformat(),
        "tags": [tag.name for tag in article.tags],
        "section": article.section,
        "summary": summary,
        "author_bio": article.author_bio,
        "url": article.url,
        "language": article.language,
        "source": str(article.source),
    }


def _print_table(digest_items: list[tuple[Article, str]]) -> None:
    for article, _ in digest_items:
        tags = ", ".join(tag.name for tag in article.tags)
        click.echo(f"{article.date:%Y-%m-%d %H:%M%z}  {article.author:<20.20}  "
                   f"{article.title:<60.60}  [{tags}]")


@cli.command()
@selection_options
@option("--format", "fmt", type=click.Choice(["table", "json"]), default=None,
        help="Output format. Default: table on a terminal, JSON otherwise.")
@reports_errors
def articles(fmt: str | None, **params: Any) -> None:
    """List the articles that would go into the digest, newest first.

    \b
    Examples:
      digest articles --since 7d --as-of 2026-11-28
      digest articles --tag climate --tag energy --format json
    """
    settings = settings_from(params, datetime.now(UTC))
    digest = pipeline.make_digest(settings, pipeline.gather(settings, warn))
    rows = [(item.article, item.summary) for item in digest.items]
    if (fmt or ("table" if sys.stdout.isatty() else "json")) == "json":
        click.echo(json.dumps([_article_json(a, s) for a, s in rows], indent=2,
                              ensure_ascii=False))
    elif not rows:
        click.echo("No articles selected.", err=True)
    else:
        _print_table(rows)


@cli.command()
@selection_options
@render_options
@option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True,
        help="Folder for digest.html, digest.txt and sample.eml.")
@reports_errors
def build(out: Path, **params: Any) -> None:
    """Build the digest: inlined HTML, plain text, and a sample message.

    \b
    Examples:
      digest build --since 7d --out build/
      digest build --as-of 2026-11-28 --templates my-templates/
    """
    now = datetime.now(UTC)
    result = pipeline.build(settings_from(params, now), out, now=now, warn=warn)
    if not result.files:
        click.echo("No articles selected; nothing built.")
        return
    click.echo(f"Built a digest of {len(result.digest.items)} articles:")
    for path in result.files:
        click.echo(f"  {path}")


def send_options(f: F) -> F:
    for decorator in reversed([
        option("--list", "lists", multiple=True, required=True, type=click.Path(path_type=Path),
               help="Subscriber CSV file (repeatable; merged, duplicates dropped)."),
        option("--transport", default="maildir:outbox", show_default=True,
               help="maildir:PATH, smtp://[user@]host[:port] (STARTTLS) or smtps://..."),
        option("--campaign", default=None,
               help="Campaign id. Default: ISO week, list and tags, e.g. "
                    "2026-W48-subscribers-all."),
        option("--state", type=click.Path(path_type=Path), default=Path(".digest"),
               show_default=True, help="Folder for the journal and the lock."),
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


@cli.command()
@selection_options
@render_options
@send_options
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
    from digest.send import SendOptions
    from digest.transports import make_transport

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
    request = pipeline.SendRequest(tuple(lists), connection, state, campaign, dry_run, options,
                                   journal=not params.pop("no_journal"))
    report = pipeline.send(settings_from(params, now), request, now=now, warn=warn,
                           on_tick=_progress_printer(quiet))
    if report_file is not None:
        pipeline.write_atomic(report_file, json.dumps(report.as_json(), indent=2).encode())
    if not quiet:
        _print_send_summary(report, connection.description)
    if report.aborted:
        click.secho(f"Error: {report.aborted}", fg="red", err=True)
    sys.exit(report.exit_code)


def _print_send_summary(report: pipeline.SendReport, where: str) -> None:
    if sys.stderr.isatty() and report.todo:
        click.echo("", err=True)
    if report.articles == 0:
        click.echo("No articles selected; nothing sent.")
    elif report.recipients == 0:
        click.echo("No subscribers in the list; nothing sent.")
    elif report.dry_run:
        click.echo(f"Dry run: would send {report.recipients} messages "
                   f"({report.articles} articles) via {where}, campaign {report.campaign}. "
                   "Nothing was delivered.")
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


@cli.command()
@option("--state", type=click.Path(path_type=Path), default=Path(".digest"), show_default=True,
        help="Folder holding the journal.")
@option("--campaign", default=None, help="Campaign id. Default: the most recent one.")
@option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
        show_default=True, help="Output format.")
@reports_errors
def status(state: Path, campaign: str | None, fmt: str) -> None:
    """Show a campaign's counts per status, and who failed or was deferred.

    \b
    Examples:
      digest status
      digest status --campaign 2026-W48-subscribers-all --format json
    """
    result = pipeline.status(state, campaign)
    problems = [
        {"email": r.email, "status": r.status, "attempts": r.attempts, "code": r.last_code,
         "reply": r.last_reply, "updated_at": r.updated_at}
        for r in result.problems
    ]
    if fmt == "json":
        click.echo(json.dumps({"campaign": result.campaign, "counts": result.counts,
                               "problems": problems}, indent=2, ensure_ascii=False))
        return
    click.echo(f"Campaign {result.campaign}")
    for name, count in sorted(result.counts.items()):
        click.echo(f"  {name:<10} {count:>8}")
    if problems:
        click.echo("")
        click.echo(f"  {'STATUS':<10} {'EMAIL':<36} {'CODE':<5} REPLY")
    for p in problems:
        click.echo(f"  {p['status']:<10} {p['email']:<36.36} {p['code'] or '':<5} "
                   f"{p['reply'] or ''}")


def main() -> None:
    cli(prog_name="digest")
