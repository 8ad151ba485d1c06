"""The library behind ``digest status``: how a campaign went. It only reads,
so it works on a full disk."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from digest.delivery.issues import Definition
from digest.errors import ConfigError
from digest.state.records import CampaignRecord, RecipientRecord
from digest.state.store import open_store


@dataclass(frozen=True, slots=True)
class Status:
    campaign: str
    counts: dict[str, int]
    problems: tuple[RecipientRecord, ...]  # failed, deferred, ambiguous, expired, skipped
    record: CampaignRecord | None = None

    @property
    def issue(self) -> dict[str, object]:
        """The campaign's pinned definition: as-of, since, tags, limit, articles..."""
        if self.record is None or self.record.definition is None:
            return {}
        return Definition.from_json(self.record.definition).as_dict()


PROBLEMS = ("failed", "deferred", "ambiguous", "expired", "skipped")


def status(state: Path, campaign: str | None) -> Status:
    """A campaign's counts, definition and recipients in trouble. It only reads,
    so it works on a full disk."""
    with closing(open_store(state, readonly=True)) as store:
        if not store.has_journal():
            raise ConfigError(f"no journal in {state}; nothing has been sent from here yet",
                              source="--state")
        journal = store.journal
        known = journal.campaigns()
        chosen = campaign or (known[0] if known else None)
        if chosen is None or chosen not in known:
            listed = ", ".join(known[:10]) or "none"
            raise ConfigError(f"no campaign {chosen!r} in the journal; known: {listed}",
                              source="--campaign")
        problems = tuple(journal.rows(chosen, PROBLEMS))
        return Status(chosen, journal.counts(chosen), problems, journal.campaign(chosen))
