"""Sentence splitting and extractive lead summaries.

Splitting rules
---------------
A *candidate* boundary is a run of ``.``, ``!``, ``?`` or ``…`` followed by
optional closing quotes/brackets and then whitespace.  It is a real boundary
only if the next word (after optional opening quotes/brackets) starts with an
uppercase letter of any script or a digit.  Closing quotes and brackets stay
with the sentence they close; newlines are ordinary whitespace.

* ``!``, ``?`` and ellipses (``...``, ``…``) always end a sentence there.
* A single ``.`` is judged by the token before it (case-sensitively, so the
  word "no." is not the abbreviation "No."):

  - titles and abbreviations that never close a sentence (``Dr.``, ``Mr.``,
    ``Sen.``, ``vs.``, ``e.g.``, ``approx.`` ...) never split;
  - ambiguous tokens -- dotted acronyms (``U.S.``, ``a.m.``), single-letter
    initials (``K.``), ``Inc.``, ``Jr.``, ``St.``, ``No.`` and month
    abbreviations -- split only when the next word is a common sentence
    starter (``The``, ``It``, ``However`` ...).  So "moved to the U.S. The
    move" splits, while "the U.S. Army", "J. R. R. Tolkien" and "No. 10" don't;
  - ``etc.`` is an ordinary word: before a capitalised word it ends the
    sentence, since it nearly always closes a list at the end of a clause.

Decimals and versions (``3.5``, ``2.0.1``) never match: no whitespace follows
their dots.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_OPENERS = "\"'“‘«([{"
_CLOSERS = "\"'”’»)]}"

_CANDIDATE = re.compile(r"(?P<punct>[.!?…]+)(?P<close>[\"'”’»)\]}]*)\s+(?=(?P<next>\S+))")
# The boundary's own dot is excluded, so "U.S." arrives here as "U.S" and an
# initial "K." as "K".
_DOTTED = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
_LEADING_WORD = re.compile(r"[^\W\d_]+")

# fmt: off
_NEVER_FINAL = frozenset({
    "Dr", "Mr", "Mrs", "Ms", "Prof", "Gen", "Sen", "Rep", "Gov", "vs", "e.g", "i.e", "approx",
})
_MAYBE_FINAL = frozenset({
    "Inc", "Ltd", "Co", "Corp", "Jr", "Sr", "St", "No",
    "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
})
_STARTERS = frozenset({
    "The", "A", "An", "It", "Its", "This", "That", "These", "Those", "They", "Their", "There",
    "We", "Our", "He", "His", "She", "Her", "I", "You", "But", "And", "Or", "So", "Yet",
    "In", "On", "At", "For", "As", "If", "When", "While", "After", "Before", "Then",
    "However", "Meanwhile", "Still", "Now", "Some", "Many", "Most", "Nobody",
})
# fmt: on


def _token_before(text: str, end: int) -> str:
    head = text[:end]
    if not head or head[-1].isspace():
        return ""
    return head.split()[-1].lstrip(_OPENERS).rstrip(_CLOSERS)


def _is_starter(word_text: str) -> bool:
    match = _LEADING_WORD.match(word_text)
    if match is None:
        return False
    # "A." in "J. A. Smith" is another initial, not the article "A".
    followed_by_dot = word_text[match.end() : match.end() + 1] == "."
    return match.group() in _STARTERS and not followed_by_dot


def _ends_sentence(token: str, punct: str, next_token: str) -> bool:
    body = next_token.lstrip(_OPENERS)
    if not body or not (body[0].isupper() or body[0].isdigit()):
        return False
    if punct != ".":
        return True
    if token in _NEVER_FINAL:
        return False
    if token in _MAYBE_FINAL or _DOTTED.fullmatch(token):
        return _is_starter(body)
    return True


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping each sentence's own text (stripped)."""
    sentences: list[str] = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        token = _token_before(text, match.start("punct"))
        if _ends_sentence(token, match.group("punct"), match.group("next")):
            sentences.append(text[start : match.end("close")].strip())
            start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def lead_summary(paragraphs: Sequence[str], max_words: int = 60) -> str:
    """Whole sentences from the start of `paragraphs` up to `max_words` words.

    `paragraphs` are already without sub-headings.  Always at least one
    sentence, never a cut inside a sentence.  Sentences are joined with a
    single space; whitespace inside is collapsed to single spaces.
    Empty input -> ''.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    if isinstance(paragraphs, str):
        # A bare str is a Sequence[str] of characters; summarising that is
        # always a caller bug.
        raise TypeError("paragraphs must be a sequence of strings, not a str")
    chosen: list[str] = []
    used = 0
    for paragraph in paragraphs:
        # Split per paragraph so an unpunctuated paragraph cannot swallow
        # the start of the next one.
        for sentence in split_sentences(paragraph):
            words = sentence.split()
            if chosen and used + len(words) > max_words:
                return " ".join(chosen)
            chosen.append(" ".join(words))
            used += len(words)
    return " ".join(chosen)
