"""The package's email templates: what each part shows and in what order (masthead,
note, "In this issue", the lead story, the footer), a preheader hidden without <style>,
HTML that reads with every <style> block removed, and both palettes at WCAG AA."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import lxml.html
import pytest
from lxml.html import HtmlElement

from digest.content.compose import Digest, compose
from digest.email.render import Rendered, make_environment, render_digest, token
from digest.model import Article
from tests.conftest import AS_OF, build_article

ADDRESS = "Harbour Weekly, 12 Quay Street, Harbourtown HT1 4QA"
NOTE = ("Read **this** and [that](https://news.example.org/x) first.\n\n"
        "<script>alert(1)</script>")
MASTHEAD = "HARBOUR WEEKLY\nNovember 28, 2026\n\n"


def story(n: int, **fields: Any) -> Article:
    return build_article(f"Story number {n}", date=datetime(2026, 11, 27 - n, 9, tzinfo=UTC),
                         author=f"Writer {n}", **fields)


LEAD = story(0, featured=True, section="City Hall", url="https://news.example.org/lead",
             image="https://news.example.org/img/lead.jpg",
             image_alt="Councillors voting in the chamber")
STORIES = (LEAD,
           story(1, section="Health", url="https://news.example.org/one",
                 author_bio="Writer 1 covers health."),
           story(2, author_bio="Covers the coast."),
           story(3),
           story(4, url="https://news.example.org/four"))


def issue(articles: Sequence[Article] = STORIES, **frame: Any) -> Rendered:
    """The rendered issue of ARTICLES; FRAME sets the Digest's other fields."""
    digest = compose(list(articles), Digest("Harbour Weekly", AS_OF, **frame), 40)
    return render_digest(make_environment(), digest)


@pytest.fixture(scope="module")
def full() -> Rendered:
    """An issue with everything: a featured lead with an image, five stories, a note,
    a postal address and a site."""
    return issue(intro=NOTE, postal_address=ADDRESS, site_url="https://news.example.org")


def html_of(rendered: Rendered) -> HtmlElement:
    return lxml.html.document_fromstring(rendered.html)


def styles(element: HtmlElement) -> dict[str, str]:
    """An element's inline declarations, by property."""
    pairs = (d.split(":", 1) for d in element.get("style", "").split(";") if ":" in d)
    return {k.strip().lower(): v.strip() for k, v in pairs}


# --- the plain-text part ---------------------------------------------------------------


def test_text_opens_with_the_masthead_then_the_greeting(full: Rendered) -> None:
    assert full.text.startswith(MASTHEAD + token("greeting") + "\n\n")


def test_a_bio_that_names_its_author_is_shown_without_the_name_again() -> None:
    rendered = issue([story(1, author_bio="Writer 1 has covered ferries since 2019."),
                      story(2, author_bio="Covers the coast.")])
    bios = [p.text_content() for p in html_of(rendered).xpath("//p[@class='bio']")]
    assert bios == ["Writer 1 has covered ferries since 2019.", "Writer 2: Covers the coast."]
    assert "\n\nWriter 1 has covered ferries since 2019.\n" in rendered.text
    assert "About Writer 1" not in rendered.text
    assert "About Writer 2: Covers the coast." in rendered.text


def test_html_lang_is_the_articles_language() -> None:
    rendered = issue([story(1, language="fr"), story(2, language="fr"), story(3)])
    assert html_of(rendered).get("lang") == "fr"


# --- the editor's note -------------------------------------------------------------------


def test_note_is_markdown_in_html_with_raw_html_escaped(full: Rendered) -> None:
    (note,) = html_of(full).xpath("//td[@class='note']")
    assert "background-color" in styles(note)
    assert note.xpath(".//strong/text()") == ["this"]
    assert note.xpath(".//a/@href") == ["https://news.example.org/x"]
    assert "<script>alert(1)</script>" in note.text_content()  # shown as text
    assert "<script" not in full.html
    # Above the stories.
    assert full.html.index('class="note"') < full.html.index('class="item')


def test_note_is_its_markdown_source_in_text(full: Rendered) -> None:
    text = full.text
    expected = ("Read **this** and [that](https://news.example.org/x) first.\n\n"
                "<script>alert(1)</script>\n")
    assert text.index(token("greeting")) < text.index(expected) < text.index("1. Story")


def test_note_in_text_is_rewrapped_to_76_keeping_lists_and_long_links() -> None:
    link = "https://news.example.org/" + "a" * 80
    note = ("A first line\nthat goes on. " + "Word " * 30 + "\n\n- one\n- two\n\n" + link)
    lines = issue([story(1)], intro=note).text.split("\n")
    assert lines[5] == "A first line that goes on. " + "Word " * 9 + "Word"
    assert all(len(line) <= 76 for line in lines if line != link)
    assert "- one" in lines and "- two" in lines and link in lines


# --- In this issue -------------------------------------------------------------------------


def test_in_this_issue_lists_four_or_more_stories_but_not_three() -> None:
    four, three = issue(STORIES[1:5]), issue(STORIES[1:4])
    (toc,) = html_of(four).xpath("//td[@class='toc']")
    assert [li.text_content() for li in toc.xpath(".//li")] == [a.title for a in STORIES[1:5]]
    assert toc.xpath(".//a/@href") == ["https://news.example.org/one",
                                       "https://news.example.org/four"]
    listed = "\n".join(f"  {n}. {a.title}" for n, a in enumerate(STORIES[1:5], start=1))
    assert f"IN THIS ISSUE\n{listed}\n\n1. Story number 1\n" in four.text
    assert not html_of(three).xpath("//td[@class='toc']")
    assert "IN THIS ISSUE" not in three.text


# --- the lead story ------------------------------------------------------------------------


def test_lead_story_has_a_label_and_a_sized_image_with_alt(full: Rendered) -> None:
    (lead,) = html_of(full).xpath("//td[@class='item lead']")
    assert lead.xpath(".//span[@class='lead-label']/text()") == ["Lead story"]
    (img,) = lead.xpath(".//img")
    assert (img.get("src"), img.get("alt")) == ("https://news.example.org/img/lead.jpg",
                                                "Councillors voting in the chamber")
    assert (img.get("width"), img.get("height"), img.get("border")) == ("536", "300", "0")
    assert {k: styles(img)[k] for k in ("width", "max-width", "height", "display")} == {
        "width": "100%", "max-width": "536px", "height": "auto", "display": "block"}
    assert "LEAD STORY\n1. Story number 0\n" in full.text
    assert len(html_of(full).xpath("//img")) == 1  # only the lead has one


# --- footer and preheader ---------------------------------------------------------------------


def test_footer_shows_the_postal_address_in_both_parts(full: Rendered) -> None:
    (footer,) = html_of(full).xpath("//td[@class='footer']")
    assert ADDRESS in footer.text_content()
    assert f"\n{ADDRESS}\n" in full.text.split("\n--\n")[1]


def test_preheader_is_the_following_titles_hidden_inline(full: Rendered) -> None:
    body = html_of(full).body
    preheader = body[0]
    assert preheader.get("class") == "preheader"
    text = preheader.text_content()
    titles = " · ".join(a.title for a in STORIES[1:])
    assert text.startswith(titles + "\u200c\u00a0")
    assert text[len(titles):] == "\u200c\u00a0" * (len(text[len(titles):]) // 2)
    assert LEAD.title not in text
    style = styles(preheader)
    assert {k: style.get(k) for k in ("display", "mso-hide", "visibility", "font-size",
                                      "line-height", "max-height", "max-width", "overflow")} == {
        "display": "none", "mso-hide": "all", "visibility": "hidden", "font-size": "0",
        "line-height": "0", "max-height": "0", "max-width": "0", "overflow": "hidden"}
    assert style["color"] == styles(body)["background-color"]


# --- without <style>, and contrast -------------------------------------------------------------


def without_style(rendered: Rendered) -> HtmlElement:
    page = html_of(rendered)
    for style in page.xpath("//style"):
        style.drop_tree()
    return page


def text_elements(page: HtmlElement) -> Iterator[HtmlElement]:
    """Every element of the body with text of its own that shows (not display:none)."""
    for element in page.body.iter():
        if not isinstance(element.tag, str):
            continue
        if any(styles(e).get("display") == "none" for e in (element, *element.iterancestors())):
            continue
        if any((t or "").strip() for t in [element.text, *(c.tail for c in element)]):
            yield element


def inherited(element: HtmlElement, prop: str, dark: dict[HtmlElement, dict[str, str]]
              ) -> str | None:
    """The value of PROP that shows on ELEMENT: its own or its nearest ancestor's, a
    dark-mode rule beating an inline style (the rules are !important)."""
    for node in (element, *element.iterancestors()):
        value = dark.get(node, {}).get(prop) or styles(node).get(prop)
        if prop == "background-color":
            value = value or node.get("bgcolor")
        if value:
            return value
    return None


def test_html_without_style_keeps_the_layout(full: Rendered) -> None:
    page = without_style(full)
    assert not page.xpath("//style")
    (container,) = page.xpath("//table[@class='container']")
    # Fluid up to 600px: without <style> there is no @media rule to narrow it on a phone.
    assert {k: styles(container).get(k) for k in ("width", "max-width")} == {
        "width": "100%", "max-width": "600px"}
    assert styles(container)["font-family"].startswith("Arial")
    assert styles(container)["background-color"] in ("#fff", "#ffffff")
    for cls in ("masthead", "greeting", "note-cell", "toc", "item", "item lead", "footer"):
        (cell, *_) = page.xpath(f"//td[@class='{cls}']")
        assert "padding" in styles(cell), cls
    for element in text_elements(page):
        assert inherited(element, "font-family", {}), element.text_content()[:40]
        assert inherited(element, "color", {}), element.text_content()[:40]
    for link in page.xpath("//body//a"):
        assert re.fullmatch(r"#[0-9a-f]{3,6}", styles(link).get("color", "")), link.get("href")


def dark_rules(page: HtmlElement) -> dict[HtmlElement, dict[str, str]]:
    """What the prefers-color-scheme: dark block sets on each element, in source order."""
    css = "".join(page.xpath("//style/text()"))
    start = css.index("{", css.index("@media (prefers-color-scheme: dark)"))
    depth, end = 0, start
    for end in range(start, len(css)):
        depth += {"{": 1, "}": -1}.get(css[end], 0)
        if depth == 0:
            break
    found: dict[HtmlElement, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css[start + 1:end]):
        declarations = {k.strip(): v.replace("!important", "").strip() for k, v in
                        (d.split(":", 1) for d in body.split(";") if ":" in d)}
        for selector in selectors.split(","):
            for element in page.cssselect(selector.strip()):
                found.setdefault(element, {}).update(declarations)
    assert found, "no dark-mode rules"
    return found


def luminance(colour: str) -> float:
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    channels = [int(hex_digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_text_colour_reaches_wcag_aa_in_both_palettes(full: Rendered) -> None:
    page = html_of(full)
    pairs = {}
    for scheme, dark in (("light", {}), ("dark", dark_rules(page))):
        for element in text_elements(page):
            colour = inherited(element, "color", dark)
            background = inherited(element, "background-color", dark)
            assert colour and background, element.text_content()[:40]
            pairs[(scheme, colour, background)] = element.text_content().strip()[:30]
    weak = {f"{scheme}: {fg} on {bg} ({text!r})": round(contrast(fg, bg), 2)
            for (scheme, fg, bg), text in pairs.items() if contrast(fg, bg) < 4.5}
    assert not weak
    # Every kind of text in each palette: labels, titles, links, summaries, note, bio.
    assert len(pairs) >= 16
