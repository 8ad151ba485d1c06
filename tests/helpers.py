"""Helpers shared by the test modules, imported as `from tests.helpers import ...`.

Fixtures live in tests/conftest.py (the working folder, tmpfs mounts) and
tests/smtpd_fixtures.py (the SMTP servers); plain functions and constants live here, so
that no test module keeps its own copy. Each reads real files, real SQLite databases or
runs the real CLI through click's CliRunner: nothing here mocks anything.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from click.testing import CliRunner, Result

from digest.email.message import Envelope
from digest.web.server import server

if TYPE_CHECKING:
    from tests.smtpd import FaultyServer

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
AS_OF = "2026-11-28"
"""The --as-of of the CLI tests: the sample articles' week ends here."""
# The link-signing key every test send uses (a test fixture, not a secret).
TEST_SECRET = "test-only-link-key-" + "0123456789abcdef" * 2


SENDER = "digest@example.org"


def envelope(n: int) -> Envelope:
    """A small message from SENDER to reader<n>@example.org, for transport-level tests."""
    data = (f"From: {SENDER}\r\nTo: reader{n}@example.org\r\nMessage-ID: <{n}@example.org>\r\n"
            f"Subject: Weekly\r\n\r\nHello, reader {n}.\r\n").encode()
    return Envelope(SENDER, f"reader{n}@example.org", f"<{n}@example.org>", data)


async def no_mark() -> None:
    """A ``before_data`` for tests without a journal: the mark is there at once."""


def digest_env(**extra: str) -> dict[str, str]:
    """The environment of a `digest` subprocess: this one's, without any DIGEST_*
    setting but the test link key, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return {**env, "DIGEST_SECRET": TEST_SECRET, **extra}

Mount = Callable[[str, int], Path]
"""conftest's `tiny_disk`: ``mount(name, kib)`` gives a tmpfs of that size."""

# The full row of the journal's deliveries table that tests read by default.
JOURNAL_COLUMNS = ("status", "attempts", "last_code", "last_reply")
# Short enough that a test never waits on a retry or a hung server.
FAST_RETRIES = ("--retry-delay", "0.01", "--timeout", "5")


# --- the command line --------------------------------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """`digest ARGS` in this process; an unexpected exception fails the test with it."""
    # Imported here, not at the top: conftest imports this module, and a CLI that does
    # not import should fail the CLI tests, not stop every test from being collected.
    from digest.cli.main import cli

    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`digest ARGS`: (exit code, stdout, stderr)."""
    result = invoke(*args, env=env)
    return result.exit_code, result.stdout, result.stderr


def run_send(*args: str, lists: str | Sequence[str] = (),
             env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`digest send --as-of AS_OF`, one --list per name in LISTS, fast retries, then ARGS."""
    names = [lists] if isinstance(lists, str) else list(lists)
    list_args = [arg for name in names for arg in ("--list", name)]
    return run("send", "--as-of", AS_OF, *list_args, *FAST_RETRIES, *args, env=env)


def transport(server: FaultyServer, scheme: str = "smtp", user: str = "") -> str:
    """The --transport URL of SERVER, with USER@ before the host when given."""
    return f"{scheme}://{user + '@' if user else ''}{server.host}:{server.port}"


def send(server: FaultyServer, *extra: str, lists: str | Sequence[str] = "five.csv",
         scheme: str = "smtp", user: str = "",
         env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`digest send` of LISTS to SERVER with fast retries, then EXTRA."""
    return run_send("--transport", transport(server, scheme, user), *extra, lists=lists,
                    env=env)


def suppression_list(*flags: str) -> list[dict[str, str]]:
    """`digest suppress list --format json FLAGS`, which must succeed and say nothing else."""
    code, out, err = run("suppress", "list", "--format", "json", *flags)
    assert (code, err) == (0, ""), err
    entries: list[dict[str, str]] = json.loads(out)
    return entries


def suppressed() -> list[str]:
    """The suppressed addresses, as `digest suppress list` orders them."""
    return [entry["email"] for entry in suppression_list()]


def every_article() -> list[dict[str, Any]]:
    """`digest articles --format json` of every article in the folder, whatever its date."""
    code, out, err = run("articles", "--since", "2000-01-01", "--as-of", "2100-01-01",
                         "--limit", "1000", "--format", "json")
    assert code == 0, err
    items: list[dict[str, Any]] = json.loads(out)
    return items


def slug(tag: str) -> str:
    """Tags compare by slug (README): case, spaces, '-' and '_' do not matter."""
    return re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")


def known_slugs() -> list[str]:
    """The slugs of every tag in the folder's articles, sorted."""
    return sorted({slug(t) for a in every_article() for t in a["tags"]})


def known_tags_listing(slugs: Sequence[str]) -> str:
    """How the unknown-tag warning lists the folder's tags: ten, then how many more."""
    shown = slugs[:10]
    return ", ".join(shown) + (f" and {len(slugs) - 10} more" if len(slugs) > 10 else "")


# --- state and delivery ------------------------------------------------------------


def journal(workdir: Path, *columns: str, campaign: str | None = None,
            state: str | Path = ".digest") -> dict[str, tuple[Any, ...]]:
    """email -> COLUMNS (default JOURNAL_COLUMNS) of its row in the journal of the --state
    folder STATE, relative to WORKDIR; only CAMPAIGN's rows when given."""
    names = ", ".join(columns or JOURNAL_COLUMNS)
    query = f"SELECT email, {names} FROM deliveries"
    params: tuple[str, ...] = ()
    if campaign is not None:
        query, params = query + " WHERE campaign=?", (campaign,)
    with closing(sqlite3.connect(workdir / state / "journal.sqlite3")) as db:
        return {email: tuple(values) for email, *values in db.execute(query, params)}


def journal_statuses(workdir: Path, state: str | Path = ".digest") -> dict[str, str]:
    """email -> its delivery status in the journal (see `journal`)."""
    return {email: status for email, (status,) in journal(workdir, "status", state=state).items()}


def in_flight(workdir: Path) -> set[str]:
    """The addresses the journal marks in flight: sent to the server, answer not recorded."""
    return {email for email, status in journal_statuses(workdir).items() if status == "inflight"}


def recipients(server: FaultyServer) -> Counter[str]:
    """How many messages SERVER got for each recipient."""
    return Counter(rcpt for message in server.received for rcpt in message.rcpt_tos)


# --- files -------------------------------------------------------------------------


def write_list(path: Path, count: int, *, local: str = "reader",
               width: int = 3) -> list[str]:
    """A subscriber list of COUNT numbered addresses (LOCAL + the number, WIDTH digits) at
    PATH; returns the addresses."""
    emails = [f"{local}{i:0{width}d}@example.org" for i in range(count)]
    path.write_text("email,name\n" + "".join(f"{e},Reader {i}\n" for i, e in enumerate(emails)),
                    encoding="utf-8")
    return emails


def articles_folder(tmp_path: Path, source: Path, *names: str) -> Path:
    """A fresh tmp_path/articles holding copies of the named files of SOURCE."""
    root = tmp_path / "articles"
    root.mkdir()
    for name in names:
        shutil.copyfile(source / name, root / name)
    return root


def tz(hours: float) -> timezone:
    """A fixed UTC offset of HOURS."""
    return timezone(timedelta(hours=hours))


# --- messages on the wire ----------------------------------------------------------


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def head_and_body(data: bytes) -> tuple[bytes, bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no blank line after the headers"
    return head, body


def head_of(data: bytes) -> bytes:
    return head_and_body(data)[0]


def folded_headers(head: bytes) -> list[tuple[str, list[bytes]]]:
    """Header fields as (name, [raw lines]) pairs, in order."""
    found: list[tuple[str, list[bytes]]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            found[-1][1].append(line)
        else:
            found.append((line.split(b":", 1)[0].decode("ascii"), [line]))
    return found


def fields(head: bytes) -> dict[str, list[bytes]]:
    """Each header field's raw lines, by name."""
    return dict(folded_headers(head))


def unfolded(head: bytes, name: str) -> str:
    """The one NAME field's value with RFC 5322 unfolding (CRLF removed, the space kept)."""
    (lines,) = [lines for field, lines in folded_headers(head) if field == name]
    return b"".join(lines).decode("utf-8").split(":", 1)[1].lstrip(" ")


def rfc2047(text: str) -> str:
    return str(make_header(decode_header(text)))


def phrase_and_address(head: bytes, name: str) -> tuple[str, str, str]:
    """(raw phrase, decoded display name, address) of a mailbox or List-Id field, read as
    RFC 2047 section 6.2 says: whitespace between adjacent encoded-words is dropped.
    CPython 3.11's modern parser keeps it inside display names (gh-128110, fixed upstream
    later), so ``email.policy.default`` cannot judge a name split over several words."""
    value = unfolded(head, name)
    if not value.endswith(">"):
        return "", "", value
    if value.startswith("<"):
        return "", "", value[1:-1]
    phrase, _, address = value[:-1].rpartition(" <")
    if phrase.startswith('"'):
        return phrase, re.sub(r"\\(.)", r"\1", phrase[1:-1]), address
    return phrase, rfc2047(phrase), address


def running(app: object, sock: object) -> tuple[uvicorn.Server, threading.Thread]:
    """``app`` on a real uvicorn server in a thread, on an already bound socket."""
    instance = server(app)  # type: ignore[arg-type]
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.005)
    return instance, thread


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def require_chromium() -> None:
    """Skip the calling test module without the system Chromium, except in CI,
    where the browser tests must run (.ci/run installs it)."""
    import pytest

    if CHROMIUM is None and not os.environ.get("CI"):
        pytest.skip("system Chromium is not installed (apt-get install chromium)",
                    allow_module_level=True)


def wait_for(what: str, ready: Callable[[], object], *processes: subprocess.Popen[bytes]) -> None:
    """Poll ``ready`` for up to a minute, failing at once if a process ends first."""
    deadline = time.monotonic() + 60
    while not ready():
        assert all(p.poll() is None for p in processes), f"a process ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within a minute"
        time.sleep(0.005)


def copies(server: FaultyServer) -> dict[str, list[str | None]]:
    """Each recipient the server got mail for, with the Message-ID of every copy."""
    found: dict[str, list[str | None]] = defaultdict(list)
    for message in server.received:
        for rcpt in message.rcpt_tos:
            found[rcpt].append(message.message_id)
    return found


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which always comes first."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
