"""`digest serve` on a real uvicorn server on 127.0.0.1, driven by a real
HTTP client, after real `digest send` runs into a Maildir with signed links.
Nothing is mocked: the state the pages change is the one the next send reads."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import uvicorn
from click.testing import CliRunner

from digest.cli.main import cli
from digest.content.folder import Source
from digest.email.links import make_signer
from digest.email.message import Identity
from digest.email.signing import Key, Signer
from digest.web.app import WebConfig, make_app
from digest.web.server import bind
from digest.web.topics import Topics
from tests.helpers import AS_OF, TEST_SECRET, TESTS, running

FIXTURES = TESTS / "fixtures" / "serve"
KEY = TEST_SECRET
OLD_KEY = "serve-test-oldest-key-" + "o" * 16
NAME, SENDER = "The Weekly Digest", "The Weekly Digest <digest@example.org>"
SECURITY = {
    "content-security-policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    text: str


@dataclass
class Site:
    """A working folder, a port bound before anything is sent (so the links
    can point at it), the messages each send wrote, and the server."""

    workdir: Path
    sock: object
    port: int
    seen: set[str] = field(default_factory=set)
    running: list[tuple[uvicorn.Server, threading.Thread]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(self, *extra: str, key: str = KEY) -> dict[str, EmailMessage]:
        """A real `digest send` into ./outbox; the new messages by recipient."""
        result = CliRunner().invoke(cli, [
            "send", "--as-of", AS_OF, "--list", "readers.csv", "--site-url", self.base,
            "--quiet", *extra], env={"DIGEST_SECRET": key})
        assert result.exit_code == 0, result.output
        fresh = {}
        for path in sorted((self.workdir / "outbox" / "new").iterdir()):
            if path.name not in self.seen:
                self.seen.add(path.name)
                message = message_from_bytes(path.read_bytes(), policy=policy.default)
                assert isinstance(message, EmailMessage)
                fresh[str(message["To"].addresses[0].addr_spec)] = message
        return fresh

    def start(self, keys: tuple[str, ...] = (KEY,), name: str = NAME) -> None:
        identity = Identity(name, SENDER, None, self.base)
        signer = make_signer([Key.of(k) for k in keys], identity)
        topics = Topics(Source(self.workdir / "articles"), warn=lambda _: None)
        config = WebConfig(signer, self.workdir / ".digest", name, topics)
        self.running.append(running(make_app(config), self.sock))

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Reply:
        """One request on a fresh connection; every answer carries the security headers."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            response = connection.getresponse()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                          response.read().decode())
        finally:
            connection.close()
        for name, value in SECURITY.items():
            assert reply.headers.get(name) == value, (method, path, reply.status, name)
        return reply

    def one_click(self, path: str, body: bytes = ONE_CLICK, kind: str = FORM) -> Reply:
        return self.request("POST", path, body, {"Content-Type": kind})

    def suppressed(self) -> dict[str, tuple[str, str]]:
        result = CliRunner().invoke(cli, ["suppress", "list", "--format", "json"])
        assert result.exit_code == 0, result.output
        return {e["email"]: (e["reason"], e["source"]) for e in json.loads(result.stdout)}

    def stop(self) -> None:
        for instance, _ in self.running:
            instance.should_exit = True


@pytest.fixture(scope="module")
def stopping() -> Iterator[list[threading.Thread]]:
    """Servers finishing their shutdown (uvicorn takes 0.2 s) while later tests
    run; all of them joined before the module ends."""
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def site(make_workdir: Callable[..., Path], stopping: list[threading.Thread]) -> Iterator[Site]:
    workdir = make_workdir(FIXTURES / "readers.csv")
    sock = bind("127.0.0.1", 0)
    served = Site(workdir, sock, sock.getsockname()[1])
    try:
        yield served
    finally:
        served.stop()
        stopping.extend(thread for _, thread in served.running)
        if not served.running:
            sock.close()  # otherwise the server closes it


def links(message: EmailMessage, base: str) -> list[str]:
    """Every link under ``base`` (a pattern) in a message: headers, text and HTML parts."""
    text = str(message["List-Unsubscribe"])
    for part in message.walk():
        if part.get_content_maintype() == "text":
            text += "\n" + part.get_content()  # type: ignore[attr-defined]
    found = re.findall(base + r"/[^\s\"'<>]+", text)
    return sorted(set(found))


def path_of(message: EmailMessage, kind: str) -> str:
    """The path of the message's unsubscribe or preferences link."""
    url = next(u for u in links(message, r"http://127\.0\.0\.1:\d+") if f"/{kind}/" in u)
    return urlsplit(url).path


def test_one_click_unsubscribes_exactly_that_reader(site: Site) -> None:
    sent = site.send()
    assert set(sent) == {"ann+news@example.org", "ann@example.org", "bo@example.org"}
    assert sent["ann+news@example.org"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    site.start()
    path = path_of(sent["ann+news@example.org"], "unsubscribe")
    first = site.one_click(path)
    assert first.status == 200
    assert "You are unsubscribed" in first.text
    assert "set-cookie" not in first.headers and "location" not in first.headers
    campaign = "2026-W48-readers-all"
    assert site.suppressed() == {"ann+news@example.org": ("unsubscribed", f"web:{campaign}")}
    again = site.one_click(path)  # idempotent: the same answer, the same single entry
    assert again.status == 200 and "You are unsubscribed" in again.text
    assert site.suppressed() == {"ann+news@example.org": ("unsubscribed", f"web:{campaign}")}
    multipart = (b"--b0undary\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\""
                 b"\r\n\r\nOne-Click\r\n--b0undary--\r\n")  # as some providers send it
    reply = site.one_click(path_of(sent["bo@example.org"], "unsubscribe"), multipart,
                           "multipart/form-data; boundary=b0undary")
    assert reply.status == 200
    assert set(site.suppressed()) == {"ann+news@example.org", "bo@example.org"}


def test_get_and_head_on_every_link_change_nothing(site: Site) -> None:
    sent = site.send()
    site.start()
    followed = 0
    for message in sent.values():
        urls = links(message, re.escape(site.base))
        assert {urlsplit(u).path.split("/")[1] for u in urls} == {"unsubscribe", "preferences"}
        for url in urls:
            for method in ("GET", "HEAD"):
                reply = site.request(method, urlsplit(url).path)
                assert reply.status == 200, (method, url)
                followed += 1
    assert followed == 3 * 2 * 2
    assert site.suppressed() == {}
    again = site.send("--campaign", "again")  # no one suppressed, no preference changed
    assert {k: titles(m) for k, m in again.items()} == {k: titles(m) for k, m in sent.items()}
    confirm = site.request("GET", path_of(sent["ann@example.org"], "unsubscribe"))
    assert "<button type=\"submit\">Unsubscribe</button>" in confirm.text
    assert 'name="List-Unsubscribe" value="One-Click"' in confirm.text


def forgeries(token: str, other_purpose: str, purpose: int) -> dict[str, str]:
    """Tokens that must not pass where ``token`` does; ``purpose`` 0 is
    unsubscribe and 1 preferences, as Signer.tokens() orders them."""
    rid, _, tag = token.split(".")
    ours = make_signer([Key.of(KEY)], Identity(NAME, SENDER))
    wrong_key = Key(Key.of(KEY).kid, OLD_KEY.encode())  # our key's id, another secret
    return {
        "forged tag": token[:-len(tag)] + ("A" if tag[0] != "A" else "B") + tag[1:],
        "truncated": token[:-1],
        "other purpose": other_purpose,
        "other list": Signer([Key.of(KEY)], "another-list.example.org").tokens(rid)[purpose],
        "unknown key": Signer([Key.of(OLD_KEY)], ours.list_id).tokens(rid)[purpose],
        "known key id, wrong key": Signer([wrong_key], ours.list_id).tokens(rid)[purpose],
        "unknown rid": ours.tokens("0" * 18)[purpose],
        "not a token": "..",
    }


def test_bad_tokens_are_404_and_change_nothing(site: Site) -> None:
    sent = site.send()
    site.start()
    message = sent["ann@example.org"]
    unsubscribe = path_of(message, "unsubscribe").rsplit("/", 1)[1]
    preferences = path_of(message, "preferences").rsplit("/", 1)[1]
    tries = [(why, method, f"/unsubscribe/{bad}{tail}", ONE_CLICK)
             for why, bad in forgeries(unsubscribe, preferences, 0).items()
             for method, tail in [("POST", ""), ("GET", ""), ("HEAD", ""), ("POST", "/undo")]]
    tries += [(why, method, f"/preferences/{bad}", b"tag=health")
              for why, bad in forgeries(preferences, unsubscribe, 1).items()
              for method in ("GET", "POST")]
    for why, method, path, body in tries:
        reply = site.request(method, path, body, {"Content-Type": FORM})
        assert reply.status == 404, (why, method, path)
        assert method == "HEAD" or "This link is not valid" in reply.text, (why, method)
    assert len(tries) == 8 * 4 + 8 * 2
    assert site.suppressed() == {}
    again = site.send("--campaign", "again")
    assert {k: titles(m) for k, m in again.items()} == {k: titles(m) for k, m in sent.items()}


def test_a_link_signed_with_an_older_key_still_works(site: Site) -> None:
    sent = site.send(key=OLD_KEY)
    site.start(keys=(KEY, OLD_KEY))  # a new key added in front of the old one
    reply = site.one_click(path_of(sent["ann@example.org"], "unsubscribe"))
    assert reply.status == 200
    assert set(site.suppressed()) == {"ann@example.org"}


def test_a_link_for_another_newsletter_is_refused(site: Site) -> None:
    sent = site.send()
    site.start(name="The Other Weekly")  # same key, another List-Id
    assert site.one_click(path_of(sent["ann@example.org"], "unsubscribe")).status == 404
    assert site.suppressed() == {}


def test_undo_restores_delivery(site: Site) -> None:
    sent = site.send()
    site.start()
    path = path_of(sent["ann+news@example.org"], "unsubscribe")
    done = site.one_click(path)
    undo = re.search(r'<form method="post" action="([^"]+)">\s*<button[^>]*>Undo', done.text)
    assert undo and urljoin(path, undo[1]) == path + "/undo"
    assert "ann+news@example.org" not in site.send("--campaign", "second")
    undone = site.request("POST", path + "/undo", b"", {"Content-Type": FORM})
    assert undone.status == 200
    assert "You are subscribed again" in undone.text
    assert site.suppressed() == {}
    assert "ann+news@example.org" in site.send("--campaign", "third")


def test_undo_leaves_other_suppressions_alone(site: Site) -> None:
    sent = site.send()
    site.start()
    result = CliRunner().invoke(cli, ["suppress", "add", "ann@example.org"])
    assert result.exit_code == 0, result.output
    path = path_of(sent["ann@example.org"], "unsubscribe")
    assert site.one_click(path).status == 200
    reply = site.request("POST", path + "/undo", b"", {"Content-Type": FORM})
    assert reply.status == 200
    assert "for another reason" in reply.text
    assert site.suppressed()["ann@example.org"][0] == "manual"


def titles(message: EmailMessage) -> set[str]:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    known = ["Harbour Wind Farm", "Solar Microgrids", "City Clinics Extend Evening Hours",
             "Council Passes Budget"]
    return {title for title in known if title in text}


def test_a_preferences_change_alters_the_next_send(site: Site) -> None:
    sent = site.send()
    assert titles(sent["bo@example.org"]) == {"Harbour Wind Farm", "Solar Microgrids"}
    site.start()
    path = path_of(sent["bo@example.org"], "preferences")
    page = site.request("GET", path)
    assert page.status == 200
    checked = re.findall(r'name="tag" value="([a-z-]+)" checked', page.text)
    assert checked == ["climate"]
    assert '<input type="checkbox" name="tag" value="health"> Health</label>' in page.text
    saved = site.request("POST", path, b"tag=health", {"Content-Type": FORM})
    assert saved.status == 200
    assert "articles about Health" in saved.text
    assert re.findall(r'name="tag" value="([a-z-]+)" checked', saved.text) == ["health"]
    after = site.send("--campaign", "second")
    assert titles(after["bo@example.org"]) == {"City Clinics Extend Evening Hours"}
    assert titles(after["ann@example.org"]) == set(titles(sent["ann@example.org"]))


def test_everything_checked_is_everything_and_nothing_checked_is_refused(site: Site) -> None:
    sent = site.send()
    site.start()
    path = path_of(sent["bo@example.org"], "preferences")
    page = site.request("GET", path)
    every = "&".join(f"tag={t}" for t in re.findall(r'name="tag" value="([a-z-]+)"', page.text))
    saved = site.request("POST", path, every.encode(), {"Content-Type": FORM})
    assert saved.status == 200 and "gets every article" in saved.text
    empty = site.request("POST", path, b"", {"Content-Type": FORM})
    assert empty.status == 400 and "Choose at least one topic" in empty.text
    after = site.send("--campaign", "second")
    assert "Council Passes Budget" in titles(after["bo@example.org"])


NOT_ONE_CLICK = {
    "over 1 KB": (ONE_CLICK + b"&pad=" + b"x" * 1024, FORM),
    "empty": (b"", FORM),
    "wrong case": (b"List-Unsubscribe=one-click", FORM),
    "twice": (b"List-Unsubscribe=One-Click&List-Unsubscribe=One-Click", FORM),
    "extra field": (b"List-Unsubscribe=One-Click&also=this", FORM),
    "text/plain": (ONE_CLICK, "text/plain"),
    "json": (b'{"List-Unsubscribe": "One-Click"}', "application/json"),
    "unclosed multipart": (b"--b\r\nContent-Disposition: form-data; "
                           b"name=\"List-Unsubscribe\"\r\n\r\nOne-Click",
                           "multipart/form-data; boundary=b"),
    "not UTF-8": (b"\xff\xfe", FORM),
}


def test_anything_but_the_one_click_form_is_400(site: Site) -> None:
    sent = site.send()
    site.start()
    path = path_of(sent["ann@example.org"], "unsubscribe")
    for why, (body, kind) in NOT_ONE_CLICK.items():
        reply = site.one_click(path, body, kind)
        assert reply.status == 400, why
        assert "List-Unsubscribe=One-Click" in reply.text, why
    declared = site.request("POST", path, ONE_CLICK, {"Content-Type": FORM,
                                                      "Content-Length": "2000"})
    assert declared.status == 400  # refused from its declared length, before reading
    assert site.suppressed() == {}


def test_every_response_carries_the_security_headers(site: Site) -> None:
    sent = site.send()
    site.start()
    path = path_of(sent["ann@example.org"], "unsubscribe")
    answers = {
        ("GET", "/healthz"): 200, ("HEAD", path): 200, ("GET", "/"): 404,
        ("GET", "/unsubscribe"): 404, ("GET", path + "/extra"): 404, ("PUT", path): 405,
        ("DELETE", path_of(sent["ann@example.org"], "preferences")): 405,
        ("GET", path + "/undo"): 405, ("POST", "/healthz"): 405,
    }
    for (method, where), status in answers.items():
        reply = site.request(method, where)  # request() checks the headers of each
        assert reply.status == status, (method, where)
    assert site.request("GET", "/healthz").text == "ok"
    allowed = site.request("PUT", path).headers["allow"]
    assert sorted(allowed.split(", ")) == ["GET", "HEAD", "POST"]
    assert site.suppressed() == {}


def test_pages_are_small_accessible_and_self_contained(site: Site) -> None:
    sent = site.send()
    site.start()
    for kind in ("unsubscribe", "preferences"):
        page = site.request("GET", path_of(sent["bo@example.org"], kind)).text
        assert '<html lang="en">' in page and '<meta name="viewport"' in page
        assert "<h1>" in page and "prefers-color-scheme: dark" in page
        assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from elsewhere
        assert len(page.encode()) < 8000
    prefs = site.request("GET", path_of(sent["bo@example.org"], "preferences")).text
    assert prefs.count("<label><input") == prefs.count('type="checkbox"') > 5


def test_an_address_is_escaped_on_the_page(site: Site) -> None:
    (site.workdir / "readers.csv").write_text(
        "email,name,tags,status\no'brien&co@example.org,Pat,,\n", encoding="utf-8")
    sent = site.send()
    site.start()
    page = site.request("GET", path_of(sent["o'brien&co@example.org"], "unsubscribe")).text
    assert "o'brien&co" not in page
    assert "o&#39;brien&amp;co@example.org" in page


# The command itself: what it refuses, and a real process serving.

def test_serve_without_a_key_refuses_to_start(make_workdir: Callable[..., Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    make_workdir()
    monkeypatch.delenv("DIGEST_SECRET")
    result = CliRunner().invoke(cli, ["serve", "--listen", "127.0.0.1:0"])
    assert result.exit_code == 1
    assert result.stderr == ("Error: no key to check links with; make one with 'digest secret "
                             "new' and set DIGEST_SECRET or secret-file\n")


def test_serve_refuses_a_bad_listen_address(make_workdir: Callable[..., Path]) -> None:
    make_workdir()
    for listen in ["8025", "localhost", "127.0.0.1:99999", "::1:8025", "127.0.0.1:x"]:
        result = CliRunner().invoke(cli, ["serve", "--listen", listen],
                                    env={"DIGEST_SECRET": KEY})
        assert result.exit_code == 2
        assert result.stderr.endswith(
            f"Error: Invalid value for '--listen' (env var: 'DIGEST_LISTEN'): {listen!r} is "
            "not HOST:PORT with a port from 0 to 65535; write it like 127.0.0.1:8025 or "
            "[::1]:8025\n")


def test_serve_on_a_port_in_use_says_so(make_workdir: Callable[..., Path]) -> None:
    make_workdir()
    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--listen", f"127.0.0.1:{port}"],
                                    env={"DIGEST_SECRET": KEY})
    assert result.exit_code == 1
    assert result.stderr == (f"Error: --listen: cannot listen on http://127.0.0.1:{port}: "
                             "Address already in use; choose another HOST:PORT\n")


def test_serve_on_a_state_that_cannot_be_one_says_so_before_serving(
        make_workdir: Callable[..., Path]) -> None:
    (make_workdir() / "not-a-folder").write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--listen", "127.0.0.1:0", "--state",
                                      "not-a-folder"], env={"DIGEST_SECRET": KEY})
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "\n\nError: Invalid value for '--state' (env var: 'DIGEST_STATE'): not-a-folder is a "
        "file, not a state folder: give a state folder (made if missing) or a postgresql:// "
        "URL\n")


def test_digest_serve_runs_as_a_process_and_stops_on_sigterm(
        make_workdir: Callable[..., Path]) -> None:
    workdir = make_workdir()
    (workdir / "digest.toml").write_text('name = "The Harbour Weekly"\n'
                                         'listen = "127.0.0.1:0"\n', encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "digest", "serve"], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "DIGEST_SECRET": KEY})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"Serving The Harbour Weekly's unsubscribe and preferences pages "
                             r"on http://127\.0\.0\.1:(\d+)/ \(Ctrl-C stops\)\n", line)
        assert match, line + process.stderr.read()  # type: ignore[union-attr]
        connection = http.client.HTTPConnection("127.0.0.1", int(match[1]), timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b"ok"
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors


SPAMASSASSIN = shutil.which("spamassassin")


@pytest.mark.skipif(SPAMASSASSIN is None, reason="spamassassin is not installed "
                    "(apt-get install spamassassin)")
def test_spamassassin_finds_nothing_wrong_with_the_links(
        make_workdir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    """A real message, as a real send makes it for a real https site, through
    SpamAssassin's local rules: no URI rule may fire on the signed links."""
    workdir = make_workdir(FIXTURES / "readers.csv")
    result = CliRunner().invoke(cli, [
        "send", "--as-of", AS_OF, "--list", "readers.csv", "--quiet",
        "--name", "The Harbour Weekly", "--from", "The Harbour Weekly <news@harbour.example.org>",
        "--site-url", "https://harbour.example.org"], env={"DIGEST_SECRET": KEY})
    assert result.exit_code == 0, result.output
    message = next(p for p in (workdir / "outbox" / "new").iterdir()
                   if b"To: Ann News <ann+news@example.org>" in p.read_bytes())
    home = tmp_path_factory.mktemp("spamassassin-home")  # where it writes its user prefs
    report = subprocess.run([str(SPAMASSASSIN), "-L", "-t"], input=message.read_bytes(),
                            capture_output=True, check=True, timeout=60,
                            env={**os.environ, "HOME": str(home)}).stdout.decode()
    details = report.split("Content analysis details:", 1)[1]
    rules = re.findall(r"^\s*-?\d+\.\d+\s+([A-Z0-9_]+)\s", details, re.MULTILINE)
    assert "HTML_MESSAGE" in rules  # the report was read
    assert [rule for rule in rules if "URI" in rule] == []
