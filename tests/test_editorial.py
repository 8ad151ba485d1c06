"""The editor shapes the issue (issue 12): featured and weighted stories, the layout's
URL: line, --url-template, --intro, --subject and the default subject, and what a Digest
says about itself (preheader, language, bios). Selection and rendering are called
directly; everything a user types goes through the real CLI (CliRunner), and a send
through the real maildir transport."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.content.articles import load_articles
from digest.content.compose import Digest, DigestItem
from digest.content.intro import read_intro
from digest.content.readers import read_layout
from digest.content.selection import Criteria, select
from digest.content.urls import link
from digest.email.render import make_environment, render_subject
from digest.model import Article
from tests.conftest import ArticleFactory, DigestFactory
from tests.helpers import AS_OF, TESTS, digest_env, parse, run

FIXTURES = TESTS / "fixtures" / "editorial"
END = datetime(2026, 11, 28, tzinfo=UTC)
WEEK = Criteria.build(as_of=END, since=END - timedelta(days=7))
TEMPLATE = "https://news.example.org/{section}/{slug}"


def day(n: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, n, hour, tzinfo=UTC)


def titles(articles: list[Article]) -> list[str]:
    return [a.title for a in articles]


def listed(*args: str) -> list[dict[str, object]]:
    """`digest articles --format json` as of AS_OF, over two weeks, then ARGS."""
    code, out, err = run("articles", "--as-of", AS_OF, "--since", "14d", "--format", "json",
                         *args)
    assert (code, err) == (0, ""), err
    items: list[dict[str, object]] = json.loads(out)
    return items


# --- the editor's order --------------------------------------------------------------


def test_a_featured_story_leads_whatever_its_date(make_article: ArticleFactory) -> None:
    chosen = select([make_article("Panto review", date=day(27)),
                     make_article("Flood barrier vote", date=day(21), featured=True),
                     make_article("Bakery prize", date=day(26))], WEEK)
    assert titles(chosen) == ["Flood barrier vote", "Panto review", "Bakery prize"]


def test_several_featured_stories_go_by_weight_then_newest_first(
        make_article: ArticleFactory) -> None:
    chosen = select([make_article("Plain newest", date=day(27)),
                     make_article("Featured newest", date=day(26), featured=True),
                     make_article("Featured heavy", date=day(25), featured=True, weight=5),
                     make_article("Featured older", date=day(22), featured=True),
                     make_article("Featured light", date=day(21), featured=True, weight=1)],
                    WEEK)
    assert titles(chosen) == ["Featured light", "Featured heavy", "Featured newest",
                              "Featured older", "Plain newest"]


def test_weight_orders_the_rest_lighter_first_and_the_unweighted_newest_first(
        make_article: ArticleFactory) -> None:
    chosen = select([make_article("Unweighted older", date=day(22)),
                     make_article("Ten", date=day(27), weight=10),
                     make_article("Unweighted newer", date=day(26)),
                     make_article("Zero", date=day(21), weight=0),
                     make_article("Minus two", date=day(23), weight=-2)], WEEK)
    # weight 0 is a weight: it goes before every unweighted story.
    assert titles(chosen) == ["Minus two", "Zero", "Ten", "Unweighted newer",
                              "Unweighted older"]


def test_ties_go_by_title_then_path_whatever_order_the_files_came_in(
        make_article: ArticleFactory) -> None:
    same = {"date": day(25), "weight": 3}
    articles = [make_article("Beta", **same), make_article("Alpha", source="b/x.md", **same),
                make_article("Alpha", source="a/x.md", **same)]
    orders = {tuple((a.title, str(a.source)) for a in select(list(p), WEEK))
              for p in itertools.permutations(articles)}
    assert orders == {(("Alpha", "a/x.md"), ("Alpha", "b/x.md"),
                       ("Beta", "articles/beta.md"))}


def test_the_limit_keeps_a_featured_story_over_newer_ones(
        make_article: ArticleFactory) -> None:
    articles = [make_article(f"Newer {n}", date=day(n)) for n in (24, 25, 26, 27)]
    articles.append(make_article("Older lead", date=day(21), featured=True))
    chosen = select(articles, Criteria.build(as_of=END, since=END - timedelta(days=7), limit=2))
    assert titles(chosen) == ["Older lead", "Newer 27"]


@pytest.mark.workdir(articles=FIXTURES / "limit")
def test_limit_through_the_cli_keeps_the_lead_and_never_reaches_outside_the_window(
        workdir: Path) -> None:
    items = listed("--since", "7d", "--limit", "2")
    # The featured story of 2 November is outside the window: featured never widens it.
    assert [i["title"] for i in items] == ["Council Approves the Flood Barrier",
                                          "A Lively Winter Panto"]


# --- bad editorial values --------------------------------------------------------------

BAD_VALUES = {
    "bad-featured-maybe.md": "bad 'featured': expected true or false, got 'maybe'",
    "bad-weight-float.md": "bad 'weight': expected a whole number, got 1.5",
    "bad-weight-nan.md": "bad 'weight': expected a whole number, got 'nan'",
    "bad-weight-huge.md": ("bad 'weight': 10000000 is out of range; use a number between "
                           "-1000000 and 1000000"),
    "bad-image-ftp.md": "bad 'image': 'ftp://x' is not an http(s) URL",
    "bad-image-javascript.md": "bad 'image': 'javascript:alert(1)' is not an http(s) URL",
    "bad-image-http.md": ("bad 'image': 'http://images.example.org/pier.jpg' is not an https "
                          "URL; images must be served over https"),
    # int() would read "1_0" as 10 (and Arabic-Indic digits as numbers too).
    "bad-weight-underscore.md": "bad 'weight': expected a whole number, got '1_0'",
}


@pytest.mark.workdir(articles=FIXTURES / "limit")
@pytest.mark.parametrize(("name", "problem"), BAD_VALUES.items())
def test_a_bad_editorial_value_names_the_file_the_line_and_the_fix(
        workdir: Path, name: str, problem: str) -> None:
    shutil.copy(FIXTURES / name, workdir / "articles")
    code, out, err = run("articles", "--as-of", AS_OF, "--format", "json")
    assert (code, err) == (0, f"warning: skipped articles/{name}:6: {problem}\n")
    assert "Pier lights" not in out
    code, _, err = run("build", "--as-of", AS_OF, "--out", "build", "--strict")
    assert (code, err) == (1, f"Error: articles/{name}:6: {problem}\n")
    assert not (workdir / "build").exists()


def test_a_quoted_weight_is_read_as_ascii_digits(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "weight-quoted.md", tmp_path)
    (article,) = load_articles(tmp_path).articles
    assert article.weight == 7


# --- the layout's URL: line ------------------------------------------------------------


def _layout(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_the_layouts_url_line_is_the_articles_link(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "layout-url.txt", tmp_path)
    (article,) = load_articles(tmp_path).articles
    assert article.url == "https://news.example.org/transport/dawn-ferry"
    assert article.title == "Ferry Operator Adds a Dawn Crossing for Shift Workers"
    assert article.date == datetime(2026, 11, 20, 5, 45, tzinfo=UTC)
    assert article.paragraphs[0].startswith("From next month the island ferry")


def test_a_layout_without_a_url_line_parses_as_it_always_did() -> None:
    plain, linked = read_layout(_layout("layout-plain.txt")), read_layout(_layout("layout-url.txt"))
    assert "url" not in plain.fields
    values = {name: field.value for name, field in plain.fields.items()}
    assert values == {
        "date": "November 20, 2026 at 6:45 am CET", "language": "en", "section": "Transport",
        "title": "Ferry Operator Adds a Dawn Crossing for Shift Workers",
        "author": "Tomasz Wierzbicki", "tags": ["Transport", "Island", "Work"],
        "author_bio": "Tomasz Wierzbicki reports on ports, ferries and the people who run them.",
    }
    assert [b.kind for b in plain.body] == ["paragraph", "heading", "paragraph"]
    assert plain.body[1].text == "Who Benefits"
    # The same file with a URL: line reads the same but for the link.
    assert {n: f.value for n, f in linked.fields.items() if n != "url"} == values
    assert linked.body == plain.body


@pytest.mark.workdir(articles=FIXTURES / "limit")
@pytest.mark.parametrize(("name", "problem"), [
    ("layout-bad-url.txt",
     "bad 'url': 'ftp://news.example.org/transport/dawn-fe…' is not an http(s) URL"),
    ("layout-empty-url.txt", "the 'URL:' line has no address; add one or drop the line"),
])
def test_a_bad_url_line_is_an_error_at_its_line(workdir: Path, name: str, problem: str) -> None:
    shutil.copy(FIXTURES / name, workdir / "articles")
    code, _, err = run("articles", "--as-of", AS_OF, "--format", "json")
    assert (code, err) == (0, f"warning: skipped articles/{name}:8: {problem}\n")
    code, _, err = run("articles", "--as-of", AS_OF, "--strict")
    assert (code, err) == (1, f"Error: articles/{name}:8: {problem}\n")


# --- url-template ----------------------------------------------------------------------

LINKED = {
    "Lifeboat Crew Marks a Century of Launches": "https://elsewhere.example.org/lifeboat-century",
    "Allotment Waiting List Shrinks": None,  # no section: no link, never a half-made one
    "Café Reopens on the Quay": "https://news.example.org/food-drink/cafe-reopens-on-the-quay",
    "Ferry Operator Adds a Dawn Crossing for Shift Workers":
        "https://news.example.org/transport/dawn-ferry",
}


@pytest.mark.workdir(articles=FIXTURES / "linked")
def test_url_template_links_what_has_no_link_from_its_section_and_slug(workdir: Path) -> None:
    own = "Lifeboat Crew Marks a Century of Launches"
    assert {i["title"]: i["url"] for i in listed()} == {**dict.fromkeys(LINKED), own: LINKED[own]}
    assert {i["title"]: i["url"] for i in listed("--url-template", TEMPLATE)} == LINKED


@pytest.mark.workdir(articles=FIXTURES / "linked")
def test_url_template_from_digest_toml(workdir: Path) -> None:
    (workdir / "digest.toml").write_text(f'url-template = "{TEMPLATE}"\n', encoding="utf-8")
    assert {i["title"]: i["url"] for i in listed()} == LINKED


def test_url_template_percent_encodes_each_field(make_article: ArticleFactory) -> None:
    article = make_article("Harbour wall approved", language="pt BR/x?y#z", section="Local")
    assert link(article, "https://news.example.org/{lang}/{year}/{month}/{author}/{slug}") == (
        "https://news.example.org/pt%20BR%2Fx%3Fy%23z/2026/11/amina-traore/"
        "harbour-wall-approved")
    assert link(article, "https://{section}.example.org/{{{day}}}") == (
        "https://local.example.org/{24}")


KNOWN = "known fields: {slug}, {section}, {author}, {year}, {month}, {day}, {lang}"


@pytest.mark.parametrize(("template", "message"), [
    ("https://x.org/{sectoin}/{slug}", f"unknown field {{sectoin}}; {KNOWN}"),
    ("https://x.org/{}", f"unknown field {{}}; {KNOWN}"),
    ("https://x.org/{slug:>10}", "{slug:>10} has a format spec; write {slug}"),
    ("https://x.org/{slug!r}", "{slug!r} has a format spec; write {slug}"),
    ("https://x.org/{slug", "'https://x.org/{slug': expected '}' before end of string; "
                            "write fields as {slug}"),
    ("https://x.org/slug}", "'https://x.org/slug}': Single '}' encountered in format string; "
                            "write fields as {slug}"),
    ("ftp://x.org/{slug}", "'ftp://x.org/{slug}' is not an http(s) URL with a host, e.g. "
                           "https://example.org/{section}/{slug}"),
    ("{section}/{slug}", "'{section}/{slug}' is not an http(s) URL with a host, e.g. "
                         "https://example.org/{section}/{slug}"),
    ("https:///{slug}", "'https:///{slug}' is not an http(s) URL with a host, e.g. "
                        "https://example.org/{section}/{slug}"),
    ("https://[::1/{slug}", "'https://[::1/{slug}' is not an http(s) URL with a host, e.g. "
                            "https://example.org/{section}/{slug}"),
])
def test_a_bad_url_template_is_one_line_naming_the_flag(
        workdir: Path, template: str, message: str) -> None:
    code, out, err = run("articles", "--as-of", AS_OF, "--url-template", template)
    assert (code, out, err) == (1, "", f"Error: --url-template: {message}\n")


# --- the editor's note -----------------------------------------------------------------


@pytest.mark.workdir(FIXTURES / "note.md", articles=FIXTURES / "limit")
def test_the_note_from_digest_toml_shows_in_both_parts(workdir: Path) -> None:
    (workdir / "digest.toml").write_text('intro = "note.md"\n', encoding="utf-8")
    code, _, err = run("build", "--as-of", AS_OF, "--out", "build")
    assert (code, err) == (0, "")
    # Whitespace collapsed: the text part wraps prose at 76 columns wherever it likes.
    text = " ".join((workdir / "build" / "digest.txt").read_text(encoding="utf-8").split())
    html = " ".join((workdir / "build" / "digest.html").read_text(encoding="utf-8").split())
    assert "This week the **flood barrier** vote leads the issue." in text
    assert "This week the <strong>flood barrier</strong> vote leads the issue." in html
    assert '<a href="https://news.example.org/letters"' in html
    # The nested list stays nested: the note's indentation survives the reading.
    assert html.count("<ul") == 2
    assert text.index("flood barrier") < text.index("Council Approves the Flood Barrier")


def test_the_note_keeps_its_markdown_structure_and_loses_control_characters() -> None:
    # A BOM, a BEL, CRLF line ends, a run of blank lines, a private-use character (the
    # recipient placeholders' range), a nested list and an indented code block.
    assert read_intro(FIXTURES / "note-control.md") == (
        "# Hello\n\n- one\n    - two words\n\n      code")


def _big_note(workdir: Path) -> str:
    (workdir / "big.md").write_bytes(b"word " * (13 << 10))  # 65 KiB
    return "big.md"


@pytest.mark.workdir(FIXTURES / "note-latin1.md", FIXTURES / "note-empty.md")
@pytest.mark.parametrize(("make", "message"), [
    (lambda w: "missing.md", "missing.md does not exist; point it at a Markdown file"),
    (lambda w: (w / "notes").mkdir() or "notes",
     "notes is not a regular file but a folder; point it at a Markdown file"),
    (lambda w: "note-latin1.md", "note-latin1.md is not UTF-8 text; re-save it as UTF-8"),
    (lambda w: "note-empty.md", "note-empty.md is empty; write the note, or drop --intro"),
    (_big_note, "big.md is larger than 64 KiB; a note is a paragraph or three"),
], ids=["missing", "folder", "not-utf8", "empty", "too-big"])
def test_a_bad_note_is_one_line_naming_the_flag(workdir: Path, make: Callable[[Path], str],
                                                message: str) -> None:
    name = make(workdir)
    code, out, err = run("build", "--as-of", AS_OF, "--out", "build", "--intro", name)
    assert (code, out, err) == (1, "", f"Error: --intro: {message}\n")
    assert not (workdir / "build").exists()


def test_a_named_pipe_as_the_note_is_refused_without_waiting_for_a_writer(
        workdir: Path) -> None:
    os.mkfifo(workdir / "note.md")
    # A real process, so a regression that opens the pipe and blocks fails on the
    # timeout instead of hanging the suite.
    done = subprocess.run([sys.executable, "-m", "digest", "build", "--as-of", AS_OF,
                           "--intro", "note.md"], cwd=workdir, env=digest_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("Error: --intro: note.md is not a regular file but a named pipe; "
                           "point it at a Markdown file\n")


# --- the subject -----------------------------------------------------------------------


def _subject(workdir: Path) -> str:
    message = parse((workdir / "build" / "sample.eml").read_bytes())
    return str(message["Subject"])


@pytest.mark.workdir(articles=FIXTURES / "limit")
def test_a_subject_template_sees_name_count_lead_and_date(workdir: Path) -> None:
    code, _, err = run("build", "--as-of", AS_OF, "--out", "build", "--name", "Harbour Weekly",
                       "--subject", "{{ name }} – {{ count }} stories")
    assert (code, err) == (0, "")
    assert _subject(workdir) == "Harbour Weekly – 4 stories"
    code, _, err = run("build", "--as-of", AS_OF, "--out", "build",
                       "--subject", "{{ date }}: {{ lead.title }}")
    assert (code, err) == (0, "")
    assert _subject(workdir) == "November 28, 2026: Council Approves the Flood Barrier"


@pytest.mark.workdir(articles=FIXTURES / "limit")
def test_the_default_subject_is_the_lead_and_how_many_more(workdir: Path) -> None:
    assert run("build", "--as-of", AS_OF, "--out", "build")[0] == 0
    assert _subject(workdir) == "Council Approves the Flood Barrier and 3 more"


@pytest.mark.parametrize(("template", "message"), [
    ("{{ lead.titel }}", "'digest.model.Article object' has no attribute 'titel'; it may use "
                         "lead, count, name and date"),
    ("{% if %}", "syntax error: Expected an expression, got 'end of statement block'"),
    ("{{ '  ' }}", "renders an empty subject; use e.g. '{{ lead.title }}'"),
])
def test_a_bad_subject_template_is_one_line_naming_the_flag(
        workdir: Path, template: str, message: str) -> None:
    code, out, err = run("build", "--as-of", AS_OF, "--out", "build", "--subject", template)
    assert (code, out, err) == (1, "", f"Error: template '--subject': {message}\n")


@pytest.mark.workdir(FIXTURES / "title-with-crlf.md", articles=FIXTURES / "linked",
                     rename={"title-with-crlf.md": "articles/title-with-crlf.md"})
@pytest.mark.parametrize("subject", [None, "{{ lead.title }}\r\nBcc: {{ name }}"])
def test_no_line_break_from_a_title_reaches_the_subject_header(
        workdir: Path, subject: str | None) -> None:
    args = ["--subject", subject] if subject else []
    code, _, err = run("build", "--as-of", AS_OF, "--out", "build", *args)
    assert (code, err) == (0, "")
    data = (workdir / "build" / "sample.eml").read_bytes()
    head = data.partition(b"\r\n\r\n")[0]
    names = [line.split(b":")[0] for line in head.split(b"\r\n") if line[:1] not in b" \t"]
    assert b"Bcc" not in names and b"X-Extra" not in names
    assert names.count(b"Subject") == 1
    assert _subject(workdir).startswith(
        "Tide Tables Revised Bcc: victim@example.org X-Extra: 1")


def test_subjects_are_plain_text_not_html(make_digest: DigestFactory,
                                          make_article: ArticleFactory) -> None:
    digest = make_digest([make_article("Q&A: <the budget>")])
    env = make_environment()
    assert render_subject(env, digest, None) == "Q&A: <the budget>"
    assert render_subject(env, digest, "{{ lead.title }}!") == "Q&A: <the budget>!"


def test_the_default_subject_with_one_and_with_three_stories(
        sample_digest: Digest, make_digest: DigestFactory,
        sample_articles: tuple[Article, ...]) -> None:
    env = make_environment()
    assert render_subject(env, sample_digest, None) == "Harbour wall approved and 2 more"
    assert render_subject(env, make_digest(sample_articles[1:2]), None) == (
        "Ferry timetable changes")


# --- what a Digest says about itself ---------------------------------------------------


def test_the_preheader_names_the_stories_the_subject_does_not(
        sample_digest: Digest, make_digest: DigestFactory,
        sample_articles: tuple[Article, ...]) -> None:
    assert sample_digest.preheader == "Ferry timetable changes · Q&A: what the new budget means"
    alone = make_digest(sample_articles[1:2])
    assert alone.preheader == "Winter sailings start on 1 December, with fewer evening crossings."
    assert make_digest([]).preheader == ""


@pytest.mark.parametrize(("languages", "expected"), [
    (["English", "fr", "English", "English"], "fr"),
    (["fr", "en", "EN", None], "en"),
    (["de", "en_GB", "en-gb"], "en-GB"),
    (["fr", "de"], "fr"),  # a tie goes to the lead
    (["English", None, "<script>"], "en"),
])
def test_the_language_is_the_commonest_valid_tag(
        make_article: ArticleFactory, make_digest: DigestFactory,
        languages: list[str | None], expected: str) -> None:
    articles = [make_article(f"Story {n}", date=day(27 - n), language=lang)
                for n, lang in enumerate(languages)]
    assert make_digest(articles).language == expected


@pytest.mark.parametrize(("author", "bio", "names"), [
    ("Amina Traoré", "Amina Traoré covers the council.", True),
    ("Amina Traoré", "AMINA TRAORÉ covers the council.", True),
    ("Ann Lee", "Ann Lee's beat is the harbour.", True),
    ("Ann Lee", "Ann Leeds is a pseudonym.", False),
    ("Amina Traoré", "She covers the council.", False),
    ("Amina Traoré", None, False),
])
def test_bio_names_author_only_when_the_blurb_opens_with_the_whole_name(
        make_article: ArticleFactory, author: str, bio: str | None, names: bool) -> None:
    item = DigestItem(make_article(author=author), "A summary.", bio)
    assert item.bio_names_author is names


# --- a send that resumes a campaign ------------------------------------------------------


@pytest.mark.workdir(FIXTURES / "one-reader.csv", FIXTURES / "note.md",
                     FIXTURES / "note-second.md", articles=FIXTURES / "linked",
                     rename={"one-reader.csv": "list.csv"})
def test_a_resumed_send_keeps_template_links_and_uses_the_note_as_it_reads_now(
        workdir: Path) -> None:
    args = ("send", "--as-of", AS_OF, "--since", "14d", "--list", "list.csv",
            "--transport", "maildir:box", "--url-template", TEMPLATE)
    code, _, err = run(*args, "--intro", "note.md")
    assert (code, err) == (0, "")
    shutil.copy(FIXTURES / "two-readers.csv", workdir / "list.csv")
    code, out, err = run(*args, "--intro", "note-second.md")
    assert (code, err) == (0, "")
    assert out.startswith("Resuming campaign 2026-W48-list-all, begun ")
    assert out.endswith("Sent 1 messages via maildir:box (campaign 2026-W48-list-all; "
                        "now 2 sent).\n")
    texts = {}
    for path in (workdir / "box" / "new").iterdir():
        message = parse(path.read_bytes())
        body = message.get_body(("plain",))
        assert body is not None
        texts[message["To"].addresses[0].addr_spec] = " ".join(body.get_content().split())
    first, second = texts["first@example.org"], texts["second@example.org"]
    assert "Tell us what you think" in first and "A correction" not in first
    assert "A correction: the barrier vote was unanimous" in second
    assert "Tell us what you think" not in second
    for text in (first, second):
        assert "https://news.example.org/transport/dawn-ferry" in text
        assert "https://news.example.org/food-drink/cafe-reopens-on-the-quay" in text
