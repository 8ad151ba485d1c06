"""Sentence splitting and extractive lead summaries.

Boundaries come from pysbd, a rule-based segmenter built on the Golden Rule
Set (lists like "1.)", "Mt. Fuji", "N°. 12", citations and spaced ellipses).
It runs once per paragraph, once per article per digest - never per
recipient.  Our own rules below then correct it only where they beat it.

Our rules judge a *candidate* boundary: a run of ``.``, ``!``, ``?`` or
``…`` followed by optional closing quotes/brackets and then whitespace.
Closing quotes and brackets stay with the sentence they close; newlines are
ordinary whitespace (pysbd would split at every newline, so it never sees
them).

* A pysbd boundary is dropped when the next word starts with a lowercase
  letter ("It rained. so what."), after a title that never ends a sentence
  (``Dr.``, ``Sen.``, ``vs.``, ``approx.`` ...), or after an ambiguous
  token -- a dotted acronym (``U.S.``, ``a.m.``), an initial (``K.``),
  ``Inc.``, ``Jr.``, ``St.``, ``Co.``, ``No.``, a month -- unless the next
  word is a common sentence starter (``The``, ``It``, ``How`` ...).  So "King
  Jr. Day", "Acme Corp. Europe" and "6 p.m. Eastern time" stay whole while
  "I live in the U.S. How about you?" splits.
* A boundary pysbd missed is added after ``!``, ``?`` or an ellipsis, after a
  closing quote or bracket ("called it 'over.' Nobody"), and after an
  ambiguous token followed by a sentence starter ("on Main St. The owner").
  A plain word before ``.`` is left to pysbd, which knows "Mt. Fuji".

Decimals and versions (``3.5``, ``2.0.1``) never split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pysbd

_OPENERS = "\"'“‘«([{"
_CLOSERS = "\"'”’»)]}"

_CANDIDATE = re.compile(r"(?P<punct>[.!?…]+)(?P<close>[\"'”’»)\]}]*)\s+(?=(?P<next>\S+))")
# The boundary's own dot is excluded, so "U.S." arrives here as "U.S" and an
# initial "K." as "K".
_DOTTED = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
_LEADING_WORD = re.compile(r"[^\W\d_]+")
_LIST_MARKER = re.compile(r"\d+|[^\W\d_]")

# fmt: off
_NEVER_FINAL = frozenset({
    "Dr", "Mr", "Mrs", "Ms", "Prof", "Gen", "Sen", "Rep", "Gov", "Cllr",
    "vs", "e.g", "i.e", "approx",
})
_MAYBE_FINAL = frozenset({
    "Inc", "Ltd", "Co", "Corp", "Jr", "Sr", "St", "No", "Mt",
    "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
})
_STARTERS = frozenset({
    "The", "A", "An", "It", "Its", "This", "That", "These", "Those", "They", "Their", "There",
    "We", "Our", "He", "His", "She", "Her", "I", "You", "But", "And", "Or", "So", "Yet",
    "In", "On", "At", "For", "As", "If", "When", "While", "After", "Before", "Then",
    "However", "Meanwhile", "Still", "Now", "Some", "Many", "Most", "Nobody",
    "How", "What", "Why", "Who", "Where", "Which", "Did", "Do", "Does", "Is", "Are", "Was",
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


def _is_ambiguous(token: str) -> bool:
    return token in _MAYBE_FINAL or _DOTTED.fullmatch(token) is not None


def _vetoes(token: str, punct: str, next_token: str) -> bool:
    """True when our rules overrule a pysbd boundary at this candidate."""
    body = next_token.lstrip(_OPENERS)
    if body[:1].islower():
        return True
    if punct != ".":
        return False
    if token in _NEVER_FINAL:
        return True
    return _is_ambiguous(token) and not _is_starter(body)


def _adds(token: str, punct: str, close: str, next_token: str) -> bool:
    """True when our rules find a boundary pysbd missed at this candidate."""
    body = next_token.lstrip(_OPENERS)
    if not body or not (body[0].isupper() or body[0].isdigit()):
        return False
    # A bracket right after the stop is a citation, "[...]" (Smith 55)., and
    # "1.)" or "a." is a list marker: pysbd places those boundaries better.
    if next_token[0] in "([" or _LIST_MARKER.fullmatch(token):
        return False
    if punct != ".":
        return True
    if token in _NEVER_FINAL:
        return False
    if close:
        return True
    return _is_ambiguous(token) and _is_starter(body)


def _pysbd_starts(text: str) -> set[int]:
    """Offsets where pysbd starts a sentence (other than the first)."""
    # Same-length substitution keeps offsets valid while hiding newlines.
    flat = re.sub(r"\s", " ", text)
    segmenter = pysbd.Segmenter(language="en", clean=False)
    starts: set[int] = set()
    offset = 0
    for segment in segmenter.segment(flat):
        found = flat.find(segment, offset)
        if found < 0:
            # pysbd rewrote the segment; its boundaries here are unknowable.
            continue
        lead = len(segment) - len(segment.lstrip())
        if found + lead > 0:
            starts.add(found + lead)
        offset = found + len(segment)
    return starts


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping each sentence's own text (stripped)."""
    starts = _pysbd_starts(text) if text.strip() else set()
    for match in _CANDIDATE.finditer(text):
        token = _token_before(text, match.start("punct"))
        punct, close, following = match.group("punct"), match.group("close"), match.group("next")
        if match.end() in starts and _vetoes(token, punct, following):
            starts.discard(match.end())
        elif _adds(token, punct, close, following):
            starts.add(match.end())
    sentences: list[str] = []
    begin = 0
    for start in sorted(starts):
        sentence = text[begin:start].strip()
        if sentence:
            sentences.append(sentence)
        begin = start
    tail = text[begin:].strip()
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
