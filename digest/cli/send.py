"""``digest send``: options, progress and the closing summary."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from digest.cli.kit import (
    F,
    FiniteFloat,
    list_options,
    option,
    render_options,
    reports_errors,
    selection_options,
    settings_from,
    state_option,
    warn,
)
from digest.content.dates import parse_duration
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.delivery.report import SendReport
    from digest.delivery.request import SendRequest
    from digest.delivery.sender import Tally
    from digest.delivery.testsend import SendTestResult
    from digest.email.options import RenderOptions
    from digest.email.wrap import Wrapper


def send_options(f: F) -> F:
    for decorator in reversed([
        list_options("Subscriber CSV file (repeatable; merged, duplicates dropped). "
                     "Required, except with --test."),
        option("--test", "tests", multiple=True, metavar="ADDR", envvar=None,
               show_envvar=False,
               help="Send the issue the options select now to ADDR only (repeatable), "
                    "subject '[Test] ': nothing journalled or suppressed, and every run "
                    "sends again. An ADDR in --list gets that subscriber's variant."),
        option("--transport", default="maildir:outbox", show_default=True,
               help="maildir:PATH, smtp://[user@]host[:port] (STARTTLS) or smtps://..."),
        option("--campaign", default=None,
               help="Campaign id. Default: ISO week, list and tags, e.g. "
                    "2026-W48-subscribers-all."),
        option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
               help="SMTP connections in parallel."),
        option("--workers", type=click.IntRange(1, 256), default=None,
               help="Sender processes, sharing --concurrency and --rate and claiming "
                    "recipients through the state (at most --concurrency). Default: 1."),
        option("--lease", type=FiniteFloat(0, 3600, min_open=True), default=60.0,
               show_default=True,
               help="Seconds a sender's claim on a batch of recipients lasts unless renewed: "
                    "how soon the other senders take over from one that died."),
        option("--rate", type=FiniteFloat(min=0, min_open=True), default=None,
               help="At most this many messages a second, overall."),
        option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
               help="Tries per recipient in one run before they are deferred to the next."),
        option("--max-connection-errors", type=click.IntRange(min=1), default=50,
               show_default=True, help="Stop the run after this many in a row."),
        option("--retry-delay", type=FiniteFloat(0, 3600), default=1.0, show_default=True,
               help="First backoff step in seconds; it doubles per attempt, with jitter."),
        option("--timeout", type=FiniteFloat(0, 3600, min_open=True), default=30.0,
               show_default=True, help="Seconds to wait for each SMTP reply."),
        option("--tls-policy", type=click.Choice(["auto", "require", "allow-plaintext"]),
               default="auto", show_default=True,
               help="auto: STARTTLS required except to loopback. allow-plaintext: explicit "
                    "opt-in to send and AUTH without TLS."),
        option("--ca-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
               help="PEM file of CA certificates to trust, for a private CA."),
        option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
               default=None, help="Write a JSON summary of the run here (not with --test, "
                                  "which leaves it alone)."),
        option("--quiet", "-q", is_flag=True, default=False, help="Print only errors."),
        option("--dry-run", is_flag=True, default=False, help="Build everything, deliver nothing."),
        option("--min-interval", type=DurationParam(), default="6d", show_default=True,
               help="Start no new issue of the same lists and tags sooner than this after "
                    "the last one's --as-of (7d, 36h; 0d turns it off)."),
        option("--max-age", type=DurationParam(), default="3d", show_default=True,
               help="Give up on a recipient still not delivered this long after the "
                    "campaign queued them: they become 'expired'."),
        option("--progress-every", type=click.FloatRange(0.1, 3600), default=5.0,
               show_default=True,
               help="Seconds between progress lines when stderr is not a terminal."),
        option("--dkim-key", "dkim_keys", multiple=True,
               type=click.Path(path_type=Path, dir_okay=False),
               help="PEM private key file to DKIM-sign with (RSA 2048+ or Ed25519; "
                    "repeat to dual-sign). Make one with 'digest dkim keygen'."),
        option("--dkim-selector", "dkim_selectors", multiple=True,
               help="DKIM selector of each --dkim-key, in the same order."),
        option("--dkim-domain", default=None,
               help="DKIM signing domain (d=). Default: the --from domain."),
        option("--bounce-domain", default=None,
               help="Send with a VERP envelope sender, bounces+TOKEN@DOMAIN, so each "
                    "bounce names its recipient."),
        option("--archive", type=click.Path(path_type=Path, file_okay=False), default=None,
               metavar="DIR",
               help="After the send, whatever its outcome, bring the web archive in DIR up "
                    "to date (as 'digest archive --out DIR'); needs --archive-url. An archive "
                    "that cannot be written exits 3 after a send that went well. Not with "
                    "--test or --dry-run."),
        option("--no-journal", "no_journal", is_flag=True, default=False, hidden=True,
               help="Benchmarks only: keep the journal in memory."),
    ]):
        f = decorator(f)
    return f


class DurationParam(click.ParamType):  # type: ignore[type-arg]
    """``7d``, ``2w``, ``36h`` or ``0d``, as a timedelta."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            duration = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if duration is None:
            self.fail(f"{value!r} is not a duration; write it like 6d, 2w or 36h", param, ctx)
        return duration


def _progress_printer(quiet: bool, every: float) -> Callable[[Tally, int], None] | None:
    """A progress bar on a terminal; a log line every ``every`` seconds elsewhere."""
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
        elif tally.elapsed - last[0] >= every:
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
def send(obj: dict[str, Any] | None, /, **params: Any) -> None:
    """Send one personalised message per subscriber.

    Every step is journalled in --state, so a rerun after a crash sends to
    those who did not get the issue and to no one else. Exit codes: 0 done,
    1 bad input, 3 finished with failed or deferred recipients (or, after a
    send that went well, an --archive that could not be written), 69 stopped
    after repeated connection errors, 75 another run holds the lock.

    \b
    Examples:
      digest send --since 7d --list subscribers.example.csv
      digest send --list subscribers.csv --transport maildir:/var/mail/digest --dry-run
      digest send --test me@example.org --list subscribers.csv   # after every edit
      DIGEST_SMTP_PASSWORD=... digest send --list subscribers.csv \\
          --transport smtp://news@mail.example.org:587 --rate 50 --report run.json
    """
    from digest.delivery.campaign import send as send_issue

    quiet, report_file = params.pop("quiet"), params.pop("report_file")
    tests, archive = params.pop("tests"), params.pop("archive")
    if tests:
        _send_tests(obj, params, tests, quiet)
    if archive is not None and not params["archive_url"]:
        raise ConfigError("the archive needs --archive-url, where it is published, for the "
                          "links in each message and in its feed; set it like "
                          "'https://news.example.org/archive/'", source="--archive")
    if not params["lists"]:  # optional only for --test; otherwise click's own error
        ctx = click.get_current_context()
        lists = next(p for p in ctx.command.params if p.name == "lists")
        raise click.MissingParameter(ctx=ctx, param=lists)
    if report_file is not None and not report_file.parent.is_dir():
        raise ConfigError(f"the folder of {report_file} does not exist; create it first",
                          source="--report")
    now = datetime.now(UTC)
    every = params.pop("progress_every")
    rebuild = functools.partial(_worker_request, obj, dict(params), now)
    request = _request(obj, params, now)
    report = send_issue(request, now=now, warn=warn, say=None if quiet else click.echo,
                        on_tick=_progress_printer(quiet, every), rebuild=rebuild)
    refresh = None if archive is None else (lambda: _refresh_archive(request, archive, quiet))
    _finish(report, report_file, request.transport.description, quiet, refresh)


def _send_tests(obj: dict[str, Any] | None, params: dict[str, Any], addresses: tuple[str, ...],
                quiet: bool) -> NoReturn:
    """``--test``: the issue, now, to ``addresses``, recorded nowhere. --report is
    not written, so a test never overwrites the report a cron run left."""
    from digest.delivery.testsend import send_test

    now = datetime.now(UTC)
    params.pop("progress_every")
    request = _request(obj, params, now, test=True)
    report = send_test(request, addresses, now=now, warn=warn)
    if report.articles == 0 and not quiet:
        click.echo("No articles selected; nothing sent.")
    for result in report.results:
        if result.note and not quiet:
            click.echo(f"Note: {result.note}.")
        if result.status in ("sent", "built", "skipped"):
            if not quiet:
                click.echo(_test_line(result))
        elif result.status != "unsent":  # what stopped the run is said once, below
            click.secho(f"Error: the test to {result.address} was not delivered "
                        f"({result.status}): {result.reply}", fg="red", err=True)
    if report.stopped is not None:
        click.secho(f"Error: {report.stopped}", fg="red", err=True)
    sys.exit(report.exit_code)


def _test_line(result: SendTestResult) -> str:
    variant = f"variant: {result.stories} {'story' if result.stories == 1 else 'stories'}"
    if result.status == "built":
        return f"Dry run: would send test to {result.address} ({variant}); nothing was delivered."
    if result.status == "skipped":
        return f"No test for {result.address}: {result.reply}, so a real send skips them too."
    return f"Sent test to {result.address} ({variant})."


def _worker_request(obj: dict[str, Any] | None, params: dict[str, Any],
                    now: datetime) -> SendRequest:
    """The request again, in a worker process of ``--workers``, which warns of nothing:
    the parent did."""
    return _request(obj, dict(params), now, say=lambda message: None)


def _request(obj: dict[str, Any] | None, params: dict[str, Any], now: datetime, *,
             test: bool = False, say: Callable[[str], None] = warn) -> SendRequest:
    """The options, resolved into one SendRequest. Sending to a list needs a
    key for its links; a Maildir preview or a ``test`` may go without, with
    placeholders."""
    from digest.cli.secret import signing_keys
    from digest.delivery.connect import make_transport
    from digest.delivery.request import Cadence, SendRequest
    from digest.delivery.sender import SendOptions
    from digest.email.signing import HOW_TO

    spec, dry_run = params.pop("transport"), params.pop("dry_run")
    password = os.environ.get("DIGEST_SMTP_PASSWORD") or (obj or {}).get("smtp_password")
    transport = make_transport(spec, password=password, tls_policy=params.pop("tls_policy"),
                               ca_file=params.pop("ca_file"), timeout=params["timeout"])
    options = SendOptions(
        concurrency=params.pop("concurrency"), rate=params.pop("rate"),
        max_attempts=params.pop("max_attempts"),
        max_connection_errors=params.pop("max_connection_errors"),
        retry_delay=params.pop("retry_delay"), workers=params.pop("workers"),
        lease=params.pop("lease"),
    )
    cadence = Cadence(params.pop("min_interval"), params.pop("max_age"))
    lists, state, campaign = tuple(params.pop("lists")), params.pop("state"), params.pop("campaign")
    list_format, journal = params.pop("list_format"), not params.pop("no_journal")
    keys = signing_keys(obj)
    if keys is None and not dry_run:
        if not (test or spec.startswith("maildir:")):
            raise ConfigError(f"sending to a list needs a key to sign its unsubscribe links; "
                              f"{HOW_TO}", source="--transport")
        say("no link-signing key (DIGEST_SECRET or secret-file): the unsubscribe links in "
            f"this {'test' if test else 'Maildir preview'} are placeholders that no server "
            "accepts")
    wrapping = {k: params.pop(k) for k in ("dkim_keys", "dkim_selectors", "dkim_domain",
                                           "bounce_domain")}
    settings = settings_from(params, now)
    render = settings.render(keys)
    return SendRequest(settings.source(), settings.issue(), render, lists,
                       transport, state, campaign, dry_run, options, list_format, journal,
                       cadence, _wrappers(render, **wrapping))


def _wrappers(render: RenderOptions, dkim_keys: tuple[Path, ...],
              dkim_selectors: tuple[str, ...], dkim_domain: str | None,
              bounce_domain: str | None) -> tuple[Wrapper, ...]:
    """VERP first (it changes only the envelope), then DKIM over the final bytes."""
    wrappers: list[Wrapper] = []
    if bounce_domain is not None:
        from digest.email.verp import VerpWrapper

        if render.signer is None:
            raise ConfigError("VERP tokens are signed with the link key; set DIGEST_SECRET "
                              "or secret-file, or leave --bounce-domain out",
                              source="--bounce-domain")
        wrappers.append(VerpWrapper(render.signer, bounce_domain))
    if dkim_keys or dkim_selectors or dkim_domain:
        from digest.email.dkim import dkim_signer
        from digest.email.headers import ascii_domain
        from digest.errors import HeaderError

        try:
            domain = ascii_domain(dkim_domain) if dkim_domain else render.identity.domain
        except HeaderError as exc:
            raise ConfigError(str(exc), source="--dkim-domain") from exc
        wrappers.append(dkim_signer(dkim_keys, dkim_selectors, domain))
    return tuple(wrappers)


def _finish(report: SendReport, report_file: Path | None, where: str, quiet: bool,
            refresh: Callable[[], bool] | None = None) -> None:
    """Write the report, print the summary, ``refresh`` the archive and exit with
    the run's code. A report or archive that cannot be written after messages
    went out must not say "nothing sent"."""
    from digest.delivery.report import UNSETTLED
    from digest.errors import DigestError
    from digest.files import write_atomic

    code = report.exit_code
    if report_file is not None:
        try:
            write_atomic(report_file, json.dumps(report.as_json(), indent=2).encode())
        except DigestError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            code = max(code, UNSETTLED) if report.sent_now else exc.exit_code
    if not quiet:
        _print_send_summary(report, where)
    for problem in (report.aborted, report.stopped):
        if problem is not None:
            click.secho(f"Error: {problem}", fg="red", err=True)
    if refresh is not None and report.dry_run:
        if not quiet:
            click.echo("Dry run: the archive was left as it is.")
    elif refresh is not None and not refresh():
        code = code or UNSETTLED
    sys.exit(code)


def _refresh_archive(request: SendRequest, out: Path, quiet: bool) -> bool:
    """``--archive``: bring the archive up to date with what the state now records
    as sent. False, after one error line, when it could not be; the send's own
    outcome stands either way."""
    from digest.archive.build import ArchiveRequest, build_archive
    from digest.errors import DigestError

    try:
        result = build_archive(ArchiveRequest(request.state, request.source, request.render,
                                              out, "--archive"), warn=warn)
    except DigestError as exc:
        reason = exc.message if isinstance(exc, ConfigError) and exc.source == "--archive" \
            else str(exc)
        click.secho(f"Error: --archive: the archive was not refreshed: {reason}", fg="red",
                    err=True)
        return False
    if not quiet:
        click.echo(result.summary())
    return True


def _print_send_summary(report: SendReport, where: str) -> None:
    if sys.stderr.isatty() and report.todo:
        click.echo("", err=True)
    if report.waiting:
        click.echo(report.waiting)
    elif report.articles == 0:
        click.echo("No articles selected; nothing sent.")
    elif report.recipients == 0 and report.stopped is None:
        click.echo("No subscribers in the list; nothing sent.")
    elif report.dry_run:
        click.echo(f"Dry run: would send {report.todo} messages ({report.articles} articles, "
                   f"{report.variants} variants) via {where}, campaign {report.campaign}; "
                   f"{_counts(report.counts)}. Nothing was delivered.")
    elif report.todo == 0 and report.stopped is None:  # stopped: the lists may be read in part
        click.echo(f"Campaign {report.campaign} is already finished: nothing left to send "
                   f"({_counts(report.counts)}).")
    else:
        stopped = ", then stopped" if report.stopped or report.aborted else ""
        click.echo(f"Sent {report.sent_now} messages via {where}{stopped} (campaign "
                   f"{report.campaign}; now {_counts(report.counts)}).")
        if report.recovered:
            click.echo(f"{report.recovered} recipients were in flight when the last run "
                       "stopped; they were sent again with the same Message-ID.")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "empty"
