"""Benchmark bodies that run in a fresh process, so each one's memory and
imports are its own: ``python -m bench.workers CASE ARGS...`` prints JSON."""

from __future__ import annotations

import http.client
import json
import re
import resource
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from digest.content.folder import Source, gather
from digest.content.selection import IssueOptions
from digest.delivery.campaign import send
from digest.delivery.request import SendRequest
from digest.delivery.transport import BeforeData, Delivery
from digest.email.links import make_signer
from digest.email.message import Envelope, Identity
from digest.email.options import RenderOptions
from digest.email.signing import Key, parse_keys
from digest.email.variants import Variants
from digest.model import Subscriber

AS_OF = datetime(2026, 11, 28, tzinfo=UTC)


ISSUE = IssueOptions(AS_OF, since="14d")
IDENTITY = Identity("The Weekly Digest", "The Weekly Digest <digest@example.org>",
                    site_url="https://news.example.org")
# Signed links, as a real send has them; the key is a bench fixture, not a secret.
RENDER = RenderOptions(IDENTITY, signer=make_signer([Key.of("bench-" * 8)], IDENTITY))


def build(articles: Path, count: int) -> dict[str, float]:
    """Personalised messages per second, after the one-time render and inline."""
    started = time.perf_counter()
    chosen = gather(Source(articles), ISSUE, print)
    template = Variants(RENDER, ISSUE, chosen, campaign="bench", sent_at=AS_OF).template(())
    assert template is not None
    prepare = time.perf_counter() - started
    size = len(template.personalize(Subscriber("reader@example.org", "Reader")).data)
    # Subscribers stream in, as they do in a send: building them is part of the cost.
    # Recipient ids come from the journal with each recipient, as in a send.
    subscribers = ((Subscriber(f"reader{i}@example.org", f"Reader {i}"), f"{i:018x}")
                   for i in range(count))
    started = time.perf_counter()
    for subscriber, rid in subscribers:
        template.personalize(subscriber, rid)
    elapsed = time.perf_counter() - started
    return {"per_s": count / elapsed, "message_bytes": size, "prepare_s": prepare}


class NullTransport:
    """Accepts every message at once: what is left is digest's own cost."""

    description = "null:"

    def connection(self) -> NullTransport:
        return self

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery:
        await before_data()
        return Delivery(envelope, "sent", 250)

    async def close(self) -> None:
        return None


def stream(articles: Path, subscribers: Path, state: Path) -> dict[str, float]:
    """A whole send (list reading, validation, journal, personalising) to a null
    transport, reporting the peak resident memory of the process."""
    request = SendRequest(Source(articles), ISSUE, RENDER, (subscribers,), NullTransport(),
                          state=state)
    started = time.perf_counter()
    report = send(request, now=AS_OF, warn=lambda _: None)
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"sent": report.counts.get("sent", 0), "seconds": elapsed,
            "peak_rss_mb": peak_kb / 1024}


class LinkRecorder(NullTransport):
    """A null transport that keeps each message's one-click URL path, as the
    mail provider that POSTs to it would read it from List-Unsubscribe."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def deliver(self, envelope: Envelope, before_data: BeforeData) -> Delivery:
        await before_data()
        found = re.search(rb"List-Unsubscribe: <https?://[^/>]+(/[^>]+)>", envelope.data)
        assert found is not None, "a message without a one-click link"
        self.paths.append(found[1].decode("ascii"))
        return Delivery(envelope, "sent", 250)


def links(articles: Path, subscribers: Path, state: Path, out: Path, key: str) -> dict[str, float]:
    """A send to a null transport that leaves its journal (each recipient's id)
    in ``state`` and the one-click paths of its messages in ``out``."""
    render = RenderOptions(IDENTITY, signer=make_signer(parse_keys(key, "bench"), IDENTITY))
    recorder = LinkRecorder()
    send(SendRequest(Source(articles), ISSUE, render, (subscribers,), recorder, state=state),
         now=AS_OF, warn=lambda _: None)
    out.write_text("\n".join(recorder.paths) + "\n")
    return {"links": len(recorder.paths)}


def one_click(port: int, paths: list[str], connections: int) -> dict[str, float]:
    """RFC 8058 POSTs to ``digest serve``, one per path, over ``connections``
    keep-alive connections in parallel; every answer but a 200 is an error."""
    errors = [0] * connections

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for path in paths[number::connections]:
            try:
                connection.request("POST", path, b"List-Unsubscribe=One-Click", {
                    "Content-Type": "application/x-www-form-urlencoded"})
                response = connection.getresponse()
                response.read()
                errors[number] += response.status != 200
            except (OSError, http.client.HTTPException):
                errors[number] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.close()

    clients = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    started = time.perf_counter()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"requests": len(paths), "errors": sum(errors), "seconds": elapsed,
            "per_s": len(paths) / elapsed}


def main() -> None:
    case, *args = sys.argv[1:]
    if case == "build":
        result = build(Path(args[0]), int(args[1]))
    elif case == "stream":
        result = stream(Path(args[0]), Path(args[1]), Path(args[2]))
    elif case == "links":
        result = links(Path(args[0]), Path(args[1]), Path(args[2]), Path(args[3]), args[4])
    elif case == "oneclick":
        start, count = int(args[2]), int(args[3])
        paths = Path(args[1]).read_text().split()[start:start + count]
        result = one_click(int(args[0]), paths, int(args[4]))
    else:
        raise SystemExit(f"unknown case {case!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
