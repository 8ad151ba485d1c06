"""An unsubscribe made on `digest serve` while `digest send` runs stops mail to
that reader within one page of the send (256 recipients): the sender looks at
the suppression list before each page. Real processes and servers: the send is
a subprocess talking to the aiosmtpd server, the unsubscribe a real HTTP POST
to uvicorn, both over one state folder."""

from __future__ import annotations

import http.client
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from digest.content.folder import Source
from digest.delivery.campaign import PAGE
from digest.email.links import make_signer
from digest.email.message import Identity
from digest.email.signing import parse_keys
from digest.web.app import WebConfig, make_app
from digest.web.server import bind
from digest.web.topics import Topics
from tests.helpers import AS_OF, REPO, TEST_SECRET, digest_env, running, write_list
from tests.smtpd import FaultyServer

READERS = 3 * PAGE
LEAVER = f"reader{READERS - 10:04d}@example.org"  # in the last page, long after the POST


def rid_of(state: Path, email: str) -> str | None:
    try:
        db = sqlite3.connect(f"{(state / 'journal.sqlite3').as_uri()}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return None
    try:
        row = db.execute("SELECT rid FROM deliveries WHERE email=?", (email,)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return str(row[0]) if row and row[0] else None


def test_an_unsubscribe_during_a_send_stops_mail_within_one_page(
    tmp_path: Path, smtp_server: FaultyServer
) -> None:
    write_list(tmp_path / "many.csv", READERS, width=4)
    state = tmp_path / ".digest"
    sock = bind("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    identity = Identity("The Weekly Digest", "The Weekly Digest <digest@example.org>", None,
                        base)
    signer = make_signer(parse_keys(TEST_SECRET, "test"), identity)
    topics = Topics(Source(REPO / "articles"), warn=lambda _: None)
    web, _ = running(make_app(WebConfig(signer, state, identity.name, topics)), sock)
    send = subprocess.Popen(
        [sys.executable, "-m", "digest", "send", "--articles", str(REPO / "articles"),
         "--as-of", AS_OF, "--list", "many.csv", "--site-url", base, "--quiet",
         "--transport", f"smtp://{smtp_server.host}:{smtp_server.port}",
         "--concurrency", "2", "--rate", "150"], cwd=tmp_path, env=digest_env())
    try:
        deadline = time.monotonic() + 30
        while (rid := rid_of(state, LEAVER)) is None or len(smtp_server.received) < 10:
            assert send.poll() is None and time.monotonic() < deadline, "the send went too fast"
            time.sleep(0.01)
        assert len(smtp_server.received) < READERS - PAGE  # the leaver's page is still ahead
        connection = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=10)
        connection.request("POST", f"/unsubscribe/{signer.tokens(rid)[0]}",
                           body=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert connection.getresponse().status == 200
        connection.close()
        assert send.wait(timeout=60) == 0
    finally:
        send.kill()
        web.should_exit = True
    mailed = {rcpt for message in smtp_server.received for rcpt in message.rcpt_tos}
    assert LEAVER not in mailed
    assert len(mailed) == READERS - 1
    db = sqlite3.connect(state / "journal.sqlite3")
    try:
        (status,) = db.execute("SELECT status FROM deliveries WHERE email=?",
                               (LEAVER,)).fetchone()
    finally:
        db.close()
    assert status == "suppressed"
