"""Where returned mail is read from: a Maildir or an mbox file.

Mail is never deleted. A Maildir message that was dealt with moves from
``new/`` to ``cur/`` with the seen flag (``:2,S``), as a mail client would, and
one already seen is not read again; unrecognised mail stays where it is,
unread, for a person to look at. An mbox file is only read (rewriting it
could lose mail a delivery agent appends meanwhile); the state's record of
processed Message-IDs is what keeps a second run from doing anything.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from digest.errors import ConfigError


class Source(Protocol):
    """Messages to read, each with a handle to mark it seen by."""

    def messages(self) -> Iterator[tuple[str, bytes]]: ...

    def mark_seen(self, handle: str) -> None: ...


class MaildirSource:
    """A Maildir: the unread messages of ``new/`` and ``cur/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for sub in ("new", "cur"):
            folder = self.root / sub
            for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                if path.name.startswith(".") or not path.is_file():
                    continue
                if sub == "cur" and "S" in _flags(path.name):
                    continue
                yield f"{sub}/{path.name}", path.read_bytes()

    def mark_seen(self, handle: str) -> None:
        sub, _, name = handle.partition("/")
        base, _, flags = name.partition(":2,")
        seen = "".join(sorted(set(flags) | {"S"}))
        try:
            os.rename(self.root / sub / name, self.root / "cur" / f"{base}:2,{seen}")
        except OSError as exc:
            raise ConfigError(f"{self.root / sub / name}: cannot mark it seen ({exc}); "
                              "fix the Maildir's permissions") from exc


def _flags(name: str) -> str:
    return name.partition(":2,")[2]


class MboxSource:
    """An mbox file, read only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def messages(self) -> Iterator[tuple[str, bytes]]:
        box = mailbox.mbox(self.path, create=False)
        try:
            for key in box.iterkeys():
                yield str(key), box.get_bytes(key)
        finally:
            box.close()

    def mark_seen(self, handle: str) -> None:
        """Nothing to do: the state records what was processed."""


def open_source(text: str) -> Source:
    """The source ``text`` names: a Maildir folder or an mbox file."""
    path = Path(text)
    if path.is_dir():
        if not (path / "new").is_dir() and not (path / "cur").is_dir():
            raise ConfigError(f"{text} is a folder without new/ or cur/, not a Maildir; "
                              "give a Maildir or an mbox file", source="SOURCE")
        return MaildirSource(path)
    if path.is_file():
        return MboxSource(path)
    raise ConfigError(f"{text} does not exist; give a Maildir folder or an mbox file",
                      source="SOURCE")
