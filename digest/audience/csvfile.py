"""Read a CSV subscriber list as records, streamed, each with the line it starts on.

This is the byte-and-CSV layer under ``digest.audience.subscribers``: encoding (UTF-8,
with or without a byte-order mark; anything else is one clear error),
delimiter (``,``, ``;`` or tab, sniffed from the header line) and line
numbers. It never holds more than one record, so a list of a million rows
goes through in flat memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from digest.errors import SubscriberError
from digest.files import NotAFile, open_regular

DELIMITERS = ",;\t"
MAX_LINE = 1 << 20  # characters; no list has such lines, a file without line breaks does
SAVE_AS_UTF8 = "save the file as UTF-8 CSV"
_SNIFF = 1 << 12  # csv.Sniffer's regular expressions see a header's first 4 KiB only
_CHUNK = 1 << 16
_QUOTED = re.compile(r'"[^"]*"')
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def sniff_delimiter(header: str) -> str:
    """The delimiter of a list whose first line is ``header``: ``,``, ``;`` or tab.

    csv.Sniffer, restricted to those three, reads quoted fields well, but on a
    single line without quotes it just prefers the comma whenever there is one,
    so ``E-Mail;Name, Vorname;Tags`` would come out comma-separated. Its pick
    therefore has to be a most frequent candidate outside quotes, else that
    candidate wins (ties to the comma); a header with none of them is one
    column, comma-separated.
    """
    try:
        sniffed = csv.Sniffer().sniff(header[:_SNIFF], delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = ""
    unquoted = _QUOTED.sub("", header)
    counts = {candidate: unquoted.count(candidate) for candidate in DELIMITERS}
    most = max(counts.values())
    if most == 0:
        return ","
    if sniffed in counts and counts[sniffed] == most:
        return sniffed
    return max(DELIMITERS, key=counts.__getitem__)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record csv cannot read, such as ``"a"b@example.org`` (a stray quote
    mid-field): one bad row, skipped with this reason, not the whole file."""

    reason: str


class _Lines:
    """A file's physical lines for csv.reader, counted.

    csv.reader's own ``line_num`` is the line where a record *ends*; a record
    that holds a quoted newline starts earlier. csv.reader pulls exactly the
    lines one record needs, so the record it is about to return starts one
    line past the count taken just before asking for it.
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._back: list[str] = []
        self.count = 0
        self.exhausted = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = self._back.pop() if self._back else next(self._lines)
        except StopIteration:
            self.exhausted = True
            raise
        self.count += 1
        return line

    def push_back(self, line: str) -> None:
        self._back.append(line)
        self.count -= 1


def records(path: Path) -> Generator[tuple[int, list[str] | BadRecord], None, None]:
    """``(start line, fields)`` for every record of ``path``, the header first.

    Records with only blank fields are skipped (their lines still count). A
    one-line record that is not valid CSV comes back as a BadRecord. Whole-file
    problems raise SubscriberError: the file cannot be opened or is not a
    regular file, is not UTF-8, or is not CSV that can be trusted (a quote left
    open swallows the rows after it, so from there on nothing can be trusted).
    """
    try:
        raw = open_regular(path)
    except OSError as exc:
        raise SubscriberError(path, f"cannot be read: {exc.strerror}") from exc
    except NotAFile as exc:
        raise SubscriberError(path, f"{exc}; give a CSV file") from exc
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        # newline="" keeps CR, LF and CRLF as they are, which csv needs to
        # tell a quoted newline from the end of a record.
        if raw.peek(2)[:2] in _UTF16_BOMS:
            raise SubscriberError(path, f"not UTF-8 text (it is UTF-16); {SAVE_AS_UTF8}")
        lines = _Lines(_decoded(path, text))
        header = next((line for line in lines if line.strip()), None)
        if header is None:
            return
        if "\x00" in header:
            # UTF-16 without a byte-order mark decodes as "valid" UTF-8 full of NULs.
            raise SubscriberError(
                path, f"not UTF-8 text (NUL bytes; it looks like UTF-16); {SAVE_AS_UTF8}",
                line=lines.count,
            )
        lines.push_back(header)
        reader = csv.reader(
            lines, delimiter=sniff_delimiter(header), skipinitialspace=True, strict=True
        )
        while True:
            start = lines.count + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if lines.exhausted or lines.count > start:
                    raise SubscriberError(
                        path, f"bad CSV in the record that starts here: {exc}; "
                        "look for an unclosed or stray double quote", line=start,
                    ) from exc
                yield start, BadRecord(f"bad CSV: {exc}; a double quote inside a field must be "
                                       'doubled ("") and the whole field quoted')
                continue
            if any(field.strip() for field in fields):
                yield start, fields


def _decoded(path: Path, text: io.TextIOWrapper) -> Iterator[str]:
    number = 0
    try:
        # readline's limit keeps a file without line breaks (not a list at all)
        # from being read into memory as one line.
        while line := text.readline(MAX_LINE):
            number += 1
            if len(line) == MAX_LINE and not line.endswith(("\n", "\r")):
                raise SubscriberError(
                    path, f"line longer than {MAX_LINE} characters; is this a CSV list?",
                    line=number,
                )
            yield line
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start] if exc.start < len(exc.object) else 0
        raise SubscriberError(
            path, f"not UTF-8 text (byte 0x{byte:02x}); {SAVE_AS_UTF8}", line=_bad_line(path)
        ) from exc


def _bad_line(path: Path) -> int | None:
    """The line of the first byte that is not UTF-8, found by a second streamed
    pass: TextIOWrapper decodes in chunks, so its error does not say which line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, after_cr = 1, False
    try:
        with path.open("rb") as raw:
            while chunk := raw.read(_CHUNK):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return line + _breaks(exc.object[: exc.start], after_cr)
                line += _breaks(chunk, after_cr)
                after_cr = chunk.endswith(b"\r")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line  # a multi-byte sequence cut off by the end of the file
    except OSError:
        pass  # gone, or a pipe that cannot be read twice: the message just has no line
    return None


def _breaks(data: bytes, after_cr: bool) -> int:
    """Line breaks in ``data`` as csv sees them: LF, CR and CRLF each end a line,
    including a CRLF split between this chunk and the one before."""
    count = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return count - 1 if after_cr and data.startswith(b"\n") else count
