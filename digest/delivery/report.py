"""The outcome of one ``digest send``: its exit code and its JSON report."""

from __future__ import annotations

from dataclasses import dataclass, field

from digest.errors import DigestError

# Exit code 69: the run gave up on the server after connection errors in a row.
GAVE_UP = 69
# Exit code 3: the run is over but not everyone has the issue.
UNSETTLED = 3
UNSETTLED_STATUSES = ("failed", "deferred", "ambiguous", "expired")
COUNTED = ("sent", "failed", "deferred", "ambiguous", "expired", "skipped", "suppressed")


@dataclass(frozen=True, slots=True)
class SendReport:
    """What one run did; ``counts`` is the campaign's state after it.

    ``waiting`` says why the run started no issue (too soon after the last,
    or the campaign is closed). ``stopped`` is the error that ended the run
    part-way; ``issue`` is the campaign's pinned definition."""

    campaign: str
    articles: int
    recipients: int
    counts: dict[str, int]
    sent_now: int = 0
    recovered: int = 0
    duration_s: float = 0.0
    dry_run: bool = False
    todo: int = 0
    aborted: str | None = None
    variants: int = 0
    skips: tuple[tuple[str, str], ...] = ()
    send_s: float = 0.0  # the delivery phase alone, after the lists are read
    retries: int = 0  # transient failures retried within this run
    stopped: DigestError | None = None
    waiting: str | None = None
    expired_now: int = 0
    resumed: bool = False
    issue: dict[str, object] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """69 when the run gave up on the server. An error that stopped the run
        gives its own code (1) only if nothing was sent; after a delivery it is
        3, like a run that left anyone failed, deferred, ambiguous or expired.
        Else 0, "nothing left to send" and "nothing to do yet" included."""
        if self.aborted:
            return GAVE_UP
        if self.stopped is not None:
            return UNSETTLED if self.sent_now else self.stopped.exit_code
        if self.dry_run or (self.todo == 0 and not self.expired_now):
            return 0
        unsettled = sum(self.counts.get(s, 0) for s in UNSETTLED_STATUSES)
        return UNSETTLED if unsettled else 0

    def as_json(self) -> dict[str, object]:
        return {
            "campaign": self.campaign,
            "recipients": self.recipients,
            **{key: self.counts.get(key, 0) for key in COUNTED},
            "sent_this_run": self.sent_now,
            "retries_this_run": self.retries,
            "expired_this_run": self.expired_now,
            "resent_after_crash": self.recovered,
            "articles": self.articles,
            "variants": self.variants,
            "skips": [{"email": e, "reason": r} for e, r in self.skips],
            "issue": self.issue,
            "resumed": self.resumed,
            "dry_run": self.dry_run,
            "waiting": self.waiting,
            "aborted": self.aborted,
            "stopped": str(self.stopped) if self.stopped is not None else None,
            "duration_s": round(self.duration_s, 3),
            "send_s": round(self.send_s, 3),
        }
