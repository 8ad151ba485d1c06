"""``digest inbox``: read the mail that comes back and let the list clean itself.

Each message is classified (audience/dsn.py), matched to a recipient, and the
bounce policy applied:

* hard (5.x.x but 5.7.x and 5.2.2): suppressed at once as ``bounced``;
* soft (4.x.x, 5.2.2): the address scores ``soft_score`` (Mailman 3's 0.5), at
  most once a day, and is suppressed as ``bounced`` at ``suppress_score``; a
  score with no bounce for ``reset_days`` starts again from nothing;
* policy (5.7.x): recorded, never suppressed: a block says nothing about the
  address;
* an ARF complaint: suppressed as ``complained`` (for every list);
* a mailto unsubscribe with a genuine token: suppressed as ``unsubscribed``;
* auto-replies are ignored; unrecognised mail is counted, listed and left unread.

A recipient is found through the VERP token of the address the bounce came
to, a signed unsubscribe token, or else the address the report names. Each
processed message's Message-ID (or a hash of its bytes) is recorded, so a
second run over the same mail changes nothing. ``now`` comes from the caller.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from digest.audience.dsn import Finding, classify, parse
from digest.audience.mailboxes import Source
from digest.model import StateLocation
from digest.state.records import stamp
from digest.state.store import Store, open_store

COUNTED = ("hard", "soft", "policy", "complaints", "unsubscribes", "ignored", "unrecognised",
           "already_seen")
_COUNT_OF = {"complaint": "complaints", "unsubscribe": "unsubscribes"}
# A token's recipient id, or None: VERP addresses and unsubscribe tokens.
Decoder = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Policy:
    """The bounce policy's three numbers (README "Deliverability")."""

    soft_score: float = 0.5
    suppress_score: float = 5.0
    reset_days: int = 7


@dataclass(frozen=True, slots=True)
class Decoders:
    """How tokens map back to recipient ids; None where no key was given."""

    verp: Decoder | None = None
    unsubscribe: Decoder | None = None


@dataclass(frozen=True, slots=True)
class InboxResult:
    counts: dict[str, int]
    suppressed: tuple[tuple[str, str], ...]  # (email, reason), newly suppressed
    unrecognised: tuple[str, ...]  # handles of the messages left unread

    def as_json(self) -> dict[str, object]:
        return {"counts": self.counts,
                "suppressed": [{"email": e, "reason": r} for e, r in self.suppressed],
                "unrecognised": list(self.unrecognised)}


@dataclass
class _Run:
    store: Store
    policy: Policy
    decoders: Decoders
    now: datetime
    counts: Counter[str] = field(default_factory=Counter)
    suppressed: list[tuple[str, str]] = field(default_factory=list)


def message_id(data: bytes, header: str | None) -> str:
    """The Message-ID, or a hash of the bytes for mail without one."""
    value = (header or "").strip()
    return value or "sha256:" + hashlib.sha256(data).hexdigest()


def read_inbox(source: Source, state: StateLocation, policy: Policy, decoders: Decoders,
               now: datetime) -> InboxResult:
    """Process every unread message of ``source`` against the state at ``state``."""
    left: list[str] = []
    with closing(open_store(state)) as store:
        run = _Run(store, policy, decoders, now)
        for handle, data in source.messages():
            msg = parse(data)
            key = message_id(data, msg.get("Message-ID"))
            if store.bounces.processed(key):
                run.counts["already_seen"] += 1
                source.mark_seen(handle)
                continue
            findings = classify(msg)
            if _unrecognised(run, findings[0]):
                run.counts["unrecognised"] += 1
                left.append(handle)
                continue
            where = ("", "")
            for finding in findings:
                where = _apply(run, finding) or where
            store.bounces.record(key, findings[0].kind, where, stamp(now))
            source.mark_seen(handle)
    counts = {name: run.counts[name] for name in COUNTED}
    return InboxResult(counts, tuple(run.suppressed), tuple(left))


def _unrecognised(run: _Run, first: Finding) -> bool:
    """Unrecognised mail, or an unsubscribe whose token is not genuine (anyone can
    write an address): left unread for a person to look at."""
    if first.kind == "unsubscribe":
        return _recipient(run, first) is None
    return first.kind == "unrecognised"


def _apply(run: _Run, finding: Finding) -> tuple[str, str] | None:
    """Count ``finding`` and act on it; the (campaign, email) it named, if any."""
    run.counts[_COUNT_OF.get(finding.kind, finding.kind)] += 1
    where = None if finding.kind == "ignored" else _recipient(run, finding)
    if where is None:
        return None
    campaign, email = where
    if finding.kind == "hard":
        _suppress(run, email, "bounced", f"inbox:{finding.status}")
    elif finding.kind == "soft":
        _score(run, email, finding.status)
    elif finding.kind == "complaint":
        _suppress(run, email, "complained", "inbox:arf")
    elif finding.kind == "unsubscribe":
        _suppress(run, email, "unsubscribed", f"mailto:{campaign}")
    return where


def _recipient(run: _Run, finding: Finding) -> tuple[str, str] | None:
    """(campaign, email): through a token first, else the address the mail names.
    An unsubscribe needs a genuine token: anyone can write an address."""
    journal = run.store.journal
    tries: list[tuple[Decoder | None, tuple[str, ...]]] = [
        (run.decoders.unsubscribe, finding.tokens), (run.decoders.verp, finding.envelope)]
    for decode, values in tries:
        if decode is None:
            continue
        for value in values:
            rid = decode(value)
            reader = journal.reader(rid) if rid else None
            if reader is not None:
                return reader.campaign, reader.email
    if finding.kind == "unsubscribe" or not finding.addresses:
        return None
    return "", finding.addresses[0]


def _suppress(run: _Run, email: str, reason: str, source: str) -> None:
    if run.store.suppressions.add([(email, reason, source)]):
        run.suppressed.append((email, reason))


def _score(run: _Run, email: str, status: str) -> None:
    """Mailman 3's scoring: once a day at most, reset after ``reset_days`` quiet."""
    policy, now = run.policy, run.now.astimezone(UTC)
    score = 0.0
    before = run.store.bounces.score(email)
    if before is not None:
        last = datetime.fromisoformat(before[1])
        if now - last < timedelta(days=policy.reset_days):
            if last.date() == now.date():
                return
            score = before[0]
    score += policy.soft_score
    run.store.bounces.set_score(email, score, stamp(now))
    if score >= policy.suppress_score:
        _suppress(run, email, "bounced", f"inbox:{status}:score")
