"""Writing the archive: only what changed, each file whole, and nothing of anyone else's.

A file whose bytes are already on disk is left alone, so it keeps its mtime
and a web server's caches stay valid. Every write goes through a temporary
file and a rename (``files.write_atomic``), so no reader sees half a page.
Pages are written before the index, feed and sitemap that link to them, and
stale pages are removed after, so no link is ever dangling in between.

The manifest (``.digest-archive.json``) lists what the last build wrote. A
page that is no longer produced is removed only if it is listed there, so a
file someone else put in the folder (a CNAME, a robots.txt) is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from digest.errors import ConfigError, DigestError
from digest.files import write_atomic

MANIFEST = ".digest-archive.json"
# What the archive writes, and so all a manifest may name for removal: a manifest
# edited to say "../../etc/passwd" must not make a rebuild delete it.
_OURS = re.compile(r"(?:[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*\.(?:html|xml)")
# Written last: the pages that link to all the others.
_LINKING = ("index.html", "feed.xml", "sitemap.xml")

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    unchanged: int
    removed: int


def prepare(out: Path, flag: str = "--out") -> None:
    """Make the folder, or say in one line, naming ``flag``, why it cannot be
    the archive's."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder; give the archive a folder of "
                          "its own", source=flag)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror}; give a folder you can "
                          "write to", source=flag) from exc


def write_tree(out: Path, files: Mapping[str, bytes], warn: Warn,
               flag: str = "--out") -> WriteResult:
    """Write ``files`` (relative path -> bytes) into ``out``; remove what the
    last build wrote that is no longer among them."""
    before = _manifest(out, warn)
    order = sorted(files, key=lambda name: (name in _LINKING or name.startswith("page/"), name))
    written = 0
    for name in order:
        path = out / name
        if _holds(path, files[name]):
            continue
        _make_parent(path, flag)
        write_atomic(path, files[name])
        written += 1
    removed = 0
    for name in sorted(before - set(files)):
        removed += _remove(out, name)
    listing = (json.dumps({"written-by": "digest archive", "files": sorted(files)}, indent=1)
               + "\n").encode()
    if not _holds(out / MANIFEST, listing):
        write_atomic(out / MANIFEST, listing)
    return WriteResult(written, len(files) - written, removed)


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file holding exactly ``data``; never opens
    anything else (a named pipe there would block the read)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def _make_parent(path: Path, flag: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path.parent}: {exc.strerror}; give a folder you "
                          "can write to", source=flag) from exc


def _manifest(out: Path, warn: Warn) -> set[str]:
    """What the last build wrote; nothing (so nothing is removed) if unknown."""
    path = out / MANIFEST
    if not path.is_file():
        return set()
    try:
        names = json.loads(path.read_bytes())["files"]
        if not isinstance(names, list):
            raise TypeError("files is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warn(f"{path} cannot be read ({exc}); no old page is removed this time")
        return set()
    return {name for name in names if isinstance(name, str) and _OURS.fullmatch(name)}


def _remove(out: Path, name: str) -> int:
    path = out / name
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise DigestError(f"cannot remove the old page {path}: {exc.strerror}") from exc
    with contextlib.suppress(OSError):  # page/ when the index shrinks back to one page
        if path.parent != out and not any(path.parent.iterdir()):
            path.parent.rmdir()
    return 1
