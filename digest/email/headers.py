"""Header fields in wire form, encoded by our own rules rather than the email
package's folder, which can emit an empty encoded-word (``=?utf-8?q??=``) that
some receivers refuse with a 554.

* Printable ASCII text stays as it is, folded at spaces so lines keep within
  78 columns where the words allow (and always far within 998).
* Anything else becomes RFC 2047 encoded-words, Q or B, whichever is shorter:
  never empty, at most 75 characters, cut only between characters (never
  inside a UTF-8 sequence), folded with CRLF and a space.
* A display name that needs encoding is encoded whole, with its spaces inside
  the words: readers drop the whitespace between adjacent encoded-words
  (RFC 2047 section 6.2), so a space left between them would vanish.
* Addresses are never encoded: a domain goes out as IDNA (punycode), and a
  non-ASCII local part only raw, as RFC 6532 allows with SMTPUTF8.
"""

from __future__ import annotations

import base64
import re
import unicodedata

import idna

from digest.errors import HeaderError

WIDTH = 78
_EW_MAX = 75
_EW_OVERHEAD = len("=?utf-8?q??=")
_PAYLOAD = _EW_MAX - _EW_OVERHEAD
# A plain word longer than this could not share a line with a field name
# within 998 octets, so it is encoded (and so cut) instead.
_LONG_WORD = 900
# With less room than this left on a line, a new line gives a longer word.
_MIN_PAYLOAD = 20

# Q-encoding may leave these raw even inside a phrase (RFC 2047 section 5(3)).
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_TABLE = tuple(
    chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256)
)
_PLAIN_WORD = re.compile(r"[!-~]+")
_PRINTABLE = re.compile(r"[ -~]*")
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _utf8_len(char: str) -> int:
    code = ord(char)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _q_cost(char: str) -> int:
    if char.isascii():
        return 1 if ord(char) in _Q_SAFE or char == " " else 3
    return 3 * _utf8_len(char)


def _joins(char: str) -> bool:
    """A mark or joiner that belongs with the character before it."""
    return char == "\u200d" or unicodedata.category(char).startswith("M")


def _take(text: str, budget: int, q: bool) -> int:
    """How many leading characters of ``text`` one encoded-word with a payload of
    at most ``budget`` characters carries. A cut falls after a space where one
    is near, else not between a letter and its marks, else anywhere between
    characters. Zero when not even one character fits."""
    limit = budget if q else budget // 4 * 3
    used, end = 0, len(text)
    for index, char in enumerate(text):
        used += _q_cost(char) if q else _utf8_len(char)
        if used > limit:
            end = index
            break
    if end == len(text) or end == 0 or text[end] == " ":
        return end
    space = text.rfind(" ", 0, end)
    if space >= end // 2:
        return space + 1
    cut = end
    while cut > 0 and (_joins(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    return cut or end


def _encoded_word(text: str, q: bool) -> str:
    data = text.encode()
    if q:
        return "=?utf-8?q?" + "".join([_Q_TABLE[b] for b in data]) + "?="
    return "=?utf-8?b?" + base64.b64encode(data).decode("ascii") + "?="


class _Lines:
    """One header field being folded."""

    __slots__ = ("done", "fresh", "line")

    def __init__(self, name: str) -> None:
        self.done: list[str] = []
        self.line = name + ":"
        self.fresh = True  # nothing after the name yet: a fold here would leave it bare

    def room(self) -> int:
        """Columns left on this line after a separating space."""
        return WIDTH - len(self.line) - 1

    def can_fold(self) -> bool:
        return not self.fresh and bool(self.line)

    def fold(self) -> None:
        if self.can_fold():
            self.done.append(self.line)
            self.line = ""

    def add(self, word: str) -> None:
        """The word after a space, on a new line if it does not fit on this one."""
        if len(word) > self.room():
            self.fold()
        self.line += " " + word
        self.fresh = False

    def add_encoded(self, text: str) -> None:
        """``text`` (not empty) as encoded-words that carry its spaces."""
        data = text.encode()
        q = sum(1 if b in _Q_SAFE or b == 0x20 else 3 for b in data) <= (len(data) + 2) // 3 * 4
        while text:
            budget = min(_PAYLOAD, self.room() - _EW_OVERHEAD)
            taken = _take(text, budget, q) if budget > 0 else 0
            if taken == 0 or (taken < len(text) and budget < _MIN_PAYLOAD):
                if self.can_fold():
                    self.fold()
                    continue
                taken = taken or _take(text, _PAYLOAD, q)
            self.add(_encoded_word(text[:taken], q))
            text = text[taken:]

    def field(self) -> str:
        return "\r\n".join([*self.done, self.line]) + "\r\n"


def _canonical(text: str) -> bool:
    """Single spaces between words: what folding and unfolding give back exactly."""
    return not text.startswith(" ") and not text.endswith(" ") and "  " not in text


def _plain(word: str) -> bool:
    return bool(_PLAIN_WORD.fullmatch(word)) and "=?" not in word and len(word) <= _LONG_WORD


def unstructured(name: str, text: str) -> str:
    """A free-text field such as Subject, CRLF included. ``text`` holds no
    control characters. Runs of words that are not plain ASCII are encoded
    together, so the spaces between them survive; a word holding ``=?`` is
    encoded too, or readers would take it for an encoded-word."""
    lines = _Lines(name)
    if not _canonical(text):
        if text:
            lines.add_encoded(text)
        return lines.field()
    run: list[str] = []
    for word in text.split(" "):
        if _plain(word):
            if run:
                lines.add_encoded(" ".join(run))
                run = []
            lines.add(word)
        else:
            run.append(word)
    if run:
        lines.add_encoded(" ".join(run))
    return lines.field()


def _add_phrase(lines: _Lines, phrase: str) -> None:
    """A display name: atoms as they are, other printable ASCII as a quoted
    string, anything else encoded whole."""
    if (
        _PRINTABLE.fullmatch(phrase)
        and "=?" not in phrase
        and _canonical(phrase)
        and all(len(word) <= _LONG_WORD for word in phrase.split(" "))
    ):
        if not _ATEXT_PHRASE.fullmatch(phrase):
            phrase = '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
        # FWS may fold a quoted string too; unfolding gives each space back.
        for word in phrase.split(" "):
            lines.add(word)
    else:
        lines.add_encoded(phrase)


def mailbox(name: str, display_name: str, address: str) -> str:
    """``Name: display name <address>`` folded, CRLF included. ``address`` is
    already in header form (see ``header_address``)."""
    lines = _Lines(name)
    if display_name:
        _add_phrase(lines, display_name)
        lines.add(f"<{address}>")
    else:
        lines.add(address)
    return lines.field()


def list_id(name: str, ident: str) -> str:
    """``List-Id: phrase <ident>`` (RFC 2919): the phrase encoded like a display
    name, the identifier plain ASCII outside any encoded-word."""
    lines = _Lines("List-Id")
    if name:
        _add_phrase(lines, name)
    lines.add(f"<{ident}>")
    return lines.field()


def to_field(name: str, email: str) -> str:
    """The To field for one recipient: one quick line for the usual short ASCII
    name and address, the general encoder for anything else."""
    if email.isascii() and "=?" not in name:
        if _ATEXT_PHRASE.fullmatch(name):
            field = f"To: {name} <{email}>\r\n"
        elif not name:
            field = f"To: {email}\r\n"
        elif _PRINTABLE.fullmatch(name):
            field = 'To: "' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{email}>\r\n'
        else:
            field = ""
        if field and len(field) <= WIDTH + 2:
            return field
    return mailbox("To", name, header_address(email))


def ascii_domain(domain: str) -> str:
    """``domain`` as it goes in a header or on the wire: IDNA 2008 (UTS 46
    mapped) for a non-ASCII name, so ``bücher.example`` is ``xn--bcher-kva.example``."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise HeaderError(f"{domain!r} is not a valid domain name ({exc})") from exc


def header_address(address: str) -> str:
    """An addr-spec for a header: the domain in IDNA; a non-ASCII local part
    stays raw UTF-8 (RFC 6532), never an encoded-word."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}"
