"""The one exception tree. Every error a user can cause is a DigestError.

Errors carry data (path, line, SMTP code) rather than pre-baked prose, so the
CLI can print one clear line and callers can react programmatically. Each
``str()`` is a complete, one-line message that says what is wrong and how to
fix it.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path


def first_line(exc: BaseException) -> str:
    """A library's error as one line of ours: its first line (psycopg's run on with
    LINE and CONTEXT lines), or its type when it says nothing."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class DigestError(Exception):
    """Root of every error that digest reports to a user instead of a traceback."""

    exit_code = 1


class ConfigError(DigestError):
    """A bad flag, environment variable or config-file value."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.message = message
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class InputError(DigestError):
    """Bad content in a file the user gave us, located by path and line."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else f"{self.path}"
        super().__init__(f"{where}: {message}")


class ArticleError(InputError):
    """An article file that cannot be parsed."""


class SubscriberError(InputError):
    """A subscriber list that cannot be read."""


class TemplateError(DigestError):
    """A template that is missing or fails to render."""

    def __init__(self, name: str, message: str, *, searched: Sequence[Path] = ()) -> None:
        self.name = name
        self.searched = tuple(searched)
        self.message = message
        where = ""
        if self.searched:
            where = " (searched: " + ", ".join(str(p) for p in self.searched) + ")"
        super().__init__(f"template {name!r}: {message}{where}")


class HeaderError(DigestError):
    """A header value that would break the message, such as one carrying CR/LF."""


class TransportError(DigestError):
    """Delivery failed for a reason that concerns the whole transport."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


class Interrupted(DigestError):
    """SIGTERM or Ctrl-C stopped a send part-way, gently: progress is saved and a
    rerun sends the rest, so it is "not everyone yet" (3) even if nothing went out."""

    exit_code = 3

    def __init__(self, signum: int, what: str) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}: {what}; progress is "
                         "saved, run again to send the rest")


class StateError(DigestError):
    """A part of the state (a folder's file, the database's lock) cannot be used.
    ``flag`` is where the user named the state: --state, or SRC or DST of a copy."""

    def __init__(self, message: str, flag: str = "--state") -> None:
        self.message = message
        self.flag = flag
        super().__init__(f"{message}; check {flag}")

    def named(self, flag: str) -> StateError:
        return StateError(self.message, flag)


class LockedError(DigestError):
    """Another run holds the state folder."""

    exit_code = 75

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(
            f"another digest run holds {path} ({holder}); it is still running, so this "
            "run stops here. Try again when it has finished."
        )


class TooManyConnectionErrors(DigestError):
    """The server kept failing at the connection level; the run stopped early."""

    exit_code = 69

    def __init__(self, count: int, last: str) -> None:
        self.count = count
        super().__init__(
            f"stopped after {count} connection errors in a row (last: {last}); "
            "progress is saved, run again when the server is back"
        )
