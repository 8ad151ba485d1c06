"""The library behind ``digest status``: how a campaign went. It only reads,
so it works on a full disk."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

from digest.delivery.issues import Definition
from digest.errors import ConfigError
from digest.model import StateLocation
from digest.state.records import CampaignRecord, RecipientRecord
from digest.state.store import open_store


@dataclass(frozen=True, slots=True)
class Status:
    campaign: str
    counts: dict[str, int]
    problems: tuple[RecipientRecord, ...]  # failed, deferred, ambiguous, expired, skipped
    record: CampaignRecord | None = None
    bounces: int = 0  # refused at RCPT, or bounced later (hard, soft or policy)
    complaints: int = 0
    returned: int = 0  # of ``bounces``, those that came back by mail

    @property
    def rates(self) -> dict[str, float]:
        """Bounces and complaints per message that reached a server or was refused at RCPT."""
        mailed = max(self.counts.get("sent", 0) + self.refused, 1)
        return {"bounce": self.bounces / mailed, "complaint": self.complaints / mailed}

    @property
    def refused(self) -> int:
        return self.bounces - self.returned

    @property
    def warnings(self) -> list[str]:
        """Rates above what mailbox providers publish as their limits."""
        found = []
        if self.rates["bounce"] > BOUNCE_LIMIT:
            found.append(f"bounce rate {self.rates['bounce']:.2%} is above "
                         f"{BOUNCE_LIMIT:.0%}; clean the list before the next send")
        if self.rates["complaint"] > COMPLAINT_LIMIT:
            found.append(f"complaint rate {self.rates['complaint']:.2%} is above "
                         f"{COMPLAINT_LIMIT:.1%}; mailbox providers will start to block you")
        return found

    @property
    def issue(self) -> dict[str, object]:
        """The campaign's pinned definition: as-of, since, tags, limit, articles..."""
        if self.record is None or self.record.definition is None:
            return {}
        return Definition.from_json(self.record.definition).as_dict()


BOUNCE_LIMIT = 0.02
COMPLAINT_LIMIT = 0.001
PROBLEMS = ("failed", "deferred", "ambiguous", "expired", "skipped")


def status(state: StateLocation, campaign: str | None) -> Status:
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
        returned = store.bounces.counts(chosen)
        by_mail = sum(returned.get(k, 0) for k in ("hard", "soft", "policy"))
        return Status(chosen, journal.counts(chosen), problems, journal.campaign(chosen),
                      bounces=len(journal.bounced(chosen)) + by_mail,
                      complaints=returned.get("complaint", 0), returned=by_mail)
