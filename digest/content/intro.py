"""The editor's note: a short Markdown file shown above the stories.

It is read once, when the run starts, with the same limits as an article
(a regular file, UTF-8, at most MAX_INTRO_BYTES), so a wrong path or a
binary file is one line naming ``--intro``, never half an issue.
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

from digest.errors import ConfigError
from digest.files import NotAFile, open_regular
from digest.model import clean_text

MAX_INTRO_BYTES = 64 << 10  # a note is a paragraph or three


def read_intro(path: Path) -> str:
    """The note's Markdown, without a BOM or control characters."""
    try:
        with open_regular(path) as file:
            # Refused from its size, before it is read (a video saved as .md).
            size = os.fstat(file.fileno()).st_size
            data = file.read(MAX_INTRO_BYTES + 1) if size <= MAX_INTRO_BYTES else b""
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist; point it at a Markdown file",
                          source="--intro") from exc
    except NotAFile as exc:
        raise ConfigError(f"{path} {exc}; point it at a Markdown file",
                          source="--intro") from exc
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}", source="--intro") from exc
    if size > MAX_INTRO_BYTES or len(data) > MAX_INTRO_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_INTRO_BYTES >> 10} KiB; a note is a "
                          "paragraph or three", source="--intro")
    try:
        text = data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text; re-save it as UTF-8",
                          source="--intro") from exc
    # Line by line, keeping each line's indent, so Markdown's structure (nested
    # lists, code blocks, paragraphs) survives while control characters go.
    lines = [_indent(line) + clean_text(line) for line in text.splitlines()]
    note = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in lines)).strip("\n")
    if not note.strip():
        raise ConfigError(f"{path} is empty; write the note, or drop --intro", source="--intro")
    return note


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))] if line.strip() else ""
