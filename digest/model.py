"""The frozen value types that cross packages (Tag, Block, Article, Subscriber),
and the few rules every reader shares: how text from a file is cleaned and
quoted in a message, and how an address is compared."""

from __future__ import annotations

import re
import reprlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeAlias

# Where a state is: a folder, or a postgresql:// URL (which --state passes as text).
StateLocation: TypeAlias = Path | str

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
    featured: bool = False  # the editor's lead story
    weight: int | None = None  # the editor's order: lighter first, before unweighted
    image: str | None = None
    image_alt: str | None = None
    markdown: str | None = None  # the body as written, for a Markdown article's web page

    @property
    def tag_slugs(self) -> frozenset[str]:
        return frozenset(tag.slug for tag in self.tags)

    @property
    def paragraphs(self) -> list[str]:
        return [block.text for block in self.body if block.kind == "paragraph"]


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One recipient. ``name`` is display text only, already free of control
    characters; ``tags`` are the tag slugs they want, and ``()`` means everything."""

    email: str
    name: str = ""
    tags: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return address_key(self.email)
