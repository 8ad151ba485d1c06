"""The library behind ``digest build``: one digest rendered, inlined and
written out as digest.html, digest.txt and a sample message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.content.compose import Digest, compose
from digest.content.folder import Source, Warn, gather
from digest.content.selection import IssueOptions, campaign_id
from digest.content.urls import archive_link, issue_page
from digest.email.message import MessageTemplate, fill
from digest.email.options import RenderOptions
from digest.email.render import Rendered, make_environment, render_digest
from digest.errors import DigestError
from digest.files import write_atomic
from digest.model import Article, Subscriber

SAMPLE = Subscriber("reader@example.org", "Sample Reader")


def make_digest(issue: IssueOptions, render: RenderOptions, articles: Sequence[Article],
                campaign: str | None = None) -> Digest:
    """The issue; with ``campaign`` and an archive URL, it links to its web page."""
    identity = render.identity
    view_url = None
    if campaign and identity.archive_url:
        view_url = archive_link(identity.archive_url, issue_page(campaign))
    frame = Digest(name=identity.name, as_of=issue.as_of, site_url=identity.site_url,
                   intro=issue.intro, postal_address=identity.postal_address,
                   view_url=view_url)
    return compose(articles, frame, issue.summary_words)


def render_once(render: RenderOptions, digest: Digest) -> Rendered:
    render.check()
    return render_digest(make_environment(render.templates), digest, subject=render.subject)


@dataclass(frozen=True, slots=True)
class BuildResult:
    digest: Digest
    files: tuple[Path, ...]


def build(source: Source, issue: IssueOptions, render: RenderOptions, out: Path, *,
          now: datetime, warn: Warn) -> BuildResult:
    """Write digest.html, digest.txt and sample.eml into ``out``."""
    # No "View in browser" here: a build belongs to no list, so its campaign names an
    # issue page that no send would publish.
    campaign = campaign_id(issue.as_of, [], issue.tags)
    digest = make_digest(issue, render, gather(source, issue, warn))
    if not digest.items:
        return BuildResult(digest, ())
    rendered = render_once(render, digest)
    template = MessageTemplate(rendered, identity=render.identity, campaign=campaign,
                               sent_at=now)
    values = template.values(SAMPLE)
    files = {
        "digest.html": fill(rendered.html, values, html=True).encode(),
        "digest.txt": fill(rendered.text, values, html=False).encode(),
        "sample.eml": template.personalize(SAMPLE).data,
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_atomic(out / name, data)
    except OSError as exc:
        raise DigestError(f"cannot write to {out}: {exc.strerror}; check --out") from exc
    return BuildResult(digest, tuple(out / name for name in files))
