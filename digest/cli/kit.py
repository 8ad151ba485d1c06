"""Shared pieces of the command line: the option decorator that gives every
flag its DIGEST_* environment variable, option groups, parameter types, and
the wrapper that turns a DigestError into one line and an exit code."""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import click

from digest.cli.config import Settings
from digest.content.dates import parse_datetime, parse_duration
from digest.errors import DigestError
from digest.model import shown

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
        try:
            return parse_datetime(value if isinstance(value, datetime) else str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: click's FloatRange lets nan
    through (every comparison with it is false), and inf where there is no
    maximum, and either would stall or spin a send."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{shown(value)} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class SinceParam(click.ParamType):  # type: ignore[type-arg]
    name = "SINCE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        try:
            duration = parse_duration(text)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if duration is None:
            try:
                parse_datetime(text)
            except ValueError:
                self.fail(f"{text!r} is neither a duration (7d, 2w, 36h) nor an ISO date "
                          "(2026-11-21)", param, ctx)
        return text


def config_value_problem(param: click.Parameter, value: object) -> str | None:
    """Why a digest.toml value cannot be this option's, or None. Checked before
    click converts it, which would quietly turn 1.5 into 1 and ["a", "b"] into
    the name "['a', 'b']", and fail on inf with a traceback."""
    multiple = bool(getattr(param, "multiple", False))
    for item in value if multiple and isinstance(value, list) else [value]:
        if isinstance(item, (list, dict)):
            kind = "a list" if isinstance(item, list) else "a table"
            return f"expected a list of strings, not one holding {kind}" if multiple else (
                f"expected one value, not {kind}")
        if isinstance(item, float) and not math.isfinite(item):
            return f"expected a finite number, not {item}"
        if isinstance(param.type, click.types.IntParamType) and isinstance(item, (float, bool)):
            return f"expected a whole number, not {_toml(item)}"
        if isinstance(param.type, click.types.FloatParamType) and isinstance(item, bool):
            return f"expected a number, not {_toml(item)}"
    return None


def _toml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else shown(value)


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
               help="Stop at the first article that cannot be parsed, or has an unknown "
               "front-matter key, instead of warning."),
        option("--intro", type=click.Path(path_type=Path), default=None,
               help="Markdown file with the editor's note, shown above the stories."),
        option("--url-template", default=None, metavar="TEMPLATE",
               help="Link for articles without a url, from their fields, e.g. "
               "https://example.org/{section}/{slug}."),
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
        option("--subject", default=None, metavar="TEMPLATE",
               help="Subject as a Jinja template with lead, count, name and date. "
               "Default: the lead story's title and \"and N more\"."),
        option("--archive-url", default=None,
               help="Where the web archive (digest archive) is published: each message "
               "links to its issue page there, and stories without a link to theirs."),
        option("--postal-address", default=None,
               help="The sender's postal address, shown in every footer; a bulk send "
               "needs one (CAN-SPAM)."),
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


def list_options(help: str, *, required: bool = False) -> Callable[[F], F]:
    """``--list`` (repeatable) and ``--list-format``: the lists a command reads."""

    def decorate(f: F) -> F:
        f = option("--list-format", type=click.Choice(["digest", "mailchimp", "listmonk"]),
                   default=None,
                   help="Read every list as this format (default: detect it from the header).")(f)
        return option("--list", "lists", multiple=True, required=required,
                      type=click.Path(path_type=Path), help=help)(f)

    return decorate


# "host=db dbname=news": libpq's other way to name a database, which would otherwise
# become a folder of that name (and put any password in argv).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_LIBPQ_KEYWORDS = re.compile(
    r"\s*(host|hostaddr|port|dbname|user|password|passfile|require_auth|channel_binding"
    r"|connect_timeout|client_encoding|options|application_name|fallback_application_name"
    r"|keepalives\w*|tcp_user_timeout|replication|gssencmode|sslmode|requiressl|ssl\w+"
    r"|requirepeer|krbsrvname|gsslib|gssdelegation|service|target_session_attrs"
    r"|load_balance_hosts)\s*=")


class StateParam(click.ParamType):  # type: ignore[type-arg]
    """A state folder (a Path), or a ``postgresql://`` URL (kept as text). A URL
    with a password is refused: argv is visible to every user of the machine."""

    name = "FOLDER|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path):  # the default
            return self._folder(value, param, ctx)
        text = str(value)
        if not text.strip():
            self.fail("it is empty; give a state folder or a postgresql:// URL", param, ctx)
        scheme, sep, _ = text.partition("://")
        if _LIBPQ_KEYWORDS.match(text):
            self.fail("a libpq keyword string is not taken here; give the database as a URL, "
                      "e.g. postgresql://digest@db.example.org:5432/news (the password from "
                      "PGPASSWORD, ~/.pgpass or DIGEST_STATE_PASSWORD)", param, ctx)
        if not sep or scheme.lower() not in ("postgresql", "postgres"):
            if sep and _SCHEME.fullmatch(scheme):  # psql://, a typo: not a folder's name
                self.fail(f"{scheme}:// is not a state: give a state folder or a "
                          "postgresql://user@host/db URL", param, ctx)
            return self._folder(Path(text), param, ctx)
        parts = urlsplit(text)
        if parts.password is not None or "password" in dict(parse_qsl(parts.query)):
            self.fail("a password in the URL is refused; put it in PGPASSWORD, ~/.pgpass "
                      "or DIGEST_STATE_PASSWORD", param, ctx)
        return text

    def _folder(self, path: Path, param: click.Parameter | None,
                ctx: click.Context | None) -> Path:
        # os.path's tests never raise: a folder that cannot be looked into (EACCES, a
        # name too long) is left for the store to report, with what to check.
        if os.path.exists(path) and not os.path.isdir(path):
            self.fail(f"{path} is a file, not a state folder: give a state folder "
                      "(made if missing) or a postgresql:// URL", param, ctx)
        return path


def state_option(f: F) -> F:
    return option("--state", type=StateParam(), default=Path(".digest"),
                  show_default=True, help="Folder for the journal, the lock and the "
                  "suppression list, or a PostgreSQL database: postgresql://user@host/db "
                  "(the password from PGPASSWORD, ~/.pgpass or DIGEST_STATE_PASSWORD).")(f)


def format_option(f: F) -> F:
    return option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                  show_default=True, help="Output format.")(f)
