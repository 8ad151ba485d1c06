"""The sender's rate limit: a token bucket that backs off when a server throttles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Seconds between looks at whether to stop, in each wait of a sender: for a retry's
# backoff, a turn under --rate, a rest after a failed connection, a connection opening.
STOP_POLL = 0.2


class TokenBucket:
    """At most ``rate`` acquisitions a second. ``None`` means no limit.

    It starts with one token, so the first second of a send stays within the cap
    too; a pause (waiting on a slow server) saves up at most one second's worth.

    Throttling replies (421, 454) cut the rate in half; each success after that
    wins back 5%, up to the configured cap (AIMD-like, so a busy server sees
    us back off quickly and return gently).
    """

    FLOOR = 5.0  # messages a second; below this a weekly send never finishes

    def __init__(self, rate: float | None) -> None:
        self.cap = rate
        self.rate = rate
        self._tokens = 1.0 if rate else 0.0
        self._stamp = time.monotonic()

    async def acquire(self, stopping: Callable[[], bool] = lambda: False) -> None:
        """A token, or none once ``stopping`` holds: the wait is taken in steps."""
        while self.rate is not None and not stopping():
            now = time.monotonic()
            self._tokens = min(self._room(), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep(min((1 - self._tokens) / self.rate, STOP_POLL))

    def slow_down(self, observed: float) -> None:
        """Halve the rate; uncapped, halve what we achieved so far."""
        base = self.rate if self.rate is not None else observed
        self.rate = max(base / 2, min(self.FLOOR, self.cap or self.FLOOR))
        self._tokens = min(self._tokens, self._room())

    def _room(self) -> float:
        """The most tokens saved up: a second's worth, and at least one, or a rate
        below one a second would never have a whole token to hand out."""
        return max(1.0, self.rate or 0.0)

    def speed_up(self) -> None:
        if self.rate is None:
            return
        self.rate *= 1.05
        if self.cap is not None:
            self.rate = min(self.rate, self.cap)
        elif self.rate > 10_000:
            self.rate = None  # fully recovered: uncapped again
