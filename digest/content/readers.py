"""Readers turn one file's text into raw metadata and body blocks.

Each reader knows one format's layout and nothing about field types: it
returns every value with the line it came from, and ``articles`` parses them
all through one table. A reader raises ``ValueError`` with a line number
(``LayoutError``) when the file does not follow its layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from digest.model import Block, clean_text, shown

# What YAML aliases may repeat in one file, in values and in characters. A
# "billion laughs" of a few hundred bytes expands to gigabytes; no real front
# matter or authors file repeats more than a handful of values.
MAX_ALIAS_VALUES = 10_000
MAX_ALIAS_CHARACTERS = 1 << 20
# Lists and mappings nested deeper than this are refused: nothing we read
# nests more than two levels, and PyYAML composes nodes recursively.
MAX_YAML_DEPTH = 100


class LayoutError(ValueError):
    """The text does not follow the format's layout, at ``line`` (1-based)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class RawField:
    value: object
    line: int | None


@dataclass(frozen=True, slots=True)
class RawArticle:
    fields: dict[str, RawField] = field(default_factory=dict)
    body: tuple[Block, ...] = ()
    markdown: str | None = None  # a Markdown article's body as written, for its web page


# --- YAML, bounded ------------------------------------------------------------


class YamlLimitError(yaml.YAMLError):
    """YAML that is valid but would take too much memory or recursion to load:
    ``problem`` says which, from ``line`` (0-based, in the YAML text)."""

    def __init__(self, problem: str, line: int) -> None:
        self.problem = problem
        self.line = line
        super().__init__(problem)


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that counts, while composing, what aliases repeat and how
    deep nodes nest, and stops past MAX_ALIAS_* or MAX_YAML_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._repeated = (0, 0)  # values, characters
        # The expanded size (values, characters) of every node composed so far.
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line if event.start_mark is not None else 0
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # an alias to a node that contains it
                raise YamlLimitError("uses a YAML alias inside its own anchor", line)
            self._repeated = (self._repeated[0] + size[0], self._repeated[1] + size[1])
            if self._repeated[0] > MAX_ALIAS_VALUES or self._repeated[1] > MAX_ALIAS_CHARACTERS:
                raise YamlLimitError("uses YAML aliases that expand too far (more than "
                                     f"{MAX_ALIAS_VALUES:,} values); write the values out", line)
            return node
        if self._depth >= MAX_YAML_DEPTH:
            raise YamlLimitError(
                f"nests lists or mappings more than {MAX_YAML_DEPTH} levels deep", line)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._sizes[id(node)] = self._size(node)
        return node

    def _size(self, node: Node) -> tuple[int, int]:
        if isinstance(node, ScalarNode):
            return 1, len(node.value)
        if isinstance(node, SequenceNode):
            children = [self._sizes[id(child)] for child in node.value]
        elif isinstance(node, MappingNode):
            children = [self._sizes[id(part)] for pair in node.value for part in pair]
        else:
            children = []
        return 1 + sum(c[0] for c in children), sum(c[1] for c in children)


def load_yaml(text: str) -> object:
    """``yaml.safe_load`` with bounds: aliases that repeat too much and nesting
    too deep raise YamlLimitError (a YAMLError, with the mark where it stopped)."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


# --- Markdown with YAML front matter ---------------------------------------

_FENCE = re.compile(r"^(---|\.\.\.)\s*$")
_KEY_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_INLINE_FIELDS = ("title", "summary")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# Underscores only delimit emphasis at word edges: NIGHT_BUS_PASS stays as written.
_MD_EMPHASIS = re.compile(
    r"(\*\*|\*|`)(\S(?:.*?\S)?)\1|(?<!\w)(__|_)(\S(?:.*?\S)?)\3(?!\w)"
)


# CommonMark: a backslash before any ASCII punctuation character makes it
# literal, except inside a code span, whose text is taken as written.
_ASCII_PUNCTUATION = r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""
_LITERALS = re.compile(r"\\([" + re.escape(_ASCII_PUNCTUATION) + r"])|(`+)(.+?)(?<!`)\2(?!`)")
# Literal punctuation hides as a private-use character while links and emphasis
# are stripped, so an escaped '*' or '_' can never pair up as markup.
_HIDDEN_BASE = 0xE000
_HIDE = {ord(c): chr(_HIDDEN_BASE + ord(c)) for c in _ASCII_PUNCTUATION}
_REVEAL = {_HIDDEN_BASE + ord(c): c for c in _ASCII_PUNCTUATION}


def _hide_literal(match: re.Match[str]) -> str:
    if match[1] is not None:
        return match[1].translate(_HIDE)
    return match[3].translate(_HIDE)


def _unwrap(match: re.Match[str]) -> str:
    return match[2] if match[1] else match[4]


def _plain_inline(text: str) -> str:
    """Drop inline Markdown so summaries read as prose in both parts of the email:
    escapes and code spans become their literal text, links and emphasis their words."""
    hidden = _LITERALS.sub(_hide_literal, text)
    return _MD_EMPHASIS.sub(_unwrap, _MD_LINK.sub(r"\1", hidden)).translate(_REVEAL)


def _paragraphs(lines: list[str], first_line: int) -> Iterator[tuple[int, list[str]]]:
    """Runs of non-blank lines, each with the 1-based number of its first line."""
    run: list[str] = []
    start = first_line
    for number, line in enumerate(lines, start=first_line):
        if line.strip():
            if not run:
                start = number
            run.append(line.strip())
        elif run:
            yield start, run
            run = []
    if run:
        yield start, run


def read_markdown(text: str) -> RawArticle:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise LayoutError("a Markdown article must start with a '---' line of YAML front matter", 1)
    end = next((i for i in range(1, len(lines)) if _FENCE.match(lines[i])), None)
    if end is None:
        raise LayoutError("the front matter has no closing '---' line", 1)
    try:
        meta = load_yaml("\n".join(lines[1:end])) or {}
    except YamlLimitError as exc:
        raise LayoutError(f"front matter {exc.problem}", exc.line + 2) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        line = mark.line + 2 if mark is not None else 1
        raise LayoutError(f"front matter is not valid YAML: {problem}", line) from exc
    except (ValueError, OverflowError) as exc:
        # YAML builds dates itself, and "2026-13-45" fails there, not in our parsers.
        raise LayoutError(f"front matter has a value YAML cannot read: {exc}", 2) from exc
    if not isinstance(meta, dict):
        raise LayoutError("front matter must be a mapping of 'key: value' lines", 2)
    key_lines: dict[str, int] = {}
    for number, line in enumerate(lines[1:end], start=2):
        match = _KEY_LINE.match(line)
        if match:
            key_lines.setdefault(match[1], number)
    fields = {str(k): RawField(v, key_lines.get(str(k))) for k, v in meta.items()}
    for name in _INLINE_FIELDS:
        # Front matter sits in a Markdown file, so its prose may carry Markdown escapes.
        if name in fields and isinstance(fields[name].value, str):
            fields[name] = RawField(_plain_inline(str(fields[name].value)), fields[name].line)
    blocks: list[Block] = []
    for _, run in _paragraphs(lines[end + 1 :], end + 2):
        # A '#' heading needs no blank line around it: it ends the paragraph before it.
        pending: list[str] = []
        for line in run:
            heading = _HEADING.match(line)
            if heading is None:
                pending.append(line)
                continue
            if pending:
                blocks.append(Block("paragraph", clean_text(_plain_inline(" ".join(pending)))))
                pending = []
            blocks.append(Block("heading", clean_text(_plain_inline(heading[1]))))
        if pending:
            blocks.append(Block("paragraph", clean_text(_plain_inline(" ".join(pending)))))
    return RawArticle(fields, tuple(blocks), "\n".join(lines[end + 1 :]).strip("\n"))


# --- The plain-text news-page layout ----------------------------------------

_HEADER = re.compile(
    r"^\s*date\s+(\d{4}-\d{2}-\d{2})\s+([A-Za-z]{2,3}(?:[-_][A-Za-z]+)?)\s+(\S.*?)\s*$"
)
_SENTENCE_END = ('.', '!', '?', ':', ';', ',', '"', '”', '’', "'", ')')
_MAX_HEADING_WORDS = 14


def _next_nonblank(lines: list[str], start: int) -> int:
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _expect(lines: list[str], i: int, what: str, test: Callable[[str], bool]) -> str:
    if i >= len(lines) or not test(lines[i].strip()):
        found = shown(lines[i].strip()) if i < len(lines) else "the end of the file"
        raise LayoutError(f"expected {what}, found {found}", min(i, len(lines) - 1) + 1)
    return lines[i].strip()


def read_layout(text: str) -> RawArticle:
    """Parse the news-page layout: header, section, title, By:, Published:,
    an optional URL:, the title again, body, a tags line, the author's name and their blurb."""
    lines = text.splitlines()
    if not lines:
        raise LayoutError("the file is empty", 1)
    header = _HEADER.match(lines[0])
    if not header:
        raise LayoutError("expected a first line like ' date 2026-11-24 en English'", 1)
    f: dict[str, RawField] = {
        "date": RawField(header[1], 1), "language": RawField(header[2], 1),
    }
    f["section"] = RawField(_expect(lines, 1, "the section on line 2", bool), 2)
    i = _next_nonblank(lines, 2)
    title = _expect(lines, i, "the title", bool)
    f["title"] = RawField(title, i + 1)
    i = _next_nonblank(lines, i + 1)
    byline = _expect(lines, i, "a 'By: NAME' line", lambda s: s.startswith("By:"))
    author = byline[3:].strip()
    if not author:
        raise LayoutError("the 'By:' line has no name", i + 1)
    f["author"] = RawField(author, i + 1)
    i += 1
    if i < len(lines) and lines[i].strip().startswith("Published:"):
        # The stamp carries the time and zone, so it wins over the header's bare date.
        f["date"] = RawField(lines[i].strip()[len("Published:") :].strip(), i + 1)
        i += 1
    if i < len(lines) and lines[i].strip().startswith("URL:"):
        # Optional: where the full story lives, so the digest can link to it.
        url = lines[i].strip()[len("URL:") :].strip()
        if not url:  # else the story would silently go out as a dead end
            raise LayoutError("the 'URL:' line has no address; add one or drop the line", i + 1)
        f["url"] = RawField(url, i + 1)
        i += 1
    if i < len(lines) and lines[i].strip() == title:
        i += 1
    tail = _find_tail(lines, author, i)
    f["tags"] = RawField(lines[tail - 1].split(), tail)
    blurb = [line.strip() for line in lines[tail + 1 :] if line.strip()]
    if blurb:
        f["author_bio"] = RawField(" ".join(blurb), _next_nonblank(lines, tail + 1) + 1)
    return RawArticle(f, _layout_body(lines[i : tail - 1]))


def _find_tail(lines: list[str], author: str, body_start: int) -> int:
    """Index of the tags line's successor: the last line holding only the author's name."""
    for i in range(len(lines) - 1, body_start, -1):
        if lines[i].strip() == author and lines[i - 1].strip():
            return i
    raise LayoutError(
        f"expected a line of tags followed by a line with the author's name ({shown(author)}) "
        "after the body",
        len(lines),
    )


def _layout_body(lines: list[str]) -> tuple[Block, ...]:
    runs = [clean_text(" ".join(run)) for _, run in _paragraphs(lines, 1)]
    blocks = []
    for index, run in enumerate(runs):
        # A sub-heading is a short line without closing punctuation, between paragraphs.
        is_heading = (
            index < len(runs) - 1
            and not run.endswith(_SENTENCE_END)
            and len(run.split()) <= _MAX_HEADING_WORDS
        )
        blocks.append(Block("heading" if is_heading else "paragraph", run))
    return tuple(blocks)


READERS: dict[str, Callable[[str], RawArticle]] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_layout,
}
