"""Tests for digest.email.render: templates, escaping, overrides, errors and CSS inlining."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import lxml.html
import pytest

from digest.email.render import (
    TEMPLATES,
    make_environment,
    package_templates,
    render_digest,
    render_template,
    token,
)
from digest.errors import TemplateError

NASTY_TITLE = "Council <script>alert(1)</script> Q&A"


@pytest.fixture(scope="module")
def nasty_digest(make_article, make_digest):
    article = make_article(
        NASTY_TITLE,
        date=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        author='Bo "Tables" & Sons',
        section="Q&A <live>",
        url="https://news.example.org/qa?year=2026&week=48",
        author_bio="Writes <i>things</i> & more.",
    )
    return make_digest([article])


@pytest.fixture(scope="module")
def nasty(nasty_digest):
    return render_digest(make_environment(), nasty_digest)


@pytest.fixture(scope="module")
def page(rendered):
    return lxml.html.document_fromstring(rendered.html)


def write(folder, name, text):
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


# --- escaping ------------------------------------------------------------------


def test_html_escapes_content(nasty):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in nasty.html
    assert "Q&amp;A" in nasty.html
    assert "<script" not in nasty.html
    assert "Q&A" not in nasty.html


def test_html_escapes_every_content_field(nasty):
    doc = lxml.html.document_fromstring(nasty.html)
    # Parsed back, the text is exactly what the article said: escaped once, not twice.
    assert doc.xpath("//h2")[0].text_content() == NASTY_TITLE
    assert doc.xpath("//p[@class='section']")[0].text_content() == "Q&A <live>"
    assert doc.xpath("//p[@class='bio']")[0].text_content() == (
        'Bo "Tables" & Sons: Writes <i>things</i> & more.'
    )
    assert doc.xpath("//h2//a/@href") == ["https://news.example.org/qa?year=2026&week=48"]
    assert not doc.xpath("//script | //i | //live")


def test_preheader_escapes_titles(make_article, make_digest):
    # The preheader names the stories after the lead, so the nasty title goes second.
    digest = make_digest([make_article("Ferry timetable changes"), make_article(NASTY_TITLE)])
    html = render_digest(make_environment(), digest).html
    assert 'overflow:hidden;">Council &lt;script&gt;alert(1)&lt;/script&gt; Q&amp;A' in html


def test_text_and_subject_are_not_escaped(nasty):
    assert NASTY_TITLE in nasty.text
    assert NASTY_TITLE in nasty.subject
    assert 'By Bo "Tables" & Sons | Q&A <live>' in nasty.text
    assert 'About Bo "Tables" & Sons: Writes <i>things</i> & more.' in nasty.text
    for part in (nasty.text, nasty.subject):
        assert "&amp;" not in part
        assert "&lt;" not in part
        assert "&#34;" not in part


def test_subject_is_the_lead_title_and_how_many_more(rendered, sample_digest):
    lead, count = sample_digest.items[0].article.title, len(sample_digest.items)
    assert count > 1
    assert rendered.subject == f"{lead} and {count - 1} more"


def test_a_lone_story_is_the_whole_subject(make_article, make_digest):
    article = make_article("Ferry timetable changes")
    assert render_digest(make_environment(), make_digest([article])).subject == article.title


def test_subject_collapses_line_breaks_from_content(make_article, make_digest):
    article = make_article("Line one\r\nBcc: evil@example.com\n\tand  more")
    subject = render_digest(make_environment(), make_digest([article])).subject
    assert subject == "Line one Bcc: evil@example.com and more"
    assert "\r" not in subject
    assert "\n" not in subject


def test_user_html_template_is_autoescaped(tmp_path, nasty_digest):
    write(tmp_path, "digest.html.j2", "<p>{{ digest.lead.article.title }}</p>\n")
    result = render_digest(make_environment(tmp_path), nasty_digest)
    assert "<p>Council &lt;script&gt;alert(1)&lt;/script&gt; Q&amp;A</p>" in result.html


def test_any_user_template_not_named_txt_is_autoescaped(tmp_path):
    write(tmp_path, "card.html.j2", "<b>{{ title }}</b>")
    write(tmp_path, "card.j2", "<b>{{ title }}</b>")
    write(tmp_path, "card.txt.j2", "<b>{{ title }}</b>")
    env = make_environment(tmp_path)
    context = {"title": "A & <B>"}
    assert render_template(env, "card.html.j2", context) == "<b>A &amp; &lt;B&gt;</b>"
    assert render_template(env, "card.j2", context) == "<b>A &amp; &lt;B&gt;</b>"
    assert render_template(env, "card.txt.j2", context) == "<b>A & <B></b>"


# --- user templates folder -----------------------------------------------------------


def test_user_folder_overrides_one_template_by_name(tmp_path, sample_digest, rendered):
    write(tmp_path, "subject.txt.j2", "{{ digest.name }} this week: {{ digest.items|length }}\n")
    custom = render_digest(make_environment(tmp_path), sample_digest)
    assert custom.subject == "Harbour Weekly this week: 3"
    # The other two still come from the package, unchanged.
    assert custom.html == rendered.html
    assert custom.text == rendered.text


def test_user_override_of_html_template(tmp_path, sample_digest, rendered):
    write(tmp_path, "digest.html.j2", "<html><body><h1>{{ digest.name }}</h1></body></html>\n")
    custom = render_digest(make_environment(tmp_path), sample_digest)
    assert "<h1>Harbour Weekly</h1>" in custom.html
    assert 'class="container"' not in custom.html
    assert custom.subject == rendered.subject
    assert custom.text == rendered.text


def test_user_template_can_extend_from_the_package(tmp_path, sample_digest, rendered):
    """A user file shadows the package one; other package files stay reachable."""
    write(tmp_path, "digest.txt.j2", "PREFIX\n{% include 'subject.txt.j2' %}")
    custom = render_digest(make_environment(tmp_path), sample_digest)
    assert custom.text.rstrip("\n") == "PREFIX\n" + rendered.subject


def test_missing_template_lists_both_searched_folders(tmp_path):
    env = make_environment(tmp_path)
    with pytest.raises(TemplateError) as caught:
        render_template(env, "newsletter.html.j2", {})
    error = caught.value
    assert error.name == "newsletter.html.j2"
    assert error.searched == (tmp_path, package_templates())
    message = str(error)
    assert "'newsletter.html.j2'" in message
    assert "not found" in message
    assert str(tmp_path) in message
    assert str(package_templates()) in message


def test_missing_template_without_user_folder_lists_the_package_folder():
    with pytest.raises(TemplateError) as caught:
        render_template(make_environment(), "nope.txt.j2", {})
    assert caught.value.searched == (package_templates(),)


def test_missing_include_is_a_template_error(tmp_path, sample_digest):
    write(tmp_path, "digest.txt.j2", "{% include 'footer.txt.j2' %}\n")
    with pytest.raises(TemplateError, match="not found"):
        render_digest(make_environment(tmp_path), sample_digest)


def test_package_templates_exist():
    folder = package_templates()
    for name in TEMPLATES.values():
        assert (folder / name).is_file(), name


# --- errors in templates --------------------------------------------------------------


@pytest.mark.parametrize("name", list(TEMPLATES.values()))
@pytest.mark.parametrize(
    ("expression", "missing"),
    [("digest.nmae", "nmae"), ("reader.name", "reader"), ("recipient.phone", "phone")],
)
def test_undefined_variable_is_a_template_error(tmp_path, sample_digest, name, expression, missing):
    path = write(tmp_path, name, f"Line one\nHello {{{{ {expression} }}}}\n")
    with pytest.raises(TemplateError) as caught:
        render_digest(make_environment(tmp_path), sample_digest)
    assert caught.value.name == name
    # A subject is one header for every recipient, so it sees no recipient at all.
    if name == TEMPLATES["subject"] and expression.startswith("recipient"):
        missing = "recipient"
    assert f"'{missing}'" in str(caught.value)
    assert f" at {path}:2; check the variable names" in str(caught.value)


def test_undefined_variable_is_an_error_even_when_only_tested(tmp_path, sample_digest):
    """StrictUndefined: not even ``{% if %}`` on an undefined name passes silently."""
    write(tmp_path, "digest.txt.j2", "{% if digest.lead.article.subtitle %}x{% endif %}\n")
    with pytest.raises(TemplateError, match="subtitle"):
        render_digest(make_environment(tmp_path), sample_digest)


def test_syntax_error_reports_file_and_line(tmp_path, sample_digest):
    path = write(
        tmp_path,
        "digest.txt.j2",
        "{{ recipient.greeting }}\n\n{% for item in digest.items %}\n"
        "{{ item.summary }\n{% endfor %}\n",
    )
    with pytest.raises(TemplateError) as caught:
        render_digest(make_environment(tmp_path), sample_digest)
    message = str(caught.value)
    assert f"{path}:4" in message
    assert "syntax error" in message


def test_syntax_error_in_unclosed_block_reports_a_line(tmp_path, sample_digest):
    path = write(tmp_path, "subject.txt.j2", "{% if digest.items %}\n{{ digest.name }}\n")
    with pytest.raises(TemplateError) as caught:
        render_digest(make_environment(tmp_path), sample_digest)
    assert re.search(re.escape(str(path)) + r":\d+", str(caught.value))


# --- the inlined HTML -----------------------------------------------------------------


def _top_level_css_rules(css):
    """Each top-level rule of a style sheet, from its selector or at-keyword up to
    its closing brace."""
    rules, depth, start = [], 0, 0
    for index, char in enumerate(css):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                rules.append(css[start : index + 1].strip())
                start = index + 1
    assert depth == 0
    assert not css[start:].strip(), "text after the last rule"
    return rules


def test_only_media_rules_stay_in_style(page):
    styles = page.xpath("//style")
    assert len(styles) == 1
    rules = _top_level_css_rules(styles[0].text)
    assert len(rules) == 2
    assert all(rule.startswith("@media") for rule in rules)
    assert re.match(r"@media only screen and \(max-width: ?620px\)", rules[0])
    assert re.match(r"@media \(prefers-color-scheme: ?dark\)", rules[1])


def test_element_styles_are_inlined(page):
    title = page.xpath("//h2[@class='title']")[0]
    assert "font-family:Georgia" in title.get("style").replace(" ", "")
    assert "font-size:22px" in title.get("style").replace(" ", "")
    body = page.xpath("//body")[0]
    assert "background-color:#eef1f4" in body.get("style").replace(" ", "")
    # Every classed element from the style sheet carries its style inline.
    for cls in ("masthead", "dateline", "greeting", "item", "title", "byline", "summary", "footer"):
        elements = page.xpath(f"//*[@class='{cls}']")
        assert elements, cls
        assert all(element.get("style") for element in elements), cls


def test_descendant_selectors_are_inlined_too(page):
    """``.title a`` and ``.more a`` reach the links inside those elements."""
    link = page.xpath("//h2[@class='title']/a")[0]
    assert "text-decoration:none" in link.get("style").replace(" ", "")
    more = page.xpath("//p[@class='more']/a")[0]
    assert "color:#1d5fa8" in more.get("style").replace(" ", "")


def test_hidden_preheader(page, sample_articles):
    body = page.xpath("//body")[0]
    preheader = body[0]
    assert preheader.tag == "div"
    style = preheader.get("style").replace(" ", "")
    assert "display:none" in style
    assert "mso-hide:all" in style
    text = preheader.text_content()
    # The subject names the lead; the preview line names the stories after it.
    assert text.startswith(" · ".join(a.title for a in sample_articles[1:]) + "\u200c")


def test_container_is_fluid_up_to_600px_and_600_in_outlook(page, rendered):
    containers = page.xpath("//table[@class='container']")
    assert len(containers) == 1
    container = containers[0]
    assert container.get("width") == "100%"
    style = container.get("style").replace(" ", "")
    assert "width:100%" in style
    assert "max-width:600px" in style
    # Outlook ignores max-width: its conditional wrapper fixes the width instead.
    assert '<!--[if mso]><table role="presentation" width="600"' in rendered.html
    assert container.get("role") == "presentation"


def test_outlook_conditional_comments_survive_inlining(rendered):
    assert "<!--[if mso]>" in rendered.html
    assert rendered.html.count("<![endif]-->") == 2


def test_doctype_and_charset_survive(rendered):
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in rendered.html


def test_every_item_is_rendered_in_order(page, sample_digest):
    titles = [h2.text_content() for h2 in page.xpath("//h2[@class='title']")]
    assert titles == [item.article.title for item in sample_digest.items]


def test_bio_appears_once_per_author(page, rendered):
    # Amina wrote the first and the third article; her blurb is shown once.
    assert len(page.xpath("//p[@class='bio']")) == 1
    assert rendered.text.count("About Amina Traoré:") == 1


# --- recipient tokens ---------------------------------------------------------------


def test_recipient_tokens_survive_inlining(rendered, page):
    for field in ("greeting", "email", "unsubscribe_url"):
        assert token(field) in rendered.html, field
    assert page.xpath("//td[@class='greeting']")[0].text == token("greeting")


def test_token_in_a_link_is_not_percent_encoded(rendered, page):
    """lxml percent-encodes non-ASCII in href; the unsubscribe token must come
    through intact or the link never gets its recipient's URL."""
    links = page.xpath("//td[@class='footer']//a/@href")
    assert links == [token("unsubscribe_url")]
    assert "%EE%80%80" not in rendered.html


def test_tokens_in_other_url_attributes_survive(tmp_path, sample_digest):
    write(
        tmp_path,
        "digest.html.j2",
        '<html><body><a href="https://x.org/u?e={{ recipient.email }}">x</a>'
        '<img src="https://x.org/open/{{ recipient.email }}.png" alt="{{ recipient.name }}">'
        '<form action="{{ recipient.unsubscribe_url }}"></form></body></html>\n',
    )
    html = render_digest(make_environment(tmp_path), sample_digest).html
    assert f'href="https://x.org/u?e={token("email")}"' in html
    assert f'src="https://x.org/open/{token("email")}.png"' in html
    assert f'alt="{token("name")}"' in html
    assert f'action="{token("unsubscribe_url")}"' in html


def test_text_has_every_recipient_token_it_uses(rendered):
    for field in ("greeting", "email", "unsubscribe_url"):
        assert token(field) in rendered.text


# --- the plain-text part -----------------------------------------------------------


def test_text_items_are_numbered_and_separated_by_a_blank_line(rendered, sample_digest):
    lines = rendered.text.split("\n")
    for number, item in enumerate(sample_digest.items, start=1):
        heading = f"{number}. {item.article.title}"
        index = lines.index(heading)
        assert lines[index - 1] == "", f"no blank line before {heading!r}"


def test_text_item_with_bio_is_followed_by_a_blank_line(make_article, make_digest):
    first = make_article("First", author="Ann", author_bio="Writes about ferries.")
    second = make_article("Second", author="Bo")
    text = render_digest(make_environment(), make_digest([first, second])).text
    assert "About Ann: Writes about ferries.\n\n2. Second\n" in text


def test_text_wraps_long_summaries(make_article, make_digest):
    long = " ".join(["word"] * 60) + "."
    article = make_article("Long", summary=long, author_bio=" ".join(["bio"] * 40))
    text = render_digest(make_environment(), make_digest([article])).text
    assert max(len(line) for line in text.split("\n")) <= 76
