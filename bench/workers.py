"""Benchmark bodies that run in a fresh process, so each one's memory and
imports are its own: ``python -m bench.workers CASE ARGS...`` prints JSON."""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from digest.content.folder import Source, gather
from digest.content.selection import IssueOptions
from digest.delivery.campaign import send
from digest.delivery.request import SendRequest
from digest.delivery.transport import BeforeData, Delivery
from digest.email.message import Envelope, Identity
from digest.email.options import RenderOptions
from digest.email.variants import Variants
from digest.model import Subscriber

AS_OF = datetime(2026, 11, 28, tzinfo=UTC)


ISSUE = IssueOptions(AS_OF, since="14d")
RENDER = RenderOptions(Identity("The Weekly Digest", "The Weekly Digest <digest@example.org>"))


def build(articles: Path, count: int) -> dict[str, float]:
    """Personalised messages per second, after the one-time render and inline."""
    started = time.perf_counter()
    chosen = gather(Source(articles), ISSUE, print)
    template = Variants(RENDER, ISSUE, chosen, campaign="bench", sent_at=AS_OF).template(())
    assert template is not None
    prepare = time.perf_counter() - started
    size = len(template.personalize(Subscriber("reader@example.org", "Reader")).data)
    # Subscribers stream in, as they do in a send: building them is part of the cost.
    subscribers = (Subscriber(f"reader{i}@example.org", f"Reader {i}") for i in range(count))
    started = time.perf_counter()
    for subscriber in subscribers:
        template.personalize(subscriber)
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


def main() -> None:
    case, *args = sys.argv[1:]
    if case == "build":
        result = build(Path(args[0]), int(args[1]))
    elif case == "stream":
        result = stream(Path(args[0]), Path(args[1]), Path(args[2]))
    else:
        raise SystemExit(f"unknown case {case!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
