"""The issues a state folder records as sent: what the web archive publishes.

An issue is published once its campaign has a pinned definition (the articles,
the options, the editor's note) and at least one recipient was sent it. A dry
run, a campaign pinned by a digest too old to keep a definition, or one that
reached no one is not published. The state is only read, and nothing is
created: this works on a full disk and on a state folder that is still empty.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

from digest.delivery.issues import Definition
from digest.errors import ConfigError
from digest.model import StateLocation
from digest.state.store import open_store


@dataclass(frozen=True, slots=True)
class PublishedIssue:
    """One sent issue: its campaign, what defines it, and how many got it."""

    campaign: str
    definition: Definition
    sent: int
    created_at: str  # when the campaign was pinned (a journal stamp)
    series: str | None = None


def published(state: StateLocation) -> list[PublishedIssue]:
    """Every published issue of ``state``, newest (by as-of) first; ties go by
    campaign id, so the order never depends on the journal's."""
    with closing(open_store(state, readonly=True)) as store:
        if not store.has_journal():
            raise ConfigError(f"no journal in {state}; nothing has been sent from here yet",
                              source="--state")
        journal = store.journal
        found = []
        for campaign in journal.campaigns():
            record = journal.campaign(campaign)
            sent = journal.counts(campaign).get("sent", 0)
            if record is None or record.definition is None or sent == 0:
                continue
            try:
                definition = Definition.from_json(record.definition)
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"campaign {campaign} in {state} has a definition that "
                                  f"cannot be read ({type(exc).__name__}: {exc}); restore "
                                  "the journal from a backup", source="--state") from exc
            found.append(PublishedIssue(campaign, definition, sent, record.created_at,
                                        record.series))
    found.sort(key=lambda issue: issue.campaign, reverse=True)
    found.sort(key=lambda issue: issue.definition.as_of, reverse=True)
    return found

