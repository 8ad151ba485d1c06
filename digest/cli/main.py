"""The ``digest`` command line: parse options, call one library function, and
turn a DigestError into one clear line on stderr and an exit code.

Every option ``--foo-bar`` can also come from the environment variable
DIGEST_FOO_BAR or from the key ``foo-bar`` in digest.toml; a flag wins.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.cli.archive import archive
from digest.cli.campaign import campaign as campaign_group
from digest.cli.check import check
from digest.cli.config import DEFAULT_CONFIG, FILE_ONLY_KEYS, FLAG_ONLY_KEYS, read_config
from digest.cli.dkim import dkim
from digest.cli.inbox import inbox
from digest.cli.kit import (
    format_option,
    option,
    render_options,
    reports_errors,
    selection_options,
    settings_from,
    state_option,
    warn,
)
from digest.cli.lists import subscribers, suppress
from digest.cli.preview import preview
from digest.cli.secret import secret
from digest.cli.send import send
from digest.cli.serve import serve
from digest.cli.state import state as state_group
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.model import Article


def _commands(group: click.Group) -> list[click.Command]:
    """Every command under ``group``, subcommands of its groups included."""
    found: list[click.Command] = []
    for command in group.commands.values():
        found.append(command)
        if isinstance(command, click.Group):
            found += _commands(command)
    return found


def _flag_params(group: click.Group) -> dict[str, click.Parameter]:
    """Config keys (long flag names, with underscores) to their options, across
    all commands."""
    params: dict[str, click.Parameter] = {}
    for command in _commands(group):
        for param in command.params:
            for opt in getattr(param, "opts", []):
                key = opt[2:].replace("-", "_")
                if opt.startswith("--") and param.name and key not in FLAG_ONLY_KEYS:
                    params.setdefault(key, param)
    return params


def _default_map(group: click.Group, defaults: dict[str, object]) -> dict[str, object]:
    """Click looks defaults up by command path, so groups get a nested map."""
    return {
        name: _default_map(command, defaults) if isinstance(command, click.Group) else defaults
        for name, command in group.commands.items()
    }


def _config_defaults(ctx: click.Context, path: Path, params: dict[str, click.Parameter],
                     values: dict[str, object]) -> dict[str, object]:
    """The file's values as option defaults, each checked against its option's
    type now, so a bad value is reported as the file's, not as a flag's."""
    from digest.cli.kit import config_value_problem

    defaults: dict[str, object] = {}
    for key, value in values.items():
        param = params[key]
        name = key.replace("_", "-")
        if getattr(param, "multiple", False):
            if isinstance(value, str):
                value = [value]  # tag = "climate" means tag = ["climate"]
            elif not isinstance(value, list):
                raise ConfigError(f"bad value for '{name}': expected a list, e.g. "
                                  f'{name} = ["first", "second"]', source=str(path))
        problem = config_value_problem(param, value)
        if problem is not None:
            raise ConfigError(f"bad value for '{name}': {problem}", source=str(path))
        try:
            param.type_cast_value(ctx, value)
        except (click.BadParameter, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, click.BadParameter) else str(exc)
            raise ConfigError(f"bad value for '{name}': {message}", source=str(path)) from exc
        assert param.name is not None
        defaults[param.name] = value
    return defaults


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
    flags = _flag_params(ctx.command)
    values = read_config(path, [*flags, *FILE_ONLY_KEYS])
    ctx.obj = {k: values.pop(k) for k in FILE_ONLY_KEYS if k in values}
    for key, value in ctx.obj.items():
        if not isinstance(value, str):
            raise ConfigError(f"bad value for '{key.replace('_', '-')}': expected a string",
                              source=str(path))
    ctx.default_map = _default_map(ctx.command, _config_defaults(ctx, path, flags, values))


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
    from digest.content.folder import gather
    from digest.email.build import make_digest

    issue = settings.issue()
    digest = make_digest(issue, settings.render(), gather(settings.source(), issue, warn))
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
    from digest.email.build import build as build_digest

    settings = settings_from(params, now)
    result = build_digest(settings.source(), settings.issue(), settings.render(), out, now=now,
                          warn=warn)
    if not result.files:
        click.echo("No articles selected; nothing built.")
        return
    click.echo(f"Built a digest of {len(result.digest.items)} articles:")
    for path in result.files:
        click.echo(f"  {path}")


@cli.command()
@state_option
@option("--campaign", default=None, help="Campaign id. Default: the most recent one.")
@format_option
@reports_errors
def status(state: Path, campaign: str | None, fmt: str) -> None:
    """Show a campaign's counts per status, and who failed or was deferred.

    \b
    Examples:
      digest status
      digest status --campaign 2026-W48-subscribers-all --format json
    """
    from digest.delivery.status import status as campaign_status

    result = campaign_status(state, campaign)
    problems = [
        {"email": r.email, "status": r.status, "attempts": r.attempts, "code": r.last_code,
         "reply": r.last_reply, "updated_at": r.updated_at}
        for r in result.problems
    ]
    record = result.record
    closed = ({"at": record.closed_at, "reason": record.closed_reason}
              if record is not None and record.closed_at else None)
    if fmt == "json":
        click.echo(json.dumps({"campaign": result.campaign, "issue": result.issue,
                               "closed": closed, "counts": result.counts,
                               "problems": problems, "rates": result.rates,
                               "warnings": result.warnings}, indent=2, ensure_ascii=False))
        return
    click.echo(f"Campaign {result.campaign}")
    if closed:
        click.echo(f"  closed at {closed['at']}: {closed['reason']}")
    for key, value in result.issue.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        click.echo(f"  {key.replace('_', '-') + ':':<15} {shown or '-'}")
    for name, count in sorted(result.counts.items()):
        click.echo(f"  {name:<10} {count:>8}")
    click.echo(f"  bounce rate {result.rates['bounce']:.2%}, "
               f"complaint rate {result.rates['complaint']:.2%}")
    for message in result.warnings:
        warn(message)
    if problems:
        click.echo("")
        click.echo(f"  {'STATUS':<10} {'EMAIL':<36} {'CODE':<5} REPLY")
    for p in problems:
        click.echo(f"  {p['status']:<10} {p['email']:<36.36} {p['code'] or '':<5} "
                   f"{p['reply'] or ''}")


for command in (send, suppress, subscribers, campaign_group, secret, serve, inbox, dkim,
                preview, check, archive):
    cli.add_command(command)
cli.add_command(state_group)


def main() -> None:
    cli(prog_name="digest")
