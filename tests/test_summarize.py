"""Tests for digest.summarize."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digest.content.summarize import lead_summary, split_sentences

ABBREVIATIONS = [
    (
        "The U.N. Security Council met on Monday. It adjourned.",
        ["The U.N. Security Council met on Monday.", "It adjourned."],
    ),
    (
        "U.S. officials arrived early. They left late.",
        ["U.S. officials arrived early.", "They left late."],
    ),
    (
        "The U.K. government resigned. Elections followed.",
        ["The U.K. government resigned.", "Elections followed."],
    ),
    (
        "E.U. ministers met in Brussels. Talks failed.",
        ["E.U. ministers met in Brussels.", "Talks failed."],
    ),
    (
        "Dr. Amina Traoré spoke first. She was brief.",
        ["Dr. Amina Traoré spoke first.", "She was brief."],
    ),
    (
        "Mr. Smith met Mrs. Jones and Ms. Lee. They talked.",
        ["Mr. Smith met Mrs. Jones and Ms. Lee.", "They talked."],
    ),
    (
        "Prof. Okafor teaches physics. Students like him.",
        ["Prof. Okafor teaches physics.", "Students like him."],
    ),
    (
        "They met at St. Paul's Cathedral. It was cold.",
        ["They met at St. Paul's Cathedral.", "It was cold."],
    ),
    (
        "The shop is on Main St. The owner is friendly.",
        ["The shop is on Main St.", "The owner is friendly."],
    ),
    (
        "She lives at No. 10 on the square. It is small.",
        ["She lives at No. 10 on the square.", "It is small."],
    ),
    (
        "Gen. Milley and Sen. Warren testified. Rep. Lee and Gov. Moore did not.",
        [
            "Gen. Milley and Sen. Warren testified.",
            "Rep. Lee and Gov. Moore did not.",
        ],
    ),
    (
        "Martin Luther King Jr. Day is a holiday. Offices close.",
        ["Martin Luther King Jr. Day is a holiday.", "Offices close."],
    ),
    (
        "The firm was founded by John Smith Sr. The son took over.",
        ["The firm was founded by John Smith Sr.", "The son took over."],
    ),
    (
        "Acme Inc. and Widgets Ltd. merged. The deal closed.",
        ["Acme Inc. and Widgets Ltd. merged.", "The deal closed."],
    ),
    (
        "She joined Apple Inc. The company was small then.",
        ["She joined Apple Inc.", "The company was small then."],
    ),
    (
        "Smith & Co. Holdings and Acme Corp. Europe signed. Shares rose.",
        ["Smith & Co. Holdings and Acme Corp. Europe signed.", "Shares rose."],
    ),
    (
        "It was Brazil vs. Argentina in the final. Brazil won.",
        ["It was Brazil vs. Argentina in the final.", "Brazil won."],
    ),
    # Chosen rule: "etc." before a capitalised word ends the sentence.
    (
        "Bring pens, paper, etc. The store opens at noon.",
        ["Bring pens, paper, etc.", "The store opens at noon."],
    ),
    ("Bring pens, paper, etc.", ["Bring pens, paper, etc."]),
    ("Bring pens, paper, etc. and water.", ["Bring pens, paper, etc. and water."]),
    (
        "We met at 9 a.m. and left at 5 p.m. sharp. Nobody stayed.",
        ["We met at 9 a.m. and left at 5 p.m. sharp.", "Nobody stayed."],
    ),
    (
        "The meeting starts at 9 a.m. The doors open earlier.",
        ["The meeting starts at 9 a.m.", "The doors open earlier."],
    ),
    (
        "The train leaves at 6 p.m. Eastern time. Be early.",
        ["The train leaves at 6 p.m. Eastern time.", "Be early."],
    ),
    (
        "Use a plain format, e.g. JSON or CSV. Both work.",
        ["Use a plain format, e.g. JSON or CSV.", "Both work."],
    ),
    (
        "Pick one format, i.e. YAML. Others fail.",
        ["Pick one format, i.e. YAML.", "Others fail."],
    ),
    (
        "The site covers approx. 40 hectares. It is large.",
        ["The site covers approx. 40 hectares.", "It is large."],
    ),
    (
        "Filings are due Jan. 15, Feb. 15, Mar. 15 and Apr. 15. Late filers pay.",
        ["Filings are due Jan. 15, Feb. 15, Mar. 15 and Apr. 15.", "Late filers pay."],
    ),
    (
        "Terms run Jun. 1 to Jul. 31 and Aug. 1 to Sept. 30. Renewals open Sep. 1.",
        ["Terms run Jun. 1 to Jul. 31 and Aug. 1 to Sept. 30.", "Renewals open Sep. 1."],
    ),
    (
        "Sessions resume Oct. 3, Nov. 7 and Dec. 5. Seats are limited.",
        ["Sessions resume Oct. 3, Nov. 7 and Dec. 5.", "Seats are limited."],
    ),
    (
        "The vote was held in Oct. The result surprised everyone.",
        ["The vote was held in Oct.", "The result surprised everyone."],
    ),
    (
        '("Dr. Who" aired.) Fans cheered.',
        ['("Dr. Who" aired.)', "Fans cheered."],
    ),
]

INITIALS = [
    (
        "Amina K. Traoré said the talks would resume. Nobody objected.",
        ["Amina K. Traoré said the talks would resume.", "Nobody objected."],
    ),
    (
        "J. R. R. Tolkien wrote the book. It sold well.",
        ["J. R. R. Tolkien wrote the book.", "It sold well."],
    ),
    (
        "Sen. Elizabeth A. Warren spoke. Others listened.",
        ["Sen. Elizabeth A. Warren spoke.", "Others listened."],
    ),
    # "A." followed by a dot is another initial, not the article "A".
    ("The novel by J. A. Smith sold well.", ["The novel by J. A. Smith sold well."]),
]

ACRONYM_AT_END = [
    (
        "He moved to the U.S. The move was hard.",
        ["He moved to the U.S.", "The move was hard."],
    ),
    ("The U.S. Army arrived.", ["The U.S. Army arrived."]),
    (
        "She works at the U.N. However, she lives in Paris.",
        ["She works at the U.N.", "However, she lives in Paris."],
    ),
    ("Talks at the U.N. Headquarters stalled.", ["Talks at the U.N. Headquarters stalled."]),
    (
        "They flew to the U.K. It rained.",
        ["They flew to the U.K.", "It rained."],
    ),
]

NUMBERS = [
    (
        "Growth was 3.5 percent. Inflation fell.",
        ["Growth was 3.5 percent.", "Inflation fell."],
    ),
    (
        "The deal is worth $4.2 billion. Shares rose 0.75%. Analysts cheered.",
        ["The deal is worth $4.2 billion.", "Shares rose 0.75%.", "Analysts cheered."],
    ),
    (
        "Upgrade to version 2.0.1 today. It fixes bugs.",
        ["Upgrade to version 2.0.1 today.", "It fixes bugs."],
    ),
    ("He lives at No. 10 Downing Street.", ["He lives at No. 10 Downing Street."]),
    (
        "Rates reached 4.25. The bank paused.",
        ["Rates reached 4.25.", "The bank paused."],
    ),
]

ELLIPSES = [
    ("Wait... what happened?", ["Wait... what happened?"]),
    ("Wait… what happened?", ["Wait… what happened?"]),
    ("It ended… Then silence.", ["It ended…", "Then silence."]),
    ("It ended... Then silence.", ["It ended...", "Then silence."]),
]

QUOTES = [
    (
        '"We will stay," she said. "We must."',
        ['"We will stay," she said.', '"We must."'],
    ),
    ('He said "Go." Then he left.', ['He said "Go."', "Then he left."]),
    ("He said “Go.” Then he left.", ["He said “Go.”", "Then he left."]),
    ("She called it ‘over.’ Nobody agreed.", ["She called it ‘over.’", "Nobody agreed."]),
    (
        "The plan failed (as expected.) Then they regrouped.",
        ["The plan failed (as expected.)", "Then they regrouped."],
    ),
    (
        "Prices rose. (Nobody was surprised.) Markets fell.",
        ["Prices rose.", "(Nobody was surprised.)", "Markets fell."],
    ),
    ('"Why?" she asked.', ['"Why?" she asked.']),
    ("“Stop!” he shouted. “Now!”", ["“Stop!” he shouted.", "“Now!”"]),
]

QUESTIONS = [
    ("What's next? Nobody knows! Really?!", ["What's next?", "Nobody knows!", "Really?!"]),
    ("Is it over?! Yes. Finally!", ["Is it over?!", "Yes.", "Finally!"]),
]

SENTENCE_STARTS = [
    ("He left. Élodie stayed.", ["He left.", "Élodie stayed."]),
    ("Sie kam. Özil spielte.", ["Sie kam.", "Özil spielte."]),
    ("The match ended. Çelik won.", ["The match ended.", "Çelik won."]),
    ("It rained. 2024 was wet.", ["It rained.", "2024 was wet."]),
    ('It rained. "Awful," she said.', ["It rained.", '"Awful," she said.']),
    ("It rained. “Awful,” she said.", ["It rained.", "“Awful,” she said."]),
    ("It rained. so what.", ["It rained. so what."]),
]

WHITESPACE_AND_PLAIN = [
    (
        "The first line\ncontinues here. The second\nsentence ends.",
        ["The first line\ncontinues here.", "The second\nsentence ends."],
    ),
    ("Ends here.\nNext starts here.", ["Ends here.", "Next starts here."]),
    ("  Padded sentence.   ", ["Padded sentence."]),
    ("No terminal punctuation at all", ["No terminal punctuation at all"]),
    ("A heading: with, commas; and no end", ["A heading: with, commas; and no end"]),
    ("", []),
    ("   \n ", []),
]


@pytest.mark.parametrize(("text", "expected"), ABBREVIATIONS)
def test_abbreviations(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), INITIALS)
def test_initials(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), ACRONYM_AT_END)
def test_dotted_acronym_rule(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_numbers(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), ELLIPSES)
def test_ellipses(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), QUOTES)
def test_quotes_and_brackets(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), QUESTIONS)
def test_questions_and_exclamations(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), SENTENCE_STARTS)
def test_sentence_starts(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), WHITESPACE_AND_PLAIN)
def test_whitespace_and_plain_text(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


# --- lead_summary ---------------------------------------------------------


def test_budget_respected() -> None:
    paras = ["One two three. Four five six. Seven eight nine."]
    assert lead_summary(paras, max_words=6) == "One two three. Four five six."
    assert lead_summary(paras, max_words=8) == "One two three. Four five six."
    assert lead_summary(paras, max_words=9) == "One two three. Four five six. Seven eight nine."


def test_budget_boundary_is_inclusive() -> None:
    assert lead_summary(["One two three. Four."], max_words=3) == "One two three."
    assert lead_summary(["One two three. Four."], max_words=4) == "One two three. Four."


def test_first_sentence_always_taken() -> None:
    paras = ["This first sentence has seven words total. Short."]
    assert lead_summary(paras, max_words=3) == "This first sentence has seven words total."
    assert lead_summary(paras, max_words=1) == "This first sentence has seven words total."


def test_stops_at_first_overflow_without_skipping() -> None:
    paras = ["One two. Three four five six. Seven."]
    assert lead_summary(paras, max_words=3) == "One two."


def test_spans_paragraphs_in_order() -> None:
    paras = ["Alpha beta.", "Gamma delta.", "Epsilon."]
    assert lead_summary(paras, max_words=4) == "Alpha beta. Gamma delta."
    assert lead_summary(paras, max_words=5) == "Alpha beta. Gamma delta. Epsilon."


def test_unpunctuated_paragraph_stays_its_own_sentence() -> None:
    paras = ["A line without an end", "Body text here. More text."]
    assert lead_summary(paras, max_words=8) == "A line without an end Body text here."


def test_whitespace_collapsed() -> None:
    paras = ["Lots   of\n\tspace here.  Next\none."]
    assert lead_summary(paras) == "Lots of space here. Next one."


def test_default_budget_is_sixty_words() -> None:
    sentence = "Word " + " ".join(["word"] * 8) + " end."  # 10 words
    paras = [" ".join([sentence] * 8)]
    assert len(lead_summary(paras).split()) == 60


@pytest.mark.parametrize("paras", [[], [""], ["", "   ", "\n"]])
def test_empty_input(paras: list[str]) -> None:
    assert lead_summary(paras) == ""


@pytest.mark.parametrize("max_words", [0, -1])
def test_invalid_budget(max_words: int) -> None:
    with pytest.raises(ValueError):
        lead_summary(["Some text."], max_words=max_words)
    with pytest.raises(ValueError):
        lead_summary([], max_words=max_words)


def test_bare_string_rejected() -> None:
    with pytest.raises(TypeError):
        lead_summary("Not a list of paragraphs.")


PROPERTY_TEXTS = [
    ["He moved to the U.S. The move was hard. Dr. Lee helped. It took 3.5 years."],
    [
        '"We will stay," she said. "We must."',
        "What's next? Nobody knows! Really?!",
        "It ended… Then silence.",
    ],
    ["Amina K. Traoré said the talks, held at approx. 9 a.m., would resume."],
    ["No end here", "The U.N. Security Council met. Sen. Elizabeth A. Warren spoke."],
    [" ".join(f"Sentence number {i} has\nsix words." for i in range(20))],
]


@pytest.mark.parametrize("paras", PROPERTY_TEXTS)
@pytest.mark.parametrize("max_words", [1, 2, 5, 8, 13, 60, 1000])
def test_summary_is_maximal_prefix_of_sentences(paras: list[str], max_words: int) -> None:
    sentences = [" ".join(s.split()) for p in paras for s in split_sentences(p)]
    summary = lead_summary(paras, max_words=max_words)
    prefixes = [" ".join(sentences[: k + 1]) for k in range(len(sentences))]
    assert summary in prefixes
    k = prefixes.index(summary) + 1
    words = len(summary.split())
    assert k == 1 or words <= max_words
    if k < len(sentences):
        assert words + len(sentences[k].split()) > max_words


# --- boundary corpora -----------------------------------------------------

SUMMARIES = Path(__file__).parent / "fixtures" / "summaries"


def _first_sentence_misses(name: str) -> tuple[int, list[tuple[str, str, str]]]:
    cases = json.loads((SUMMARIES / name).read_text(encoding="utf-8"))
    misses = []
    for case in cases:
        got = (split_sentences(case["text"]) or [""])[0]
        if got != case["first"]:
            misses.append((case["text"], got, case["first"]))
    return len(cases), misses


def test_own_boundary_corpus_all_right() -> None:
    # Our corpus: newsletter-style text plus every case the issue names.
    total, misses = _first_sentence_misses("boundaries.json")
    assert total >= 60
    assert misses == []


def test_golden_rule_set_first_sentences() -> None:
    # The 48 English Golden Rule Set cases; the issue asks for >= 46 right.
    total, misses = _first_sentence_misses("golden_rules_en.json")
    assert total == 48
    assert total - len(misses) >= 46, misses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I can see Mt. Fuji from here. It is clear.", "I can see Mt. Fuji from here."),
        ("I live in the U.S. How about you?", "I live in the U.S."),
        ("1.) The first item. 2.) The second item.", "1.) The first item."),
    ],
)
def test_lead_summary_keeps_issue_sentences_whole(text: str, expected: str) -> None:
    assert lead_summary([text], max_words=1) == expected
