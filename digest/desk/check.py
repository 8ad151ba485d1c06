"""``digest check``, the preflight: render every variant of the issue as a
reader gets it and report what would go wrong, so that cron can run
``digest check && digest send ...``.

Every variant is checked: without lists, the full issue; with lists, one
message per distinct set of stories their readers' tag preferences select.
Findings about the articles folder (unknown front-matter keys, files that
do not parse) are reported, never raised, even under ``strict``, where they
become errors.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from digest.audience.subscribers import iter_subscribers
from digest.content.articles import LoadResult, load_articles
from digest.content.folder import Source, known_tags
from digest.content.selection import IssueOptions, campaign_id, select
from digest.desk.findings import Finding, Report, error, warning
from digest.desk.rules import Variant, dead_ends, duplicate_titles, variant_findings
from digest.email.build import SAMPLE
from digest.email.message import Identity
from digest.email.options import RenderOptions
from digest.email.render import TEMPLATES
from digest.email.signing import HOW_TO
from digest.email.variants import Variants
from digest.errors import ArticleError
from digest.model import Article, Subscriber

# A recipient id as long as a real one (see signing.new_rid), so that signed
# links, and so the measured size, are as long as in a real send.
_SAMPLE_RID = "sample-rid00"


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """What to check. ``lists`` given means a bulk send is planned, which
    needs a postal address and ``has_keys`` (a key that signs unsubscribe
    links); ``render.signer`` signs the links measured, when there is one."""

    source: Source
    issue: IssueOptions
    render: RenderOptions
    lists: tuple[Path, ...] = ()
    list_format: str | None = None
    has_keys: bool = False


def check(request: CheckRequest) -> Report:
    """Render every variant and run every check. A problem that stops
    rendering at all (no articles folder, a broken template, an unreadable
    list) is raised as a DigestError, as every command does."""
    request.render.check()
    loaded = load_articles(request.source.folder)
    findings = _folder_findings(loaded, request.source.strict)
    if request.lists:
        findings += bulk_prerequisites(request.render.identity, request.has_keys)
    articles = request.source.linked(select(loaded.articles, request.issue.criteria()))
    if not articles:
        findings.append(warning("no-articles", str(request.source.folder),
                                "no article is selected (see --since, --as-of and --tag); "
                                "a send would send nothing"))
        return Report.of(0, findings)
    findings += dead_ends(articles, request.source.url_template)
    findings += duplicate_titles(articles)
    count = 0
    for variant in _variants(request, articles, loaded):
        count += 1
        findings += variant_findings(variant)
    if count == 0:
        findings.append(warning("no-readers", ", ".join(map(str, request.lists)),
                                "no reader on the lists gets any of the selected stories; "
                                "a send would send nothing"))
    return Report.of(count, findings)


def _where(problem: ArticleError) -> str:
    return f"{problem.path}:{problem.line}" if problem.line else str(problem.path)


def _folder_findings(loaded: LoadResult, strict: bool) -> list[Finding]:
    """Unknown front-matter keys and files that do not parse: warnings, or
    with ``strict`` (where a run would stop at them) errors."""
    level, skipped = (error, "") if strict else (warning, "skipped: ")
    return ([level("front-matter", _where(p), p.message) for p in loaded.warnings]
            + [level("article", _where(p), skipped + p.message) for p in loaded.problems])


def bulk_prerequisites(identity: Identity, has_keys: bool) -> list[Finding]:
    """What a send to a list needs before it may go out."""
    found = []
    if not (identity.postal_address or "").strip():
        found.append(error("postal-address", "--postal-address",
                           "a bulk send needs the sender's postal address in every footer "
                           "(CAN-SPAM); set --postal-address, or postal-address in "
                           "digest.toml"))
    if not has_keys:
        found.append(error("unsubscribe-secret", "DIGEST_SECRET",
                           f"a bulk send needs a key to sign its unsubscribe links; {HOW_TO}"))
    return found


def _preference_sets(request: CheckRequest, variants: Variants,
                     loaded: LoadResult) -> dict[tuple[int, ...], tuple[str, ...]]:
    """Each distinct set of stories (article indices) a reader gets, with the
    first preferences that select it."""
    if not request.lists:
        return {variants.chosen(()): ()}
    sets: dict[tuple[int, ...], tuple[str, ...]] = {}
    rows = iter_subscribers(list(request.lists), list_format=request.list_format,
                            known_tags=known_tags(loaded))
    for row in rows:
        reader = row.subscriber
        if reader is None or row.problem is not None or row.suppress is not None:
            continue
        chosen = variants.chosen(reader.tags)
        if chosen:
            sets.setdefault(chosen, reader.tags)
    return sets


def _template_where(render: RenderOptions) -> str:
    name = TEMPLATES["html"]
    if render.templates is not None and (render.templates / name).is_file():
        return str(render.templates / name)
    return f"built-in {name}"


def _variants(request: CheckRequest, articles: list[Article],
              loaded: LoadResult) -> Iterator[Variant]:
    """Each variant as the sample reader with its preferences would get it."""
    issue, render = request.issue, request.render
    variants = Variants(render, issue, articles, sent_at=issue.as_of,
                        campaign=campaign_id(issue.as_of, request.lists, issue.tags))
    where = _template_where(render)
    for chosen, prefs in _preference_sets(request, variants, loaded).items():
        template = variants.template(prefs)
        assert template is not None  # chosen is not empty
        envelope = template.personalize(Subscriber(SAMPLE.email, SAMPLE.name, prefs),
                                        _SAMPLE_RID)
        message = email.message_from_bytes(envelope.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        html = message.get_body(("html",))
        assert html is not None
        label = ("issue" if len(chosen) == len(articles)
                 else "issue for tags " + ", ".join(prefs))
        yield Variant(label, str(message["Subject"]), html.get_content(),
                      tuple(articles[i] for i in chosen), where)
