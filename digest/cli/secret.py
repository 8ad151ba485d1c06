"""``digest secret``: the keys that sign every link a message carries, and
where a command finds them (DIGEST_SECRET, or secret-file in digest.toml or
DIGEST_SECRET_FILE; never a flag, so a key never shows in the process list)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.email.signing import Key

MAX_SECRET_FILE = 64 * 1024


def signing_keys(obj: dict[str, Any] | None) -> tuple[Key, ...] | None:
    """The link-signing keys, newest first; None when none is configured."""
    from digest.email.signing import parse_keys
    from digest.files import NotAFile, read_regular

    text = os.environ.get("DIGEST_SECRET")
    if text:
        return parse_keys(text, "DIGEST_SECRET")
    where = os.environ.get("DIGEST_SECRET_FILE") or (obj or {}).get("secret_file")
    if not where:
        return None
    path = Path(str(where))
    try:
        data = read_regular(path, MAX_SECRET_FILE)
    except (OSError, NotAFile) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"cannot read the secret file {path}: {reason}",
                          source="secret-file") from exc
    try:
        return parse_keys(data.decode("utf-8"), str(path))
    except UnicodeDecodeError as exc:
        raise ConfigError("is not UTF-8 text", source=str(path)) from exc


@click.group()
def secret() -> None:
    """Keys that sign unsubscribe and preferences links.

    \b
    Examples:
      digest secret new > /etc/digest/secret          # the first key
      (digest secret new; cat /etc/digest/secret) > new && mv new /etc/digest/secret
    """


@secret.command("new")
def new() -> None:
    """Print a new random key (256 bits) on stdout.

    Keys are read newest first, one per line, from the file that secret-file
    names (or from DIGEST_SECRET, separated by spaces or commas). The newest
    signs; all of them verify, so put a new key first and keep the old ones
    for as long as old emails should keep working.
    """
    from digest.email.signing import new_secret

    click.echo(new_secret())
    click.echo("Put it first in your secret file (secret-file in digest.toml), or in "
               "DIGEST_SECRET; keep older keys after it.", err=True)
