"""Token buckets: the one rate-limiting primitive of chatkit.

`TokenBucket` limits one stream (a client's lines); `KeyedLimiter` limits many sources at once
(discovery probes per address) with bounded memory and a global cap. Neither reads a clock of
its own choosing: callers pass `now` (or a clock), so tests can drive time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up. Not thread-safe: one owner."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, float(burst), now

    def refill(self, now: float) -> float:
        """Add what accrued since the last call; return the tokens now available."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        return self.tokens

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        if self.refill(now) < 1:
            return False
        self.tokens -= 1
        return True

    def delay(self, now: float) -> float:
        """0 when a token was spent now, else the seconds until one will be there (then ask
        again): what a sender that waits instead of dropping needs."""
        if self.take(now):
            return 0.0
        return (1.0 - self.tokens) / self.rate


class KeyedLimiter:
    """A token bucket per key (a source address) plus one global bucket; bounded memory.

    The global bucket caps the total, whatever the number of keys (spoofed sources). When the
    table is full, the key seen least recently makes room: refusing new keys instead would let
    anyone who spoofs `max_keys` sources shut everyone else out (an evicted key starts again
    with a full bucket; the global bucket still bounds the total). Used by one thread only.
    """

    def __init__(self, *, rate: float, burst: float, global_rate: float, global_burst: float,
                 max_keys: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = rate, burst
        self.max_keys = max(1, max_keys)
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()  # least recent first
        self._global = TokenBucket(global_rate, global_burst, clock())

    def allow(self, key: str) -> bool:
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)
        self._buckets[key] = bucket
        # The global bucket is only charged when the key's own bucket has a token.
        allowed = bucket.refill(now) >= 1 and self._global.take(now)
        if allowed:
            bucket.tokens -= 1
        return allowed
