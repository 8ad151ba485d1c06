"""Settings: the resolved configuration of one run, and the config file.

Settings never leave the CLI: each command resolves them into the typed
options of the use case it calls (Source, IssueOptions, RenderOptions).

Every option has three sources, highest first: the command-line flag, the
environment variable ``DIGEST_<FLAG>`` (``--reply-to`` is DIGEST_REPLY_TO),
and ``digest.toml`` (in the working folder, or ``--config``), whose keys are
the long flag names (``reply-to`` or ``reply_to``). The CLI resolves them with
click; this module reads the file and holds the result.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest.errors import ConfigError
from digest.files import NotAFile, read_regular
from digest.model import shown

if TYPE_CHECKING:  # the pipeline is imported when a command runs, not for --help
    from digest.content.folder import Source
    from digest.content.selection import IssueOptions
    from digest.email.options import RenderOptions
    from digest.email.signing import Key

DEFAULT_CONFIG = Path("digest.toml")
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes
# Secrets are settable in the file (or the environment) but never as a flag,
# so they never show up in the process list or shell history.
FILE_ONLY_KEYS = ("smtp_password", "secret_file", "imap_password")
# And the reverse: flags that only a person at the keyboard may give. A `test`
# left in the file, or DIGEST_TEST left exported, would quietly turn every cron
# send into a test send.
FLAG_ONLY_KEYS = ("test",)


@dataclass(frozen=True, slots=True)
class Settings:
    """What to put in a digest and who it comes from."""

    articles: Path
    as_of: datetime
    since: str = "7d"
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    limit: int = 10
    summary_words: int = 60
    strict: bool = False
    templates: Path | None = None
    name: str = "The Weekly Digest"
    sender: str = "The Weekly Digest <digest@example.org>"
    reply_to: str | None = None
    site_url: str | None = None
    intro: Path | None = None
    url_template: str | None = None
    subject: str | None = None
    postal_address: str | None = None
    archive_url: str | None = None

    def source(self) -> Source:
        from digest.content.folder import Source

        return Source(self.articles, self.strict, self.url_template, self.archive_url)

    def issue(self) -> IssueOptions:
        """The issue's options; reads the editor's note, if there is one."""
        from digest.content.intro import read_intro
        from digest.content.selection import IssueOptions

        intro = read_intro(self.intro) if self.intro else None
        return IssueOptions(self.as_of, self.since, self.tags, self.exclude_tags, self.limit,
                            self.summary_words, intro)

    def render(self, keys: Sequence[Key] | None = None) -> RenderOptions:
        """How the digest looks; with ``keys``, its links are signed."""
        from digest.email.links import make_signer
        from digest.email.message import Identity
        from digest.email.options import RenderOptions

        identity = Identity(self.name, self.sender, self.reply_to, self.site_url,
                            self.postal_address, self.archive_url)
        signer = make_signer(keys, identity) if keys else None
        return RenderOptions(identity, self.templates, signer, self.subject)


def read_config(path: Path, known: Iterable[str]) -> dict[str, object]:
    """The file's values keyed by option name (``reply-to`` -> ``reply_to``).

    An unknown key is an error, so a typo never silently does nothing.
    """
    try:
        data = tomllib.loads(read_regular(path, MAX_CONFIG_BYTES).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", source=str(path)) from exc
    except NotAFile as exc:
        raise ConfigError(str(exc), source=str(path)) from exc
    except RecursionError as exc:
        raise ConfigError("is not valid TOML: it nests too deeply", source=str(path)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"is not valid TOML: {exc}", source=str(path)) from exc
    known = set(known)
    values: dict[str, object] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(
                f"unknown key {shown(key)}; known keys: {', '.join(sorted(known))}",
                source=str(path),
            )
        values[name] = value
    return values
