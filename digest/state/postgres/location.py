"""Where a PostgreSQL state is, and how to reach it without ever showing a secret.

A location is a ``postgresql://`` (or ``postgres://``) URL with no password in
it. The password comes from libpq's usual places (PGPASSWORD, ~/.pgpass,
PGPASSFILE) or DIGEST_STATE_PASSWORD, read here when connecting; every
message shows the URL with any password taken out.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from digest.errors import ConfigError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

SCHEMES = ("postgresql", "postgres")
PASSWORD_VARIABLE = "DIGEST_STATE_PASSWORD"
CONNECT_TIMEOUT = 10  # seconds: a host that never answers is an error, not a hang


def is_postgres_url(text: str) -> bool:
    return text.partition("://")[0].lower() in SCHEMES and "://" in text


def shown_url(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None and "password" not in parts.query.lower():
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    query = "&".join(f"{k}={v}" for k, v in parse_qsl(parts.query) if k != "password")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def password_problem(url: str) -> str | None:
    """Why ``url`` may not be used as given: a password in it would sit in argv,
    in the shell's history and in every process listing."""
    parts = urlsplit(url)
    if parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query)):
        return (f"{shown_url(url)}: a password in the URL is refused; put it in "
                f"PGPASSWORD, ~/.pgpass or {PASSWORD_VARIABLE}")
    return None


@dataclass(frozen=True, slots=True)
class PostgresLocation:
    """A PostgreSQL state: the URL as given, checked to carry no password."""

    url: str

    def __post_init__(self) -> None:
        problem = password_problem(self.url)
        if problem is not None:
            raise ConfigError(problem, source="--state")

    @property
    def shown(self) -> str:
        return shown_url(self.url)

    def connect(self) -> psycopg.Connection[TupleRow]:
        """A connection in autocommit mode: each write says where its transaction is."""
        import psycopg  # only a PostgreSQL state pays for importing it
        from psycopg.conninfo import make_conninfo

        extra = {"connect_timeout": str(CONNECT_TIMEOUT), "application_name": _application_name()}
        password = os.environ.get(PASSWORD_VARIABLE)
        if password:
            extra["password"] = password
        try:
            return psycopg.connect(make_conninfo(self.url, **extra),
                                   autocommit=True)
        except psycopg.Error as exc:
            raise ConfigError(_cannot_connect(self.shown, exc), source="--state") from exc


def _application_name() -> str:
    """What another session sees of us in pg_stat_activity: the lock's holder."""
    return f"digest pid {os.getpid()} on {socket.gethostname()}"[:63]


def _cannot_connect(shown: str, exc: Exception) -> str:
    """One line: what the server said, and what to do about it."""
    said = str(exc)
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    reason = reason.removeprefix("connection failed: ")
    lowered = said.lower()
    if "password" in lowered:
        fix = f"set {PASSWORD_VARIABLE}, PGPASSWORD or ~/.pgpass for this user"
    elif "does not exist" in lowered:
        fix = "create the database and role first, or fix the URL"
    elif "refused" in lowered or "timeout" in lowered or "could not" in lowered:
        fix = "check that PostgreSQL runs there and accepts connections"
    else:
        fix = "check the URL and the server's pg_hba.conf"
    return f"cannot connect to {shown} ({reason}); {fix}"
