"""What a ``digest send`` is asked to do, resolved by the CLI into typed parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from digest.content.folder import Source
from digest.content.selection import IssueOptions
from digest.delivery.sender import SendOptions
from digest.delivery.transport import Transport
from digest.email.options import RenderOptions
from digest.email.wrap import Wrapper
from digest.model import StateLocation


@dataclass(frozen=True, slots=True)
class Cadence:
    """How issues follow each other: ``min_interval`` between two issues'
    as-of dates, and ``max_age`` that a recipient may wait in the queue."""

    min_interval: timedelta = timedelta(days=6)
    max_age: timedelta = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """The issue (source, options, look) and where and how to deliver it."""

    source: Source
    issue: IssueOptions
    render: RenderOptions
    lists: tuple[Path, ...]
    transport: Transport
    state: StateLocation = Path(".digest")
    campaign: str | None = None
    dry_run: bool = False
    options: SendOptions = field(default_factory=SendOptions)
    list_format: str | None = None
    journal: bool = True  # off only for the benchmark that measures its cost
    cadence: Cadence = field(default_factory=Cadence)
    wrappers: tuple[Wrapper, ...] = ()  # applied to each message before the transport
