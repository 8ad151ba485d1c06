"""Which issue a ``digest send`` is for: resume the one begun, wait, or start the next.

A campaign is one issue of one series (the same lists and tags). It records
everything that defines the issue: as-of, since, tags, exclude-tags, limit,
summary words, and the articles it pinned (files and dates). A rerun sends
that issue, whatever the clock says now, so the README's cron line finishes
the issue it began even after an article was published in between or the
run crossed midnight into a new ISO week.

The rules, for a send without ``--campaign``:

1. The newest campaign of the series is unfinished (someone is still owed
   the issue, and it is not closed): resume it. Anyone queued longer ago
   than ``max_age`` expires first, so every campaign ends.
2. Its as-of is less than ``min_interval`` before this run's as-of: start
   nothing ("nothing to do yet"), which guards against a cron line that runs
   too often and a restored backup replaying a send.
3. Otherwise start a new campaign.

``--campaign ID`` names the campaign: an existing one is resumed with its own
definition; a new one starts now, whatever the series' newest says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from digest.content.articles import LoadResult
from digest.content.selection import IssueOptions, campaign_id, select, series_of
from digest.delivery.request import Cadence, SendRequest
from digest.errors import ConfigError
from digest.model import Article
from digest.state.records import CampaignRecord, Follows, stamp
from digest.state.store import JournalStore, Store


@dataclass(frozen=True, slots=True)
class Definition:
    """Everything that makes an issue what it is; stored with its campaign."""

    as_of: datetime
    since: str
    tags: tuple[str, ...]
    exclude_tags: tuple[str, ...]
    limit: int
    summary_words: int
    articles: tuple[tuple[str, str], ...]  # (path in the articles folder, date), in order
    intro: str | None = None  # the editor's note as first sent, for the archive

    @classmethod
    def of(cls, options: IssueOptions, folder: Path, articles: Sequence[Article]) -> Definition:
        return cls(options.as_of, options.since, options.tags, options.exclude_tags,
                   options.limit, options.summary_words,
                   tuple((_relative(folder, a), a.date.isoformat()) for a in articles),
                   options.intro)

    def to_json(self) -> str:
        return json.dumps({**self.as_dict(), "articles": [list(a) for a in self.articles],
                           "intro": self.intro}, ensure_ascii=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat(), "since": self.since, "tags": list(self.tags),
            "exclude_tags": list(self.exclude_tags), "limit": self.limit,
            "summary_words": self.summary_words,
            "articles": [path for path, _ in self.articles],
        }

    @classmethod
    def from_json(cls, text: str) -> Definition:
        data = json.loads(text)
        return cls(datetime.fromisoformat(data["as_of"]), data["since"], tuple(data["tags"]),
                   tuple(data["exclude_tags"]), int(data["limit"]), int(data["summary_words"]),
                   tuple((str(p), str(d)) for p, d in data["articles"]),
                   data.get("intro"))  # campaigns pinned before notes existed have none

    def options(self) -> IssueOptions:
        """The options this issue was selected with, in place of the run's."""
        return IssueOptions(self.as_of, self.since, self.tags, self.exclude_tags, self.limit,
                            self.summary_words, self.intro)


@dataclass(frozen=True, slots=True)
class IssuePlan:
    """What this run sends: ``campaign`` with ``articles``, under ``options``
    (the pinned definition's when it resumes). ``wait`` says why it
    sends nothing yet; ``resumed`` is the campaign it picks up again;
    ``follows`` is the series' newest issue that a new campaign comes after;
    ``joined``, that another sender on a shared state pinned it as this run began."""

    campaign: str
    options: IssueOptions
    articles: tuple[Article, ...]
    definition: Definition
    series: str
    resumed: CampaignRecord | None = None
    wait: str | None = None
    expired: int = 0
    follows: Follows | None = None
    joined: bool = False

    def record(self, now: datetime) -> CampaignRecord:
        return CampaignRecord(self.campaign, selection_key(self.definition), stamp(now),
                              self.series, stamp(self.definition.as_of),
                              self.definition.to_json())


def selection_key(definition: Definition) -> str:
    listing = "\n".join(f"{path}\t{date}" for path, date in definition.articles)
    return hashlib.sha256(listing.encode()).hexdigest()


def plan_issue(journal: JournalStore | None, request: SendRequest, loaded: LoadResult, *,
               now: datetime) -> IssuePlan:
    """Decide which issue this run sends; ``journal`` None means none exists yet.
    Expiry writes to the journal, so a dry run passes a read-only one and gets
    the plan without it."""
    options, lists, cadence = request.issue, request.lists, request.cadence
    series = series_of(lists, options.tags)
    fresh = _fresh(request.campaign or campaign_id(options.as_of, lists, options.tags), series,
                   request, loaded)
    if journal is None:
        return fresh
    expired = 0
    if request.campaign is None:
        newest = journal.newest(series)
        fresh = dataclasses.replace(fresh, follows=Follows(newest.campaign if newest else None))
        if newest is not None and newest.definition is not None and not newest.closed_at:
            expired = _expire(journal, newest.campaign, cadence, now)
            if journal.unfinished(newest.campaign):
                return _resume(newest, request, loaded, expired)
        if newest is not None and newest.as_of is not None:
            due = datetime.fromisoformat(newest.as_of) + cadence.min_interval
            if options.as_of < due and newest.campaign != fresh.campaign:
                return dataclasses.replace(fresh, wait=_too_soon(newest, due), expired=expired)
    record = journal.campaign(fresh.campaign)
    if record is None:
        return dataclasses.replace(fresh, expired=expired)
    if not record.closed_at:
        expired += _expire(journal, record.campaign, cadence, now)
    return _resume(record, request, loaded, expired)


def journal_now(store: Store, now: datetime) -> datetime:
    """The time a run queues recipients and expires them by: on a shared state, the
    clock every sender on it shares (a host days fast must not expire a live
    issue); otherwise the run's own ``now``."""
    return store.clock() if store.shared else now


def pin_issue(journal: JournalStore, plan: IssuePlan, request: SendRequest, loaded: LoadResult,
              *, now: datetime) -> IssuePlan:
    """Pin a new campaign, or, on a shared state, join the one another send pinned
    first: the same campaign, or another issue of the series pinned since this
    plan was made (two clocks either side of a week's turn). Either way everyone
    on the lists gets one issue."""
    if plan.resumed is not None:
        return plan
    record = plan.record(now)
    pinned = journal.pin(record, plan.follows)
    if pinned == record:
        return plan
    joined = plan_issue(journal, dataclasses.replace(request, campaign=pinned.campaign),
                        loaded, now=now)
    return dataclasses.replace(joined, joined=True)


def _fresh(campaign: str, series: str, request: SendRequest, loaded: LoadResult) -> IssuePlan:
    options = request.issue
    articles = tuple(request.source.linked(select(loaded.articles, options.criteria())))
    definition = Definition.of(options, request.source.folder, articles)
    return IssuePlan(campaign, options, articles, definition, series)


def _resume(record: CampaignRecord, request: SendRequest, loaded: LoadResult,
            expired: int) -> IssuePlan:
    if record.definition is None:
        # Pinned by an older digest, which kept only the articles' fingerprint.
        plan = _fresh(record.campaign, record.series or "", request, loaded)
        if selection_key(plan.definition) != record.selection:
            raise ConfigError(
                f"campaign {record.campaign} was started with another selection of articles; "
                "run it again with the same --as-of, --since, --tag and --limit",
                source="--campaign")
        return dataclasses.replace(plan, resumed=record, expired=expired)
    definition = Definition.from_json(record.definition)
    # The note is the editor's words now, like a typo fixed in a pinned article.
    options = dataclasses.replace(definition.options(), intro=request.issue.intro)
    plan = IssuePlan(record.campaign, options, (), definition,
                     record.series or "", resumed=record, expired=expired)
    if record.closed_at:
        return dataclasses.replace(plan, wait=(
            f"Campaign {record.campaign} was closed at {record.closed_at} "
            f"({record.closed_reason}); it sends nothing more. Nothing to do."))
    articles = _pinned(record.campaign, definition, request.source.folder, loaded)
    return dataclasses.replace(plan, articles=tuple(request.source.linked(articles)))


def _pinned(campaign: str, definition: Definition, root: Path,
            loaded: LoadResult) -> tuple[Article, ...]:
    """The issue's own articles, as they read now: a typo fixed since is fine,
    a file gone or redated is not, because that would be another issue."""
    by_path = {_relative(root, a): a for a in loaded.articles}
    articles = []
    for path, date in definition.articles:
        article = by_path.get(path)
        if article is None or article.date.isoformat() != date:
            problem = "is gone or no longer parses" if article is None else "has a new date"
            raise ConfigError(
                f"campaign {campaign} pinned the article {root / path}, which {problem}; "
                f"restore it to finish the issue, or set the campaign aside with "
                f"'digest campaign close {campaign}'", source="--articles")
        articles.append(article)
    return tuple(articles)


def _expire(journal: JournalStore, campaign: str, cadence: Cadence, now: datetime) -> int:
    if not journal.writable:
        return 0
    age = cadence.max_age
    return journal.expire(campaign, stamp(now - age),
                          f"still not delivered after {_days(age)} (--max-age)")


def _too_soon(newest: CampaignRecord, due: datetime) -> str:
    return (f"The last issue of these lists, campaign {newest.campaign}, is as of "
            f"{newest.as_of}; the next one is due from {stamp(due)} (--min-interval). "
            "Nothing to do yet.")


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours % 24 == 0 else f"{hours:g} hours"


def _relative(root: Path, article: Article) -> str:
    try:
        return article.source.relative_to(root).as_posix()
    except ValueError:
        return article.source.as_posix()
