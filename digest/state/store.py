"""The storage seam: what delivery/ and audience/ may ask of the state.

Three protocols, and ``open_store`` to get one. Records go in and out
(digest/state/records.py); SQL, connections and file names never cross.
A second backend implements these protocols and is chosen in ``open_store``;
nothing in delivery/ or audience/ changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from digest.model import StateLocation
from digest.state.postgres.location import PostgresLocation, is_postgres_url
from digest.state.records import (
    STATUSES,
    CampaignRecord,
    Entry,
    Follows,
    Pending,
    Reader,
    RecipientRecord,
    Suppression,
    Update,
)
from digest.state.sqlite import SqliteStore

# Addresses per question to ``SuppressionStore.reasons`` and ``PreferenceStore.chosen``:
# a list is read a page at a time, one round trip per page rather than per row.
LOOKUP_PAGE = 500


@runtime_checkable
class JournalStore(Protocol):
    """One row per (campaign, recipient), and one record per campaign."""

    @property
    def writable(self) -> bool: ...

    @property
    def apply_in_thread(self) -> bool:
        """Whether ``apply`` may run in a thread of its own while the sender's loop
        goes on and uses the journal: true where a commit waits on a server."""

    def pin(self, record: CampaignRecord, follows: Follows | None = None) -> CampaignRecord:
        """Record a new campaign; one already recorded keeps (and returns) its first
        record. With ``follows``, when the series' newest campaign is no longer that
        one, nothing is recorded and the newest is returned."""

    def campaign(self, campaign: str) -> CampaignRecord | None: ...

    def newest(self, series: str) -> CampaignRecord | None:
        """The latest issue of a series, by its as-of date."""

    def unfinished(self, campaign: str) -> int:
        """How many recipients are still owed the issue; 0 once it is closed."""

    def expire(self, campaign: str, queued_before: str, reason: str) -> int:
        """Give up on those still owed the issue who were queued before ``queued_before``."""

    def close_campaign(self, campaign: str, reason: str, at: str) -> bool:
        """Set a campaign aside; False if it was closed already."""

    def add(self, campaign: str, entries: Iterable[Entry], *, queued_at: str | None = None) -> int:
        """Record this run's recipients; a suppression overrides a send not yet made."""

    def recover(self, campaign: str) -> int:
        """Turn recipients left in flight by a crash into ambiguous ones."""

    def count_todo(self, campaign: str) -> int: ...

    def todo(self, campaign: str, chunk: int = 1000) -> Iterator[Pending]:
        """Each recipient this run must send to, a page of ``chunk`` at a time."""

    def reader(self, rid: str) -> Reader | None:
        """Who a link's recipient id stands for, and in which campaign."""

    def still_to_do(self, campaign: str, email: str) -> tuple[bool, str | None]:
        """(whether a run would send to ``email``, its status if it has a row)."""

    def apply(self, campaign: str, updates: Sequence[Update]) -> None:
        """Commit several status changes at once: all of them or none."""

    def counts(self, campaign: str) -> dict[str, int]: ...

    def rows(self, campaign: str, statuses: Sequence[str] = STATUSES) -> Iterator[RecipientRecord]:
        ...

    def bounced(self, campaign: str) -> list[str]:
        """Recipients whose address the server refused for good (5xx to RCPT)."""

    def campaigns(self) -> list[str]:
        """Every campaign with recipients, the most recently active first."""

    # Claims: how senders share a campaign. ``apply`` of a result clears a row's
    # claim; ``inflight`` and ``deferred`` (a later try by the same sender) keep it.

    def claim(self, campaign: str, sender_id: str, n: int, lease_s: float,
              now: datetime) -> list[Pending]:
        """Atomically take up to ``n`` recipients still owed the issue (as ``todo``)
        that are unclaimed or whose lease ended before ``now``, in key order, stamping
        them ``sender_id`` until ``now + lease_s``."""

    def renew(self, campaign: str, sender_id: str, emails: Sequence[str], lease_s: float,
              now: datetime) -> int:
        """Extend to ``now + lease_s`` the leases ``sender_id`` holds on ``emails``."""

    def reclaim(self, campaign: str, now: datetime) -> int:
        """Turn recipients in flight under a lease ended before ``now`` (or under none)
        into ambiguous ones, unclaimed: ``recover`` per lease, never touching a live
        sender's rows."""

    def release(self, campaign: str, sender_id: str | None) -> int:
        """Drop the claims of ``sender_id`` (None: of everyone) on rows not in flight."""

    def held(self, campaign: str, sender_id: str, now: datetime) -> float | None:
        """Seconds until the soonest lease of another sender on a row in flight or not
        yet tried ends, 0 if one has ended already (those rows are free to claim now);
        None if there is none (a deferred row is not waited for)."""


@runtime_checkable
class SuppressionStore(Protocol):
    """Addresses never to be mailed, compared by ``model.address_key``."""

    def add(self, entries: Iterable[tuple[str, str, str]]) -> int:
        """Add (email, reason, source); an address listed already keeps its first
        reason. Returns how many were new."""

    def remove(self, emails: Iterable[str]) -> int: ...

    def reason(self, email: str) -> str | None: ...

    def reasons(self, emails: Sequence[str]) -> dict[str, str]:
        """{address key: reason} of those of ``emails`` listed: one query for a
        page of a list, where a query each would cost a round trip each."""

    def undo(self, email: str, source: str) -> bool:
        """Remove the unsubscribe of ``email`` whose source starts with ``source``."""

    def added_since(self, mark: str) -> list[tuple[str, str]]:
        """(key, reason) of the entries added at or after ``mark``."""

    def __iter__(self) -> Iterator[Suppression]: ...


@runtime_checkable
class PreferenceStore(Protocol):
    """Subscribers' own tag choices, which override a list's tags column."""

    def get(self, email: str) -> tuple[str, ...] | None:
        """The tag slugs chosen, () for everything; None if they never chose."""

    def chosen(self, emails: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """{address key: tag slugs} of those of ``emails`` who chose, in one query."""

    def set(self, email: str, tags: tuple[str, ...], source: str, at: str) -> None: ...

    def count(self) -> int: ...


@runtime_checkable
class BounceStore(Protocol):
    """Bounce scores per address and the returned mail already processed."""

    def processed(self, message_id: str) -> bool: ...

    def record(self, message_id: str, kind: str, where: tuple[str, str], at: str) -> None:
        """Remember a processed message, its kind and the (campaign, email) it named."""

    def score(self, email: str) -> tuple[float, str] | None:
        """(score, stamp of the last counted bounce); None if never scored."""

    def set_score(self, email: str, score: float, at: str) -> None: ...

    def counts(self, campaign: str) -> dict[str, int]:
        """Distinct addresses of ``campaign`` per kind of returned mail."""


@runtime_checkable
class Store(Protocol):
    """The state of one location: journal, suppression list and lock.

    The journal and the suppression list open when first used, so a command
    opens only what it needs, and ``send`` opens them under the lock. (So on
    Python 3.11 an ``isinstance`` check against this protocol opens them.)
    """

    @property
    def journal(self) -> JournalStore: ...

    @property
    def suppressions(self) -> SuppressionStore: ...

    @property
    def preferences(self) -> PreferenceStore: ...

    @property
    def bounces(self) -> BounceStore: ...

    def has_journal(self) -> bool:
        """Whether anything was journalled here yet; a read-only store without
        one reads as an empty journal."""

    @property
    def shared(self) -> bool:
        """Whether senders in many processes and machines share this state through
        claims (PostgreSQL), rather than one sender process group holding its lock."""

    def lock(self) -> AbstractContextManager[object]:
        """One run at a time: entering raises LockedError while another holds it."""

    def send_lock(self) -> AbstractContextManager[object]:
        """What ``digest send`` holds: ``lock()`` itself where it excludes other sends;
        where the state is ``shared``, a lock any number of sends hold at once, which
        still keeps out (and is kept out by) ``lock()``."""

    def clock(self) -> datetime:
        """Now, by the clock this state's leases and suppression stamps are read
        against: this machine's for a state folder; the database server's for
        PostgreSQL, so that senders on machines whose clocks disagree still agree
        on when a lease ends and on which unsubscribes are new."""

    def apply_suppressions(self, campaign: str, since: str | None = None) -> int:
        """Mark suppressed everyone still owed the issue whom the suppression list
        names, whether or not a list still has them; return how many. With
        ``since`` (a stamp), only the entries added since then, and ``LOOKBACK``
        before (records.py): a running send picks up unsubscribes made while it
        runs, also one committed just after a look."""

    def close(self) -> None: ...


Location = StateLocation


def open_store(location: Location, *, readonly: bool = False,
               memory_journal: bool = False) -> Store:
    """The store at ``location``: a state folder, or a ``postgresql://`` URL.
    ``readonly`` writes and creates nothing: for ``digest status`` and dry runs,
    also on a full disk. ``memory_journal`` keeps the journal in memory (the
    benchmark only)."""
    if isinstance(location, str) and is_postgres_url(location):
        from digest.state.postgres.store import PostgresStore  # psycopg only when asked

        database: Store = PostgresStore(PostgresLocation(location), readonly=readonly,
                                        memory_journal=memory_journal)
        return database
    store: Store = SqliteStore(Path(location), readonly=readonly, memory_journal=memory_journal)
    return store
