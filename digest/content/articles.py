"""Load a folder of articles into ``Article`` values.

Every metadata value goes through one table of field parsers (``FIELDS``),
whatever format it came from. Precedence, highest first:

1. the article's own metadata: YAML front matter, or the news-page layout
   (where the ``Published:`` stamp beats the header line's bare date);
2. the authors file (``authors.yaml`` in the articles folder), for
   ``author_bio`` only;
3. nothing: optional fields stay ``None`` and the summary is derived from the
   body later, by ``summarize``.

Only regular files inside the folder are read: symlinks that lead out of it
or nowhere, named pipes, devices and files over MAX_ARTICLE_BYTES are skipped
with a warning, and hidden files and folders are ignored.
"""

from __future__ import annotations

import codecs
import difflib
import errno
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from digest.content.dates import parse_datetime, parse_published
from digest.content.readers import (
    READERS,
    LayoutError,
    RawArticle,
    RawField,
    YamlLimitError,
    load_yaml,
)
from digest.errors import ArticleError
from digest.files import NotAFile, read_regular
from digest.model import Article, Tag, clean_text, shown

AUTHORS_FILES = ("authors.yaml", "authors.yml")
REQUIRED = ("title", "author", "date")
# Size caps, checked before reading: an article is a few KiB, a newsroom's
# authors file well under a MiB, so anything bigger is a mistake (a video
# saved as .md), and reading it whole could exhaust memory.
MAX_ARTICLE_BYTES = 1 << 20
MAX_AUTHORS_BYTES = 10 << 20
_LONGEST_DATE = 100  # characters; longer text is no date, and is not quoted whole
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,100}")


def _text(value: object) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = clean_text(str(value))
    if not text:
        raise ValueError("is empty")
    return text


def _date(value: object) -> object:
    if not isinstance(value, (str, date)):
        raise ValueError(f"expected a date, got {type(value).__name__} {shown(value)}")
    if isinstance(value, str) and len(value) > _LONGEST_DATE:
        raise ValueError(f"{shown(value)} is too long to be a date")
    # "December 31, 2023 at 11:27 am EST" is the news-page stamp; all else is ISO 8601.
    if isinstance(value, str) and " at " in value:
        return parse_published(value)
    return parse_datetime(value)


def _tags(value: object) -> tuple[Tag, ...]:
    if isinstance(value, str):
        items: list[object] = list(value.replace(";", ",").split(","))
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError("expected a list of tags or a comma-separated string")
    tags: dict[str, Tag] = {}
    for item in items:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise ValueError(f"tag {shown(item)} is not text")
        tag = Tag.of(str(item))
        if tag.slug:
            tags.setdefault(tag.slug, tag)
    return tuple(tags.values())


def _url(value: object) -> str:
    url = _text(value)
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{shown(url)} is not an http(s) URL")
    return url


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {shown(value)}")


def _weight(value: object) -> int:
    # YAML gives ints; a float such as 1.5 or nan would sort unpredictably.
    # A quoted value is read as ASCII digits only: int() would also take "1_0" and "٣".
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {shown(value)}")
    if abs(value) > 1_000_000:
        raise ValueError(f"{shown(value)} is out of range; use a number between -1000000 "
                         "and 1000000")
    return value


def _image(value: object) -> str:
    # Mail clients block or warn about plain-http images inside an https world.
    url = _url(value)
    if urlsplit(url).scheme != "https" or not urlsplit(url).netloc:
        raise ValueError(f"{shown(url)} is not an https URL; images must be served over https")
    return url


FIELDS: Mapping[str, Callable[[object], object]] = {
    "title": _text,
    "author": _text,
    "date": _date,
    "tags": _tags,
    "summary": _text,
    "url": _url,
    "section": _text,
    "author_bio": _text,
    "language": _text,
    "featured": _flag,
    "weight": _weight,
    "image": _image,
    "image_alt": _text,
}
KNOWN_KEYS = tuple(FIELDS)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The articles that parsed, one error per file that did not, and the
    warnings (unknown front-matter keys) about files that did or did not."""

    articles: tuple[Article, ...]
    problems: tuple[ArticleError, ...]
    warnings: tuple[ArticleError, ...] = ()


def unknown_keys(path: Path, raw: RawArticle) -> list[ArticleError]:
    """One warning per key nothing reads, naming the nearest known key: a typo
    such as ``sumary:`` would otherwise silently lose the value."""
    found = []
    for key, raw_field in raw.fields.items():
        if key in KNOWN_KEYS:
            continue
        near = difflib.get_close_matches(key.lower(), KNOWN_KEYS, n=1)
        hint = f"did you mean '{near[0]}'?" if near else "known keys: " + ", ".join(KNOWN_KEYS)
        found.append(ArticleError(path, f"unknown front-matter key {shown(key)}; {hint}",
                                  line=raw_field.line))
    return found


def build_article(path: Path, raw: RawArticle, bios: Mapping[str, str]) -> Article:
    """Parse every raw field through ``FIELDS``; the first bad one is an ArticleError."""
    values: dict[str, object] = {}
    for name, parse in FIELDS.items():
        raw_field = raw.fields.get(name)
        if raw_field is None or raw_field.value is None or raw_field.value == "":
            if name in REQUIRED:
                raise ArticleError(path, f"missing '{name}'; add a '{name}:' field")
            continue
        try:
            values[name] = parse(raw_field.value)
        except ValueError as exc:
            raise ArticleError(path, f"bad '{name}': {exc}", line=raw_field.line) from exc
    values.setdefault("tags", ())
    if "author_bio" not in values and str(values["author"]) in bios:
        values["author_bio"] = bios[str(values["author"])]
    values["markdown"] = raw.markdown
    return Article(source=path, body=raw.body, **values)  # type: ignore[arg-type]


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order, never leaving it. Symlinked
    folders are yielded (for a warning) but not descended."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(dirs):
            if Path(folder, name).is_symlink():
                yield Path(folder, name)
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder, name)


def _read_text(path: Path, root: Path, limit: int = MAX_ARTICLE_BYTES) -> str:
    if path.is_symlink():
        _check_symlink(path, root)
    try:
        data = read_regular(path, limit)
    except NotAFile as exc:
        raise ArticleError(path, f"{exc}; skipped") from exc
    # Strip the BOM before decoding so an error's offset counts from the same byte
    # as the line count ('utf-8-sig' reports offsets past the BOM).
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ArticleError(path, "is not UTF-8 text; re-save it as UTF-8", line=line) from exc


def _check_symlink(path: Path, root: Path) -> None:
    """Refuse a symlink that leads out of ``root``, or nowhere."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError as exc:
        raise ArticleError(path, "is a symlink to a file that does not exist; skipped") from exc
    except (OSError, RuntimeError) as exc:
        # Python 3.11 reports a loop as RuntimeError, later ones as ELOOP.
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            raise ArticleError(path, f"cannot be read: {exc.strerror}") from exc
        raise ArticleError(path, "is a symlink loop; skipped") from exc
    if not target.is_relative_to(root.resolve()):
        raise ArticleError(path, "is a symlink that leads outside the articles folder; skipped")


def load_bios(root: Path) -> dict[str, str]:
    """Author blurbs from ``authors.yaml``: ``Name: {bio: "..."}`` or ``Name: "..."``."""
    for name in AUTHORS_FILES:
        path = root / name
        if os.path.lexists(path):
            break
    else:
        return {}
    try:
        data = load_yaml(_read_text(path, root, MAX_AUTHORS_BYTES)) or {}
    except OSError as exc:
        raise ArticleError(path, f"cannot be read: {exc.strerror}") from exc
    except YamlLimitError as exc:
        raise ArticleError(path, exc.problem, line=exc.line + 1) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ArticleError(path, "is not valid YAML", line=mark.line + 1 if mark else None) from exc
    except (ValueError, OverflowError) as exc:  # YAML builds dates itself: 2026-13-45
        raise ArticleError(path, f"has a value YAML cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ArticleError(path, "must map each author's name to their bio")
    bios = {}
    for author, entry in data.items():
        bio = entry.get("bio") if isinstance(entry, dict) else entry
        if isinstance(bio, str) and clean_text(bio):
            bios[clean_text(str(author))] = clean_text(bio)
    return bios


def load_articles(root: Path) -> LoadResult:
    """Every article under ``root``; files that fail to parse become ``problems``."""
    if not root.is_dir():
        raise ArticleError(root, "not a folder; point --articles at your articles folder")
    articles: list[Article] = []
    problems: list[ArticleError] = []
    warnings: list[ArticleError] = []
    try:
        bios = load_bios(root)
    except ArticleError as exc:
        bios = {}
        problems.append(exc)
    for path in _walk(root):
        if path.is_symlink() and path.is_dir():
            problems.append(ArticleError(path, "is a symlinked folder; not followed"))
            continue
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            continue
        try:
            raw = reader(_read_text(path, root))
            warnings.extend(unknown_keys(path, raw))
            articles.append(build_article(path, raw, bios))
        except ArticleError as exc:
            problems.append(exc)
        except LayoutError as exc:
            problems.append(ArticleError(path, str(exc), line=exc.line))
        except OSError as exc:
            problems.append(ArticleError(path, f"cannot be read: {exc.strerror}"))
    return LoadResult(tuple(articles), tuple(problems), tuple(warnings))


__all__ = ["FIELDS", "KNOWN_KEYS", "LoadResult", "RawField", "build_article", "load_articles",
           "load_bios", "unknown_keys"]
