"""``digest subscribers check``: what a send would make of the lists, without
sending. Streams every file once; only the set of addresses seen is kept."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from digest.audience.subscribers import ListRow, read_rows
from digest.content.articles import load_articles
from digest.content.folder import known_tags
from digest.model import StateLocation, Subscriber
from digest.state.store import LOOKUP_PAGE, Store, open_store

MAX_PROBLEMS = 1000


@dataclass(slots=True)
class CheckResult:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("rows", "valid", "invalid", "duplicate", "suppressed", "warnings", "overrides"), 0))
    formats: dict[str, str] = field(default_factory=dict)  # file -> detected format
    problems: list[str] = field(default_factory=list)

    def note(self, problem: object) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(str(problem))

    def as_json(self) -> dict[str, object]:
        return {**self.counts, "formats": self.formats, "problems": self.problems}


def check_lists(paths: Sequence[Path], *, list_format: str | None, articles: Path,
                state: StateLocation) -> CheckResult:
    """Count valid, invalid, duplicate and suppressed rows across ``paths``."""
    known = None
    if articles.is_dir():
        known = known_tags(load_articles(articles))
    with closing(open_store(state, readonly=True)) as store:
        return _check(paths, list_format, known, store)


def _check(paths: Sequence[Path], list_format: str | None, known: frozenset[str] | None,
           store: Store) -> CheckResult:
    """``overrides`` counts the valid subscribers whose own choice on the
    preferences page replaces their list's tags at the next send. The state is
    asked about a page of rows at a time, as a send does."""
    result = CheckResult()
    seen: dict[str, bool] = {}  # address -> counted as suppressed
    valid = _valid(paths, list_format, known, result)
    while page := list(itertools.islice(valid, LOOKUP_PAGE)):
        emails = [subscriber.email for _, subscriber in page]
        listed, chosen = store.suppressions.reasons(emails), store.preferences.chosen(emails)
        for row, subscriber in page:
            key = subscriber.key
            if key in seen:
                result.counts["duplicate"] += 1
                if row.suppress and not seen[key]:
                    # As in a send: a later unsubscribed or cleaned export, or
                    # blocklisted row, wins over the person listed earlier.
                    seen[key] = True
                    result.counts["valid"] -= 1
                    result.counts["suppressed"] += 1
                continue
            suppressed = bool(row.suppress) or key in listed
            seen[key] = suppressed
            result.counts["suppressed" if suppressed else "valid"] += 1
            if not suppressed and key in chosen:
                result.counts["overrides"] += 1
    return result


def _valid(paths: Sequence[Path], list_format: str | None, known: frozenset[str] | None,
           result: CheckResult) -> Iterator[tuple[ListRow, Subscriber]]:
    """The rows with a subscriber; the others, and every warning, counted."""
    for path in paths:
        for row in read_rows(path, list_format=list_format, known_tags=known):
            result.counts["rows"] += 1
            result.formats[str(path)] = row.format
            for warning in row.warnings:
                result.counts["warnings"] += 1
                result.note(f"warning: {warning}")
            if row.problem is not None or row.subscriber is None:
                result.counts["invalid"] += 1
                result.note(row.problem)
                continue
            yield row, row.subscriber
