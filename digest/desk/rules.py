"""The checks of ``digest check``, each a pure function: over one rendered
variant (the personalised HTML and subject a reader gets), or over the
issue's selected articles. Each returns its findings; none reads a file."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import lxml.html  # type: ignore[import-untyped]

from digest.desk.contrast import hides, low_contrast
from digest.desk.css import Element, light_styles
from digest.desk.findings import Finding, error, warning
from digest.model import Article, shown

CLIP_BYTES = 102 * 1024  # Gmail clips a message whose HTML is bigger, unsubscribe link and all
NEAR_CLIP_BYTES = 90 * 1024
MAX_SUBJECT = 78  # characters; longer subjects are cut short in most inbox lists
MAX_STYLE_BYTES = 8 * 1024


@dataclass(frozen=True, slots=True)
class Variant:
    """One distinct message, as a reader with these preferences gets it.

    ``label`` says which readers get it; ``template`` names the HTML template,
    for findings about the design rather than the content."""

    label: str
    subject: str
    html: str
    articles: tuple[Article, ...]
    template: str


def parse_html(html: str) -> Element:
    return lxml.html.document_fromstring(html)


def _kilobytes(size: int) -> str:
    return f"{math.ceil(size / 1024 * 10) / 10:.1f} KB"


def size(variant: Variant) -> list[Finding]:
    measured = len(variant.html.encode("utf-8"))
    if measured > CLIP_BYTES:
        return [error("size", variant.label, f"the HTML part is {_kilobytes(measured)}; Gmail "
                      "clips a message over 102 KB and hides its unsubscribe link: select "
                      "fewer stories (--limit) or shorten the summaries (--summary-words)")]
    if measured >= NEAR_CLIP_BYTES:
        return [warning("size", variant.label, f"the HTML part is {_kilobytes(measured)}, "
                        "near the 102 KB at which Gmail clips it and hides the unsubscribe "
                        "link")]
    return []


def _owner(url: str, articles: Sequence[Article], *, image: bool) -> Article | None:
    """The article whose link (or image) this URL is."""
    return next((a for a in articles if (a.image if image else a.url) == url), None)


def images(variant: Variant, root: Element) -> list[Finding]:
    found = []
    for img in root.iter("img"):
        if (img.get("alt") or "").strip():
            continue
        src = img.get("src") or ""
        article = _owner(src, variant.articles, image=True)
        if article is not None:
            found.append(error("images", str(article.source), f"image {shown(src)} has no alt "
                               "text; add image_alt: to the article"))
        else:
            found.append(error("images", variant.template, f"image {shown(src)} has no alt "
                               "text; give the <img> an alt attribute"))
    return found


def http_links(variant: Variant, root: Element) -> list[Finding]:
    found = []
    for element in root.iter("a", "area"):
        href = (element.get("href") or "").strip()
        if not href.lower().startswith("http:"):
            continue
        article = _owner(href, variant.articles, image=False)
        where = str(article.source) if article is not None else variant.template
        found.append(warning("http-link", where, f"link {shown(href)} is not https; "
                             "use an https link"))
    return found


def contrast(variant: Variant, root: Element) -> list[Finding]:
    return [error("contrast", variant.template, item.describe()) for item in low_contrast(root)]


def style(variant: Variant, root: Element) -> list[Finding]:
    measured = sum(len((s.text or "").encode("utf-8")) for s in root.iter("style"))
    if measured <= MAX_STYLE_BYTES:
        return []
    return [warning("style", variant.template, f"the <style> that stays after inlining is "
                    f"{_kilobytes(measured)}; keep it under 8 KB: some clients drop a big "
                    "one whole, and the mobile and dark rules with it")]


def subject(variant: Variant) -> list[Finding]:
    length = len(variant.subject)
    if length <= MAX_SUBJECT:
        return []
    return [warning("subject", variant.label, f"the subject is {length} characters; inboxes "
                    f"cut it after about {MAX_SUBJECT}: shorten it (--subject or "
                    "subject.txt.j2)")]


def _visible(text: str) -> str:
    """Text as a reader sees it: no invisible fillers, spaces collapsed."""
    kept = "".join(ch for ch in text if unicodedata.category(ch)[0] in "LNPS" or ch.isspace())
    return " ".join(kept.split())


def preheader_text(root: Element) -> str | None:
    """The text of the element with class ``preheader``, or else of the first
    hidden element of the body: the inbox's preview line."""
    for element in root.iter():
        if isinstance(element.tag, str) and "preheader" in (element.get("class") or "").split():
            return str(element.text_content())
    body = root.find("body")
    if body is None:
        return None
    styles = light_styles(body)
    for element in body.iter():
        if isinstance(element.tag, str) and hides(element, styles.get(element, {})):
            return str(element.text_content())
    return None


def preheader(variant: Variant, root: Element) -> list[Finding]:
    text = _visible(preheader_text(root) or "")
    seen, said = text.casefold(), _visible(variant.subject).casefold()
    if not seen or not said or not (seen == said or seen in said or said in seen):
        return []
    return [warning("preheader", variant.label, f"the preheader {shown(text)} repeats the "
                    "subject; let it add to it, such as with the other stories' titles")]


def variant_findings(variant: Variant) -> list[Finding]:
    """Every check of one rendered variant."""
    root = parse_html(variant.html)
    return [*size(variant), *images(variant, root), *contrast(variant, root),
            *style(variant, root), *http_links(variant, root), *subject(variant),
            *preheader(variant, root)]


def _title_key(title: str) -> str:
    return " ".join(title.split()).casefold()


def duplicate_titles(articles: Sequence[Article]) -> list[Finding]:
    first: dict[str, Article] = {}
    found = []
    for article in articles:
        earlier = first.setdefault(_title_key(article.title), article)
        if earlier is not article:
            found.append(warning("duplicate-title", str(article.source),
                                 f"same title as {earlier.source}: {shown(article.title)}; "
                                 "retitle one of them, or leave one out"))
    return found


def _missing(article: Article, url_template: str) -> list[str]:
    """The front-matter keys the URL template needs and this article lacks."""
    needs = (("{section}", "section", article.section), ("{lang}", "language", article.language))
    return [key for field, key, value in needs if field in url_template and not value]


def dead_ends(articles: Sequence[Article], url_template: str | None) -> list[Finding]:
    """A story without a link, once the URL template has given what it can."""
    found = []
    for article in articles:
        if article.url:
            continue
        if not url_template:
            own = ("a URL: line after Published:" if article.source.suffix == ".txt"
                   else "url: to its front matter")
            why = f"add {own}, or set url-template"
        elif missing := _missing(article, url_template):
            keys = " and ".join(missing)
            why = f"url-template needs its {keys}; add {keys}: or url: to it"
        else:
            why = "url-template gives it none; add url: to it"
        found.append(error("dead-end", str(article.source),
                           f"the story {shown(article.title)} has no link: {why}"))
    return found
