"""The library behind ``digest preview``: the issue rendered as a reader will
get it, and photographed by a real Chromium on a desktop, on a phone, in dark
mode, and with its ``<style>`` stripped as Gmail's app strips it for accounts
that are not Google's.

With a subscriber, it is their variant: the articles their tag preferences
select (their own choice on the preferences page, when the state has one,
over their list's tags), personalised with their name and address, just as
``digest send`` would build it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.audience.selfservice import Reader, SelfService
from digest.audience.subscribers import find_subscriber
from digest.content.folder import Source, Warn, gather
from digest.content.selection import IssueOptions, campaign_id
from digest.desk.browser import Scheme, Shot, find_chromium, screenshots
from digest.email.build import SAMPLE, make_digest, render_once
from digest.email.message import MessageTemplate, fill
from digest.email.options import RenderOptions
from digest.email.variants import Variants
from digest.errors import ConfigError, DigestError
from digest.files import write_atomic
from digest.model import Article, StateLocation, Subscriber

DESKTOP, MOBILE = 1200, 375
# (file, window width, colour scheme, <style> stripped), in the order they are listed.
SHOTS: tuple[tuple[str, int, Scheme, bool], ...] = (
    ("desktop.png", DESKTOP, "light", False),
    ("mobile.png", MOBILE, "light", False),
    ("desktop-dark.png", DESKTOP, "dark", False),
    ("mobile-dark.png", MOBILE, "dark", False),
    ("nostyle.png", MOBILE, "light", True),
)
_STYLE = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class PreviewSubscriber:
    """Whose variant to preview: ``email`` as ``lists`` have it. A ``state``
    folder that exists may hold their own choice of topics, which wins."""

    email: str
    lists: tuple[Path, ...]
    list_format: str | None = None
    state: StateLocation | None = None


@dataclass(frozen=True, slots=True)
class PreviewRequest:
    """What to preview and where to write it. ``chromium`` None means the
    first Chromium on PATH."""

    source: Source
    issue: IssueOptions
    render: RenderOptions
    out: Path
    chromium: Path | None = None
    subscriber: PreviewSubscriber | None = None


def strip_styles(html: str) -> str:
    """``html`` without its ``<style>`` blocks: what is left is what the inline
    styles alone make of it."""
    return _STYLE.sub("", html)


def preview(request: PreviewRequest, *, now: datetime, warn: Warn) -> tuple[Path, ...]:
    """Write the PNGs of SHOTS, digest.html and sample.eml into ``request.out``
    and return their paths, in that order; nothing when no article is selected.
    Nothing is written unless every screenshot was taken."""
    chromium = find_chromium(request.chromium)
    articles = gather(request.source, request.issue, warn)
    if not articles:
        return ()
    who = request.subscriber
    reader = SAMPLE if who is None else _subscriber(who, warn)
    campaign = campaign_id(request.issue.as_of, who.lists if who else [], request.issue.tags)
    chosen = _variant(request, articles, reader, campaign, now)
    digest = make_digest(request.issue, request.render, chosen)
    rendered = render_once(request.render, digest)
    template = MessageTemplate(rendered, identity=request.render.identity, campaign=campaign,
                               sent_at=now)
    html = fill(rendered.html, template.values(reader), html=True)
    shots = [Shot(strip_styles(html) if bare else html, width, scheme)
             for _, width, scheme, bare in SHOTS]
    images = screenshots(chromium, shots)
    files = {name: image for (name, *_), image in zip(SHOTS, images, strict=True)}
    files["digest.html"] = html.encode()
    files["sample.eml"] = template.personalize(reader).data
    return _write(request.out, files)


def _subscriber(who: PreviewSubscriber, warn: Warn) -> Subscriber:
    """The subscriber as a send would mail them: their list row, with the
    topics they chose on the preferences page in place of its tags."""
    found = find_subscriber(who.lists, who.email, list_format=who.list_format)
    if found is None:
        lists = ", ".join(str(path) for path in who.lists)
        raise ConfigError(f"{who.email} is not a subscriber in {lists}; check the address "
                          "and --list", source="--subscriber")
    # A folder that does not exist holds no choices (and is not created); a URL is a database.
    if who.state is None or (isinstance(who.state, Path) and not who.state.is_dir()):
        return found
    service = SelfService.open(who.state)
    try:
        reader = Reader("", "", found.email, found.name, found.tags)
        if service.unsubscribed(reader):
            warn(f"{found.email} is suppressed in {who.state}: a send would not mail them")
        return Subscriber(found.email, found.name, service.preferences(reader))
    finally:
        service.close()


def _variant(request: PreviewRequest, articles: Sequence[Article], reader: Subscriber,
             campaign: str, now: datetime) -> list[Article]:
    """The articles a send gives ``reader``, chosen by the send's own rule."""
    variants = Variants(request.render, request.issue, articles, campaign=campaign,
                        sent_at=now)
    chosen = variants.chosen(reader.tags)
    if not chosen:
        raise ConfigError(f"{reader.email} wants {', '.join(reader.tags)}, which none of the "
                          f"{len(articles)} selected articles has; a send would skip them",
                          source="--subscriber")
    return [articles[index] for index in chosen]


def _write(out: Path, files: dict[str, bytes]) -> tuple[Path, ...]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigestError(f"cannot write to {out}: {exc.strerror}; check --out") from exc
    for name, data in files.items():
        write_atomic(out / name, data)
    return tuple(out / name for name in files)
