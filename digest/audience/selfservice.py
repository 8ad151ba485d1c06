"""What a reader may do from the links in their digest: leave, come back, choose.

A link's token has already been checked (``digest.email.signing``) and gives
the reader's opaque id; the state maps it to their address and campaign. An
unsubscribe made here is recorded with its campaign as the source (``web:``),
so Undo removes it and never a suppression made another way (a bounce, a
complaint, an operator's ``digest suppress add``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digest.model import StateLocation, slugify
from digest.state.records import now_stamp
from digest.state.store import Store, open_store


@dataclass(frozen=True, slots=True)
class Reader:
    """The recipient a link stands for; ``tags`` are their list's preferences."""

    rid: str
    campaign: str
    email: str
    name: str
    tags: tuple[str, ...]


class SelfService:
    """The unsubscribe and preferences actions over one state."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def open(cls, state: StateLocation) -> SelfService:
        return cls(open_store(state))

    def reader(self, rid: str) -> Reader | None:
        found = self._store.journal.reader(rid)
        if found is None:
            return None
        tags = tuple(t for t in found.tags.split(";") if t)
        return Reader(found.rid, found.campaign, found.email, found.name, tags)

    @staticmethod
    def _source(reader: Reader) -> str:
        return f"web:{reader.campaign}"

    def unsubscribe(self, reader: Reader) -> bool:
        """Suppress the reader as ``unsubscribed``; True if they were not already."""
        entry = (reader.email, "unsubscribed", self._source(reader))
        return self._store.suppressions.add([entry]) == 1

    def undo(self, reader: Reader) -> bool:
        """Take back an unsubscribe made on the web, from this issue's link or an
        earlier one's, and nothing else (a bounce, a complaint, a manual entry)."""
        return self._store.suppressions.undo(reader.email, "web:")

    def unsubscribed(self, reader: Reader) -> bool:
        return self._store.suppressions.reason(reader.email) is not None

    def preferences(self, reader: Reader) -> tuple[str, ...]:
        """The tag slugs the reader gets: their own choice, else their list's."""
        chosen = self._store.preferences.get(reader.email)
        return reader.tags if chosen is None else chosen

    def set_preferences(self, reader: Reader, tags: Sequence[str]) -> None:
        """Store the reader's choice (slugs; none means everything) for the next send."""
        slugs = tuple(dict.fromkeys(s for s in map(slugify, tags) if s))
        self._store.preferences.set(reader.email, slugs, self._source(reader), now_stamp())

    def close(self) -> None:
        self._store.close()
