"""Issue 13, the web side: "View in browser" in both parts of a message, and
`digest serve --archive DIR` serving the folder `digest send --archive DIR`
keeps up to date, on a real uvicorn server on 127.0.0.1 and a real HTTP client.
The message is a real send into a Maildir; its link is followed as written."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import lxml.html
import pytest

from digest.content.folder import Source
from digest.email.links import make_signer
from digest.email.message import Identity
from digest.email.signing import Key
from digest.errors import ConfigError
from digest.web.app import WebConfig, make_app
from digest.web.archive import ArchiveSite, archive_path
from digest.web.topics import Topics
from tests.helpers import AS_OF, parse, run, running
from tests.test_serve import FIXTURES, KEY, NAME, SENDER, Site, path_of, site, stopping
from tests.test_templates import contrast as contrast_ratio
from tests.test_templates import (
    dark_rules,
    html_of,
    inherited,
    issue,
    styles,
    without_style,
)

__all__ = ["site", "stopping"]  # the fixtures this module uses
READERS = FIXTURES / "readers.csv"

VIEW = "https://news.example.org/archive/issues/2026-w48-subscribers-all.html"


# --- "View in browser" in the templates ---------------------------------------------------


def test_view_in_browser_tops_the_html_and_closes_its_footer() -> None:
    page = html_of(issue(view_url=VIEW, site_url="https://news.example.org"))
    links = page.xpath("//a[@href=$url]", url=VIEW)
    assert [a.text_content() for a in links] == ["View in browser",
                                                 "View this issue in your browser"]
    (top,) = page.xpath("//td[@class='viewonline']")
    (masthead,) = page.xpath("//td[@class='masthead']")
    assert top.getparent().getnext() is masthead.getparent()  # the row right above it
    assert styles(top)["text-align"] == "right" and styles(top)["font-size"] == "12px"
    (footer,) = page.xpath("//td[@class='footer']")
    assert links[1] in footer.iterdescendants()


def test_view_in_browser_follows_the_masthead_in_text() -> None:
    text = issue(view_url=VIEW).text
    assert text.startswith(f"HARBOUR WEEKLY\nNovember 28, 2026\nView in your browser: {VIEW}\n\n")
    assert text.count(VIEW) == 1


def test_without_an_archive_there_is_no_view_in_browser() -> None:
    rendered = issue()
    assert "View in" not in rendered.html and "View in" not in rendered.text
    assert "viewonline" not in rendered.html  # not even its style rules


def test_view_in_browser_reaches_aa_in_both_palettes_and_without_style() -> None:
    rendered = issue(view_url=VIEW)
    page = html_of(rendered)
    shown = page.xpath("//td[@class='viewonline'] | //td[@class='viewonline']//a")
    dark = dark_rules(page)
    assert all(element in dark for element in shown)  # a dark rule for each
    for rules in ({}, dark):
        for element in shown:
            colour = inherited(element, "color", rules)
            background = inherited(element, "background-color", rules)
            assert colour and background
            assert contrast_ratio(colour, background) >= 4.5, (colour, background)
    (link,) = without_style(rendered).xpath("//td[@class='viewonline']//a")
    assert styles(link)["color"] == "#5b6670"  # still styled when <style> is dropped


# --- where `digest serve` puts the archive --------------------------------------------------


@pytest.mark.parametrize(("archive_url", "site_url", "path"), [
    ("https://news.example.org/archive/", "https://news.example.org", "/archive"),
    ("https://NEWS.example.org:443/back/issues/", "https://news.example.org/", "/back/issues"),
    ("https://news.example.org/", "https://news.example.org", ""),
    ("https://news.example.org/my%20archive/", "https://news.example.org", "/my archive"),
    ("https://archive.example.org/", "https://news.example.org", "/archive"),
    ("https://news.example.org:8443/old/", "https://news.example.org", "/archive"),
    ("http://127.0.0.1:8025/past/", None, "/past"),
    (None, "https://news.example.org", "/archive"),
    (None, None, "/archive"),
])
def test_the_archive_is_served_where_its_links_point_when_on_this_site(
        archive_url: str | None, site_url: str | None, path: str) -> None:
    assert archive_path(archive_url, site_url) == path


def test_an_archive_url_on_the_endpoints_own_paths_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        archive_path("https://news.example.org/unsubscribe/", "https://news.example.org")
    assert str(caught.value) == (
        "--archive-url: 'https://news.example.org/unsubscribe/' would put the archive at "
        "/unsubscribe/, which digest serve answers itself; publish it at another path, "
        "like /archive/")


# --- a real send, its archive, and `digest serve` -------------------------------------------


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def fetch(site: Site, path: str, method: str = "GET",
          headers: dict[str, str] | None = None) -> Fetched:
    """One request as written (no normalising of ``..``); every answer, the archive's
    included, carries the endpoint's security headers."""
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        reply = Fetched(response.status, {k.lower(): v for k, v in response.getheaders()},
                        response.read())
    finally:
        connection.close()
    assert reply.headers["referrer-policy"] == "no-referrer", path
    assert reply.headers["x-content-type-options"] == "nosniff", path
    assert reply.headers["content-security-policy"].startswith("default-src 'none'; "), path
    return reply


def serve_archive(site: Site, folder: Path, archive_url: str) -> None:
    """`digest serve --archive FOLDER --archive-url ARCHIVE_URL` as the CLI wires it."""
    identity = Identity(NAME, SENDER, None, site.base, archive_url=archive_url)
    topics = Topics(Source(site.workdir / "articles"), warn=lambda _: None)
    where = ArchiveSite(folder, archive_path(archive_url, site.base))
    config = WebConfig(make_signer([Key.of(KEY)], identity), site.workdir / ".digest", NAME,
                       topics, where)
    site.running.append(running(make_app(config), site.sock))


def published(site: Site, *extra: str) -> dict[str, EmailMessage]:
    """A real send that links to, and refreshes, the archive in ./public."""
    return site.send("--archive-url", f"{site.base}/archive/", "--archive", "public", *extra)


def view_links(message: EmailMessage) -> tuple[list[str], list[str]]:
    """The "View in browser" links of the HTML part, and those of the text part."""
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = lxml.html.document_fromstring(html)
    in_html = [a.get("href") for a in page.xpath("//a") if "View" in a.text_content()]
    return in_html, re.findall(r"^View in your browser: (\S+)$", text, re.MULTILINE)


def lead_title(html: str) -> str:
    (first, *_) = lxml.html.document_fromstring(html).xpath("//h2[@class='title']")
    return str(first.text_content())


def test_view_in_browser_in_a_sent_message_opens_its_issue_through_digest_serve(
        site: Site) -> None:
    sent = published(site)
    serve_archive(site, site.workdir / "public", f"{site.base}/archive/")
    page_url = f"{site.base}/archive/issues/2026-w48-readers-all.html"
    for address, message in sent.items():
        in_html, in_text = view_links(message)
        assert (in_html, in_text) == ([page_url, page_url], [page_url]), address
        reply = fetch(site, urlsplit(page_url).path)
        assert reply.status == 200
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert lead_title(html) in reply.text
        assert address not in reply.text and "View in" not in reply.text
    everything = sent["ann@example.org"].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert lead_title(reply.text) == lead_title(everything)
    plain = site.send("--campaign", "no-archive-url")  # the golden case: no link at all
    assert [view_links(m) for m in plain.values()] == [([], [])] * 3


def test_the_archive_is_served_with_its_types_and_caching(site: Site) -> None:
    published(site)
    serve_archive(site, site.workdir / "public", f"{site.base}/archive/")
    types = {"/archive/": "text/html; charset=utf-8",
             "/archive/index.html": "text/html; charset=utf-8",
             "/archive/articles/lagos-solar-microgrids.html": "text/html; charset=utf-8",
             "/archive/feed.xml": "application/atom+xml",
             "/archive/sitemap.xml": "application/xml"}
    for path, kind in types.items():
        reply = fetch(site, path)
        assert (reply.status, reply.headers["content-type"]) == (200, kind), path
        assert reply.headers["cache-control"] == "public, max-age=300", path
        assert reply.headers["etag"] and reply.headers["last-modified"], path
        again = fetch(site, path, headers={"If-None-Match": reply.headers["etag"]})
        assert (again.status, again.body) == (304, b""), path
        assert again.headers["cache-control"] == "public, max-age=300", path
        head = fetch(site, path, "HEAD")
        assert (head.status, head.body, head.headers["etag"]) == (200, b"",
                                                                   reply.headers["etag"])
    feed = ElementTree.fromstring(fetch(site, "/archive/feed.xml").body)
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed"
    sitemap = ElementTree.fromstring(fetch(site, "/archive/sitemap.xml").body)
    assert sitemap.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}urlset"
    # The lead story's image is the one thing a page may load from elsewhere.
    policy = fetch(site, "/archive/").headers["content-security-policy"]
    assert policy == ("default-src 'none'; style-src 'unsafe-inline'; img-src https:; "
                      "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    bare = fetch(site, "/archive")
    assert (bare.status, bare.headers["location"]) == (307, f"{site.base}/archive/")


def test_nothing_outside_the_archive_hidden_or_missing_is_served(site: Site) -> None:
    published(site)
    public = site.workdir / "public"
    (public / ".page.html.tmp").write_text("half a page", encoding="utf-8")
    (public / "leak.html").symlink_to(site.workdir / "readers.csv")
    serve_archive(site, public, f"{site.base}/archive/")
    refused = [
        "/archive/../readers.csv", "/archive/..%2freaders.csv", "/archive/%2e%2e/readers.csv",
        "/archive/%2e%2e%2freaders.csv", "/archive/issues/..%2f..%2freaders.csv",
        "/archive/..%5creaders.csv", "/archive/%2fetc%2fpasswd", "/archive//etc/passwd",
        "/archive/leak.html",  # a symlink out of the folder
        "/archive/.digest-archive.json", "/archive/.page.html.tmp",  # hidden files
        "/archive/issues/", "/archive/articles",  # folders: never a listing
        "/archive/issues/1999-w01.html", "/archive/nothing/here.html",
    ]
    for path in refused:
        reply = fetch(site, path)
        assert reply.status == 404, path
        assert "Page not found" in reply.text and "readers.csv" not in reply.text, path
        assert b"ann@example.org" not in reply.body, path
        assert reply.headers["cache-control"] == "no-store", path
    wrong = fetch(site, "/archive/index.html", "POST")
    assert (wrong.status, wrong.headers["allow"]) == (405, "GET, HEAD")


def test_an_archive_at_the_root_leaves_the_endpoint_its_own_pages(site: Site) -> None:
    sent = site.send("--archive-url", f"{site.base}/", "--archive", "public")
    serve_archive(site, site.workdir / "public", f"{site.base}/")
    (_, (url,)) = view_links(sent["bo@example.org"])
    assert url == f"{site.base}/issues/2026-w48-readers-all.html"
    assert fetch(site, urlsplit(url).path).status == 200
    assert fetch(site, "/feed.xml").headers["content-type"] == "application/atom+xml"
    assert fetch(site, "/healthz").body == b"ok"
    page = fetch(site, path_of(sent["bo@example.org"], "preferences"))
    assert page.status == 200 and page.headers["cache-control"] == "no-store"
    assert "bo@example.org" in page.text
    assert fetch(site, "/unsubscribe/forged").status == 404


# --- the commands: send --archive, serve --archive --------------------------------------------

ARCHIVE_URL = "https://news.example.org/archive/"
SEND = ("send", "--as-of", AS_OF, "--list", "readers.csv", "--archive-url", ARCHIVE_URL)
SUMMARY = r"Archive: (\d+) issues, 5 articles; (\d+) written, (\d+) unchanged, 0 removed in public"


def test_send_with_archive_adds_each_new_issue_to_it(make_workdir: Callable[..., Path]) -> None:
    workdir = make_workdir(READERS)
    code, out, err = run(*SEND, "--archive", "public")
    assert (code, err) == (0, "")
    sent, archived = out.splitlines()
    assert sent == ("Sent 3 messages via maildir:outbox (campaign 2026-W48-readers-all; "
                    "now 3 sent).")
    match = re.fullmatch(SUMMARY, archived)
    assert match and match[1] == "1" and match[3] == "0", archived
    assert (workdir / "public" / "issues" / "2026-w48-readers-all.html").is_file()
    code, out, err = run(*SEND, "--archive", "public", "--campaign", "second")
    assert (code, err) == (0, "")
    match = re.fullmatch(SUMMARY, out.splitlines()[-1])
    assert match and match[1] == "2" and int(match[3]) > 0, out  # the rest left alone
    assert (workdir / "public" / "issues" / "second.html").is_file()


def test_archive_without_archive_url_is_one_line_and_sends_nothing(
        make_workdir: Callable[..., Path]) -> None:
    workdir = make_workdir(READERS)
    code, out, err = run("send", "--as-of", AS_OF, "--list", "readers.csv", "--archive",
                         "public")
    assert (code, out) == (1, "")
    assert err == ("Error: --archive: the archive needs --archive-url, where it is published, "
                   "for the links in each message and in its feed; set it like "
                   "'https://news.example.org/archive/'\n")
    assert sorted(p.name for p in workdir.iterdir()) == ["articles", "readers.csv"]


def test_an_archive_that_cannot_be_written_after_a_send_exits_3(
        make_workdir: Callable[..., Path]) -> None:
    workdir = make_workdir(READERS)
    code, out, err = run(*SEND, "--archive", "readers.csv/public")
    assert code == 3  # not 1: the messages went out
    assert out.startswith("Sent 3 messages via maildir:outbox")
    assert len(list((workdir / "outbox" / "new").iterdir())) == 3
    assert err.startswith("Error: --archive: the archive was not refreshed: cannot create "
                          "readers.csv/public: ")
    assert err.count("\n") == 1


def test_a_dry_run_leaves_the_archive_alone(make_workdir: Callable[..., Path]) -> None:
    workdir = make_workdir(READERS)
    code, out, err = run(*SEND, "--archive", "public", "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "Dry run: the archive was left as it is."
    assert not (workdir / "public").exists()


def test_serve_refuses_an_archive_that_is_a_file_or_shadows_its_pages(
        make_workdir: Callable[..., Path]) -> None:
    make_workdir(READERS)
    code, _, err = run("serve", "--listen", "127.0.0.1:0", "--archive", "readers.csv")
    assert code == 2
    assert err.endswith("Error: Invalid value for '--archive' (env var: 'DIGEST_ARCHIVE'): "
                        "Directory 'readers.csv' is a file.\n")
    code, _, err = run("serve", "--listen", "127.0.0.1:0", "--archive", "public",
                       "--site-url", "https://news.example.org",
                       "--archive-url", "https://news.example.org/healthz")
    assert code == 1
    assert err.endswith("Error: --archive-url: 'https://news.example.org/healthz' would put "
                        "the archive at /healthz/, which digest serve answers itself; publish "
                        "it at another path, like /archive/\n")


def test_digest_serve_serves_an_archive_written_after_it_started(
        make_workdir: Callable[..., Path]) -> None:
    """The process, as systemd runs it, before the first `send --archive` exists."""
    workdir = make_workdir(READERS)
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--listen", "127.0.0.1:0", "--archive",
         "public"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        first, second = process.stdout.readline(), process.stdout.readline()
        match = re.fullmatch(r"Serving the archive in public on (http://127\.0\.0\.1:\d+)"
                             r"/archive/\n", second)
        assert match, first + second + process.stderr.read()
        base = match[1]
        assert get(base + "/archive/")[0] == 404  # nothing written yet
        code, _, err = run("send", "--as-of", AS_OF, "--list", "readers.csv",
                           "--archive-url", base + "/archive/", "--archive", "public")
        assert code == 0, err
        message = parse(next((workdir / "outbox" / "new").iterdir()).read_bytes())
        (url,) = view_links(message)[1]
        status, kind, body = get(url)
        assert (status, kind) == (200, "text/html; charset=utf-8")
        assert b"Council Passes Budget" in body
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors
    assert errors == ("warning: --archive: public does not exist yet; its pages are 404 until "
                      "'digest archive' or 'digest send --archive' writes it\n")


def get(url: str) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        return response.status, response.headers["content-type"], response.read()
    finally:
        connection.close()


def test_a_build_links_stories_to_the_archive_but_names_no_issue_page(workdir: Path) -> None:
    # A build belongs to no list, so an issue page for it would never be published.
    code, _, err = run("build", "--as-of", AS_OF, "--out", "build",
                       "--archive-url", "https://news.example.org/archive/")
    assert code == 0, err
    html = (workdir / "build" / "digest.html").read_text(encoding="utf-8")
    assert "View in browser" not in html
    assert 'href="https://news.example.org/archive/articles/' in html
