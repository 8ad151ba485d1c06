"""The frozen value types that flow through the pipeline (Tag, Block, Article),
and the few rules every reader shares: how text from a file is cleaned and
quoted in a message, how an address is compared, and which files are read."""

from __future__ import annotations

import io
import os
import re
import reprlib
import stat
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

_NON_SLUG = re.compile(r"[^a-z0-9]+")
# Control characters (other than whitespace) and private-use code points: the
# first can break headers, the second are reserved for recipient placeholders.
_UNWANTED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff]")


def clean_text(text: str) -> str:
    """Content text with whitespace runs (CR and LF included) collapsed to one
    space and control and private-use characters removed."""
    return " ".join(_UNWANTED.sub("", text).split())


def shown(value: object, limit: int = 40) -> str:
    """``value`` quoted for a one-line message, cut to about ``limit`` characters:
    a value from a file can be megabytes long, or a list nested a thousand deep."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "…")
    brief = reprlib.Repr()  # repr() of a big container is as big as the container
    brief.maxlevel, brief.maxlist, brief.maxtuple, brief.maxdict = 3, 4, 4, 4
    brief.maxstring = brief.maxother = limit
    text = brief.repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def address_key(email: str) -> str:
    """What two addresses must share to be one person.

    The domain compares case-insensitively, and so does an ASCII local part,
    as every major provider does (Ann@Example.org is ann@example.org). A local
    part with other characters compares exactly, after NFC normalisation:
    casefolding would make straße and strasse one person, and they are two.
    """
    if email.isascii():  # nearly every address: the whole rule is lower()
        return email.strip().lower()
    text = unicodedata.normalize("NFC", email.strip())
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    return f"{local.lower() if local.isascii() else local}@{domain.lower()}"


_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a folder"}


class NotAFile(ValueError):
    """A path that is not a regular file, or one too big to read; ``str()``
    says which, in words that follow the file's name."""


def open_regular(path: Path) -> io.BufferedReader:
    """``path`` opened for reading, if it is a regular file (symlinks followed).

    A named pipe, socket or device is refused before it is opened, and the
    open itself cannot block (O_NONBLOCK), so no such file can hang a run.
    Raises OSError when the file cannot be opened, NotAFile when it is not
    a regular file.
    """
    _regular(os.stat(path).st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        _regular(os.fstat(fd).st_mode)  # it may have been replaced since the stat
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes, without
    reading more than that (see open_regular). Too big is NotAFile."""
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        data = file.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise NotAFile(f"is larger than {_megabytes(limit)} "
                           f"({_megabytes(max(size, len(data)))})")
    return data


def _regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
        raise NotAFile(f"is not a regular file but {kind}")


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.3g} MiB"


def slugify(text: str) -> str:
    """``"Local Government"``, ``"local_government"`` and ``"LOCAL-GOVERNMENT"`` all
    become ``"local-government"``; accents fold away so ``"Énergie"`` matches ``"energie"``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_SLUG.sub("-", folded.lower()).strip("-")


@dataclass(frozen=True, slots=True)
class Tag:
    """A tag as written (for display) and its slug (for every comparison)."""

    name: str
    slug: str

    @classmethod
    def of(cls, name: str) -> Tag:
        return cls(name=name.strip(), slug=slugify(name))


@dataclass(frozen=True, slots=True)
class Block:
    """One piece of an article body: a paragraph or a sub-heading."""

    kind: Literal["paragraph", "heading"]
    text: str


@dataclass(frozen=True, slots=True)
class Article:
    """One parsed article. ``summary`` is the explicit one, if the file has it."""

    title: str
    author: str
    date: datetime
    tags: tuple[Tag, ...]
    source: Path
    body: tuple[Block, ...] = ()
    summary: str | None = None
    url: str | None = None
    section: str | None = None
    author_bio: str | None = None
    language: str | None = None

    @property
    def tag_slugs(self) -> frozenset[str]:
        return frozenset(tag.slug for tag in self.tags)

    @property
    def paragraphs(self) -> list[str]:
        return [block.text for block in self.body if block.kind == "paragraph"]
