"""Pacing: a chatkit client sends no faster than the server reads.

The server announces its per-client rate in `welcome` (`limits.rate`, `limits.burst`); a line
sent faster would only wait in the server's socket buffer (it throttles, it never drops), so the
client keeps the line itself instead, where the user can see it queued (`sending 9 queued…`)
and where it is never lost with a connection.
"""

from __future__ import annotations

import time

from chatkit.ratelimit import TokenBucket


class Pacer:
    """The server's token bucket, mirrored on the client side. One owner (the link's lock)."""

    def __init__(self, rate: float, burst: int) -> None:
        # One token short of the server's burst: the two clocks never quite agree.
        self.bucket = TokenBucket(rate, max(1, burst - 1), time.monotonic())

    def delay(self) -> float:
        """0 when a line may go now (it is counted), else the seconds until one may."""
        return self.bucket.delay(time.monotonic())
