"""Synthetic inputs for the benchmarks: a digest of a chosen size and a
subscriber list of any length, written to a scratch folder."""

from __future__ import annotations

import itertools
from pathlib import Path

WORDS = [
    "harbour", "council", "transit", "energy", "library", "budget", "market", "clinic",
    "school", "river", "storm", "museum", "solar", "grant", "report", "vote", "plan",
    "board", "city", "week",
]


def sentence(seed: int, words: int = 18) -> str:
    picked = [WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(words)]
    return " ".join(picked).capitalize() + "."


def write_articles(folder: Path, *, count: int = 10, summary_sentences: int = 10) -> Path:
    """``count`` Markdown articles with long explicit summaries, so that the
    digest's size is set by ``summary_sentences``."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        summary = " ".join(sentence(n * 100 + i) for i in range(summary_sentences))
        body = "\n\n".join(sentence(n * 1000 + i, 40) for i in range(6))
        (folder / f"bench-{n:02d}.md").write_text(
            "---\n"
            f'title: "Benchmark story number {n} about the {WORDS[n % len(WORDS)]}"\n'
            f"author: Author {n % 4}\n"
            f"date: 2026-11-{20 + n % 7:02d}T{8 + n % 10:02d}:00:00+00:00\n"
            f"tags: [{WORDS[n % 5].title()}, Bench]\n"
            f'summary: "{summary}"\n'
            f'author_bio: "Author {n % 4} writes benchmark prose for a living."\n'
            f"url: https://example.org/bench/{n}\n"
            "---\n\n" + body + "\n",
            encoding="utf-8",
        )
    return folder


def write_list(path: Path, count: int) -> Path:
    """A subscriber list in our format, written in chunks (a million rows is ~40 MB)."""
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,tags,status\n")
        rows = (f"reader{i}@example.org,Reader {i},,\n" for i in range(count))
        while chunk := list(itertools.islice(rows, 50_000)):
            out.write("".join(chunk))
    return path
