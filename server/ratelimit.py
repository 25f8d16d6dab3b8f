"""Per-key token buckets: one client cannot take the whole server for itself.

Each key has a bucket of ``burst`` tokens refilled at ``rate`` per second; a call
takes one token or is refused with how long until one is back (the caller sends
it as ``retry-after-ms``). Buckets live in each worker process: with N workers a
key may reach N x rate in total when its connections land on every worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is back."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Buckets by key id, made on first use. ``rate <= 0`` means unlimited."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key_id: str, rate: float, burst: float) -> float:
        """0 when the call may go ahead, else the seconds to wait before retrying."""
        if rate <= 0:
            return 0.0
        burst = max(burst if burst > 0 else rate, 1.0)
        now = self.clock()
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            # New key, or its limits changed in the keys file: start full.
            bucket = self._buckets[key_id] = TokenBucket(rate, burst, burst, now)
        return bucket.take(now)
