"""`digest archive`: the web archive built from real sends.

Three weekly issues are sent into a Maildir through the CLI (tests/fixtures/archive: a
Markdown and a layout article without a URL, others with one), then archived. Every page
is parsed by lxml's strict HTML parser and the feed by feedparser; every link inside the
archive, and every link a sent message has into it, must land on a file of the tree."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import pytest
from lxml import etree, html

from digest.delivery.issues import Definition
from digest.state.records import CampaignRecord, Entry, Update, stamp
from digest.state.store import open_store
from tests.helpers import TEST_SECRET, TESTS, run

FIXTURES = TESTS / "fixtures" / "archive"
ARCHIVE_URL = "https://news.example.org/archive"
SITE_URL = "https://news.example.org"
NAME = "Harbour Weekly"
WEEKS = ("2026-11-14", "2026-11-21", "2026-11-28")
ISSUES = [f"issues/2026-w{week}-subscribers-all.html" for week in (48, 47, 46)]
ARTICLE_PAGES = [f"articles/{slug}.html"
                 for slug in ("bridge-repairs", "harbour-ferry", "market-hall", "winter-markets")]
TREE = sorted([*ARTICLE_PAGES, *ISSUES, "index.html", "feed.xml", "sitemap.xml"])
RENDER = ("--archive-url", ARCHIVE_URL, "--site-url", SITE_URL, "--name", NAME)


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working folder (the current one) after three weekly sends, a week apart, of the
    fixture articles to the fixture list, with signed links and --archive-url."""
    root = tmp_path_factory.mktemp("sent")
    shutil.copytree(FIXTURES / "articles", root / "articles")
    shutil.copy(FIXTURES / "subscribers.csv", root / "subscribers.csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for key in [k for k in os.environ if k.startswith("DIGEST_")]:
            patch.delenv(key)
        patch.setenv("DIGEST_SECRET", TEST_SECRET)
        for as_of in WEEKS:
            code, _, err = run("send", "--as-of", as_of, "--list", "subscribers.csv",
                               "--quiet", *RENDER)
            assert code == 0, err
        yield root


@pytest.fixture(scope="module")
def built(sent: Path) -> Path:
    code, out, err = run("archive", "--out", "public", *RENDER)
    assert (code, err) == (0, "")
    assert out == "Archive: 3 issues, 4 articles; 10 written, 0 unchanged, 0 removed in public\n"
    return sent / "public"


def archive(out: Path, *extra: str) -> tuple[int, str, str]:
    return run("archive", "--out", str(out), *RENDER, *extra)


def tree(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` but the manifest, by its path there."""
    return {path.relative_to(out).as_posix(): path.read_bytes()
            for path in sorted(out.rglob("*")) if path.is_file()
            and path.name != ".digest-archive.json"}


def stamps(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file: a rewrite through a rename changes both."""
    return {name: (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns)
            for name in tree(out)}


def parse_page(path: Path) -> etree._Element:
    """The page parsed without recovery: a tag left open or closed twice fails."""
    return etree.fromstring(path.read_bytes(), etree.HTMLParser(recover=False))


def words(element: etree._Element) -> str:
    """The element's text, with whitespace runs as one space."""
    return " ".join("".join(element.itertext()).split())


def resolves(out: Path, page: str, link: str) -> bool | None:
    """Whether ``link`` on ``page`` lands on a file of the tree; None for a link elsewhere."""
    if link.startswith(ARCHIVE_URL + "/"):
        target = link[len(ARCHIVE_URL) + 1 :]
    elif urlsplit(link).scheme or link.startswith("#"):
        return None
    else:
        target = urljoin(page, link)
    return (out / urlsplit(target).path).is_file()


# --- what it writes ----------------------------------------------------------------


def test_every_issue_and_every_story_without_a_link_gets_a_page(built: Path) -> None:
    assert sorted(tree(built)) == TREE


def test_every_page_parses_and_every_internal_link_resolves(built: Path) -> None:
    checked = 0
    for page in [name for name in TREE if name.endswith(".html")]:
        document = parse_page(built / page)
        assert document.get("lang") == "en"
        for element in document.iter("a", "link", "img", "script"):
            link = element.get("href") or element.get("src")
            assert link is not None, f"{page}: a <{element.tag}> without a link"
            found = resolves(built, page, link)
            assert found is not False, f"{page}: {link} leads to no file"
            checked += found is True
    for document in (etree.fromstring((built / "feed.xml").read_bytes()),
                     etree.fromstring((built / "sitemap.xml").read_bytes())):
        for element in document.iter("{*}link", "{*}loc", "{*}id"):
            link = element.get("href") or element.text
            if link != ARCHIVE_URL + "/":  # the feed's own id
                assert resolves(built, "", link), link
    assert checked > 30


def test_the_sent_messages_link_into_the_archive(sent: Path, built: Path) -> None:
    """A story without a URL links to its archive page in the email, and that page exists."""
    links = set()
    for path in (sent / "outbox" / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        part = message.get_body(("html",))
        document = html.fromstring(part.get_content())  # type: ignore[union-attr]
        links |= {a.get("href") for a in document.iter("a")
                  if a.get("href", "").startswith(ARCHIVE_URL)}
    assert {f"{ARCHIVE_URL}/{page}" for page in ARTICLE_PAGES} <= links
    assert all(resolves(built, "", link) for link in links), links


def test_the_feed_is_atom_with_stable_ids_and_the_issues_dates(built: Path,
                                                                tmp_path: Path) -> None:
    feed = feedparser.parse((built / "feed.xml").read_bytes())
    assert (feed.bozo, feed.version) == (0, "atom10")
    ids = [entry.id for entry in feed.entries]
    assert ids == [f"{ARCHIVE_URL}/{page}" for page in ISSUES]
    assert [entry.updated for entry in feed.entries] == [
        f"{day}T00:00:00Z" for day in reversed(WEEKS)]
    assert feed.feed.updated == "2026-11-28T00:00:00Z"
    assert feed.entries[0].title == "Winter Markets Light Up the Old Town"
    assert archive(tmp_path / "again")[0] == 0
    again = feedparser.parse((tmp_path / "again" / "feed.xml").read_bytes())
    assert [entry.id for entry in again.entries] == ids


def test_an_issue_page_is_the_email_for_everyone(built: Path) -> None:
    page = (built / ISSUES[2]).read_text(encoding="utf-8")
    document = parse_page(built / ISSUES[2])
    text = words(document)
    for personal in ("Unsubscribe", "Manage your preferences", "You receive",
                     "View this issue in your browser", "\ue000"):
        assert personal not in page
    assert f"Subscribe: {SITE_URL}" in text
    links = {a.text: a.get("href") for a in document.iter("a")}
    assert links["Atom feed"] == "../feed.xml"
    assert links["All issues"] == "../index.html"
    assert links["Night Ferry Returns to the Harbour Route"] == "../articles/harbour-ferry.html"
    assert links["New Tide Tables Printed for 2027"] == "https://example.org/news/tide-tables"
    footer = next(td for td in document.iter("td") if td.get("class") == "footer")
    assert "border-top" in footer.get("style", "")  # the CSS is inlined, as in the email


def test_article_pages_show_the_whole_story(built: Path) -> None:
    markdown = parse_page(built / "articles" / "harbour-ferry.html")
    text = words(markdown)
    assert markdown.findtext(".//h1") == "Night Ferry Returns to the Harbour Route"
    assert [h.text for h in markdown.iter("h2")] == ["What changes"]
    assert "By Ines Carvalho · November 10, 2026" in text
    assert "Ines Carvalho writes about transport and the environment." in text
    assert "The last sailing waits for the late train on Fridays." in text
    # Raw HTML in the Markdown is text on the page, never markup.
    assert list(markdown.iter("script")) == []
    assert '<script>alert("archive")</script>' in text
    issue = next(a for a in markdown.iter("a") if a.text == "Harbour Weekly, November 14, 2026")
    assert issue.get("href") == "../" + ISSUES[2]
    layout = parse_page(built / "articles" / "market-hall.html")
    assert [h.text for h in layout.iter("h2")] == ["Who Takes Part"]
    assert [p.text for p in layout.iter("p")][2:4] == [
        "The covered market hall will open on Sundays from December, the city's markets "
        "office said on Wednesday. Traders voted for the change last month.",
        "Forty of the hall's sixty stalls have signed up so far. The rest will decide by "
        "the end of the month."]
    assert layout.findtext(".//p[@class='label']") == "Business"


def test_no_reader_appears_anywhere_in_the_archive(sent: Path, built: Path) -> None:
    rows = (FIXTURES / "subscribers.csv").read_text(encoding="utf-8").splitlines()[1:]
    readers = [value for row in rows for value in row.split(",")[:2]]
    with closing(sqlite3.connect(sent / ".digest" / "journal.sqlite3")) as db:
        rids = [rid for (rid,) in db.execute("SELECT rid FROM deliveries")]
    assert len(rids) == len(rows) * len(WEEKS)  # one per reader and issue, skipped or not
    secrets = [*readers, *rids, TEST_SECRET, "PLACEHOLDER", "\ue000", "\ue001"]
    for path in built.rglob("*"):
        if path.is_file():
            data = path.read_text(encoding="utf-8")
            found = [secret for secret in secrets if secret in data]
            assert not found, f"{path} holds {found}"


# --- rebuilds ----------------------------------------------------------------------


def test_a_build_is_byte_identical_in_a_fresh_folder(built: Path, tmp_path: Path) -> None:
    code, out, _ = archive(tmp_path / "fresh")
    assert code == 0
    assert out.endswith("10 written, 0 unchanged, 0 removed in " + str(tmp_path / "fresh") + "\n")
    assert tree(tmp_path / "fresh") == tree(built)


def test_a_rebuild_writes_only_what_changed(sent: Path, tmp_path: Path) -> None:
    articles = shutil.copytree(sent / "articles", tmp_path / "articles")
    out = tmp_path / "public"
    flags = ("--articles", str(articles))
    assert archive(out, *flags)[0] == 0
    before = stamps(out)
    assert archive(out, *flags) == (0, f"Archive: 3 issues, 4 articles; 0 written, 10 "
                                       f"unchanged, 0 removed in {out}\n", "")
    assert stamps(out) == before
    ferry = articles / "harbour-ferry.md"
    ferry.write_text(ferry.read_text(encoding="utf-8").replace("late train", "last train"),
                     encoding="utf-8")
    assert archive(out, *flags)[1].endswith("; 1 written, 9 unchanged, 0 removed in "
                                             f"{out}\n")
    after = stamps(out)
    assert [name for name in TREE if after[name] != before[name]] == [
        "articles/harbour-ferry.html"]


def test_a_gone_article_leaves_its_issue_and_its_page_is_removed(sent: Path,
                                                                  tmp_path: Path) -> None:
    articles = shutil.copytree(sent / "articles", tmp_path / "articles")
    out = tmp_path / "public"
    assert archive(out, "--articles", str(articles))[0] == 0
    (out / "CNAME").write_text("news.example.org\n", encoding="utf-8")  # not the archive's
    before = stamps(out)
    (articles / "market-hall.txt").unlink()
    code, stdout, err = archive(out, "--articles", str(articles))
    assert code == 0
    assert err == (f"warning: issue 2026-W46-subscribers-all pinned {articles}/market-hall.txt,"
                   " which is gone or no longer parses; its page leaves the story out until "
                   "the file is restored\n")
    assert stdout == (f"Archive: 3 issues, 3 articles; 4 written, 5 unchanged, 1 removed in "
                      f"{out}\n")
    after = stamps(out)
    assert "articles/market-hall.html" not in after
    assert sorted(n for n in after if after[n] != before[n]) == [
        "feed.xml", "index.html", ISSUES[2], "sitemap.xml"]
    assert "Market Hall" not in (out / ISSUES[2]).read_text(encoding="utf-8")
    assert (out / "CNAME").read_text(encoding="utf-8") == "news.example.org\n"


# --- many issues -------------------------------------------------------------------


def pin_issues(state: Path, count: int) -> None:
    """COUNT weekly issues of one pinned article, each sent to one reader, recorded
    through the store as a send records them."""
    with closing(open_store(state)) as store:
        journal = store.journal
        for number in range(count):
            as_of = datetime(2025, 1, 4, tzinfo=UTC) + timedelta(weeks=number)
            definition = Definition(as_of, "7d", (), (), 10, 60,
                                    (("note.md", "2025-01-01T00:00:00+00:00"),))
            campaign = f"issue-{number:03d}"
            journal.pin(CampaignRecord(campaign, "-", stamp(as_of), "s", stamp(as_of),
                                       definition.to_json()))
            journal.add(campaign, [Entry("r@example.org", "R", "", f"<{number}@x>",
                                         "pending", None)])
            journal.apply(campaign, [Update("r@example.org", "sent")])


def test_the_index_has_50_issues_a_page_newest_first(tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    shutil.copy(FIXTURES / "note.md", tmp_path / "articles" / "note.md")
    pin_issues(tmp_path / "state", 51)
    out = tmp_path / "public"
    code, stdout, err = archive(out, "--articles", str(tmp_path / "articles"),
                                "--state", str(tmp_path / "state"))
    assert (code, err) == (0, "")
    assert stdout.startswith("Archive: 51 issues, 1 articles; 56 written,")
    first, second = parse_page(out / "index.html"), parse_page(out / "page" / "2.html")
    titles = [a.get("href") for a in first.iter("a") if a.get("class") == "title"]
    assert titles == [f"issues/issue-{n:03d}.html" for n in range(50, 0, -1)]
    assert [a.get("href") for a in second.iter("a") if a.get("class") == "title"] == [
        "../issues/issue-000.html"]
    assert [(a.get("rel"), a.get("href")) for a in first.iter("a") if a.get("rel")] == [
        ("next", "page/2.html")]
    assert [(a.get("rel"), a.get("href")) for a in second.iter("a") if a.get("rel")] == [
        ("prev", "../index.html")]
    assert f"<loc>{ARCHIVE_URL}/page/2.html</loc>" in (out / "sitemap.xml").read_text()
    assert len(feedparser.parse((out / "feed.xml").read_bytes()).entries) == 50


# --- errors ------------------------------------------------------------------------


def test_the_archive_needs_its_url(built: Path, tmp_path: Path) -> None:
    assert run("archive", "--out", str(tmp_path / "x")) == (
        1, "", "Error: --archive-url: the archive needs the URL it is published at, for its "
        "feed and sitemap; set it like 'https://news.example.org/archive'\n")
    assert not (tmp_path / "x").exists()


def test_out_must_be_a_folder_it_can_make(built: Path, tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("x", encoding="utf-8")
    assert archive(file) == (1, "", f"Error: --out: {file} is a file, not a folder; give the "
                             "archive a folder of its own\n")
    assert archive(file / "archive") == (
        1, "", f"Error: --out: cannot create {file}/archive: Not a directory; give a folder "
        "you can write to\n")


def test_a_state_that_never_sent_is_refused(built: Path, tmp_path: Path) -> None:
    assert archive(tmp_path / "x", "--state", str(tmp_path / "state")) == (
        1, "", f"Error: --state: no journal in {tmp_path / 'state'}; nothing has been sent "
        "from here yet\n")
    assert not (tmp_path / "state").exists()
    assert not (tmp_path / "x").exists()
