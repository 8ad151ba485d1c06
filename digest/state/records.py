"""What crosses the storage seam: plain records, never a cursor or SQL.

Every backend reads and writes these, so delivery/ and audience/ see the
same values whichever store holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

STATUSES = ("pending", "inflight", "sent", "deferred", "failed", "ambiguous", "expired",
            "skipped", "suppressed")


# The reply recorded for a recipient whose sender's lease ran out while it was in flight.
EXPIRED_IN_FLIGHT = "in flight when its sender's lease expired"


def stamp(moment: datetime) -> str:
    """The journal's time format: UTC, to the second, so stamps compare as text."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def now_stamp() -> str:
    return stamp(datetime.now(UTC))


# A writer stamps its suppression entries before it commits them, so an entry can
# turn up after a sender's look whose mark is already past its stamp. Each look
# therefore reads this far back before its mark: the same entries twice change
# nothing, as a row suppressed once is no longer owed the issue.
LOOKBACK = timedelta(seconds=10)


def looking_back(mark: str) -> str:
    """The stamp ``LOOKBACK`` before ``mark``."""
    return stamp(datetime.fromisoformat(mark) - LOOKBACK)


def joined_tags(joined: object) -> tuple[str, ...]:
    """Tag slugs as the tables keep them: joined by ";", empty for everything."""
    return tuple(t for t in str(joined).split(";") if t)


# What a run still has to do, as SQL both backends speak: pending and deferred
# recipients go out normally; ambiguous ones (a drop after the final dot, or in
# flight at a crash) go out once more, while resends == 0.
TO_DO = "(status IN ('pending', 'deferred') OR (status='ambiguous' AND resends=0))"

@dataclass(frozen=True, slots=True)
class RecipientRecord:
    campaign: str
    email: str
    message_id: str
    status: str
    attempts: int
    resends: int
    last_code: int | None
    last_reply: str | None
    updated_at: str


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """What the journal knows of one campaign. ``definition`` is JSON that the
    sender writes and reads; the journal only keeps it."""

    campaign: str
    selection: str
    created_at: str
    series: str | None = None
    as_of: str | None = None
    definition: str | None = None
    closed_at: str | None = None
    closed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Follows:
    """The series' newest campaign when an issue was planned (None: it had none).
    A pin that carries it records its campaign only if that is still so: two
    sends that start either side of a week's turn would otherwise pin two
    issues, and everyone on the lists would get both."""

    campaign: str | None


class Pending(NamedTuple):
    """A recipient a run must send to; ``rid`` is their id in links."""

    email: str
    name: str
    tags: str  # preference slugs joined by ";"
    resend: bool  # an ambiguous recipient's one extra try
    rid: str


class Reader(NamedTuple):
    """The recipient a link's id stands for."""

    rid: str
    campaign: str
    email: str
    name: str
    tags: str


class Entry(NamedTuple):
    """One recipient as a run first records them."""

    email: str
    name: str
    tags: str  # preference slugs joined by ";"
    message_id: str
    status: str  # pending, skipped or suppressed
    reason: str | None


@dataclass(frozen=True, slots=True)
class Update:
    """One status change for one recipient."""

    email: str
    status: str
    code: int | None = None
    reply: str | None = None
    attempted: bool = False
    resend: bool = False
    bounced: bool = False


@dataclass(frozen=True, slots=True)
class Suppression:
    """One address on the suppression list."""

    email: str
    reason: str
    source: str
    created_at: str
