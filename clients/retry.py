"""Retries done by gRPC itself, from the channel's service config (gRFC A6): the
clients have no retry loop of their own.

Why gRPC's: the deadline a caller sets is the whole call's, every attempt and every
pause included (a loop of our own gave each attempt the full deadline, so a 5 s call
could last 15 s and more); the pause is gRPC's jittered exponential backoff; a
channel's retries are throttled once most recent attempts fail, so a client does
not triple the load on a server that is down or shedding; and the same request
bytes and metadata go out on each attempt (RateBook's ``request_id`` with them, so
the server stores a retried rating once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# gRPC's status names, as the service config spells them.
RETRYABLE = ("UNAVAILABLE",)


@dataclass(frozen=True)
class RetryPolicy:
    """``UNAVAILABLE`` (the server is down, restarting, draining or has no model yet)
    is retried, every other status is raised at once. ``attempts`` counts the first
    one. Before retry ``n`` (1-based) gRPC waits a uniformly random time in
    ``[0, min(max_delay, base_delay * multiplier ** (n - 1))]``. Every attempt and
    pause lies inside the call's one deadline: when it passes, the call ends with
    ``DEADLINE_EXCEEDED`` whatever attempt it is on.

    Throttling, per channel: a bucket starts with ``max_tokens`` tokens; each
    attempt that fails with ``UNAVAILABLE`` takes one (down to 0) and each OK reply
    gives back ``token_ratio``. While it holds ``max_tokens / 2`` or less, calls get
    no retry (their first attempt still goes out). With the defaults, five failed
    attempts in a row stop retries; from empty, 51 OK replies bring them back."""

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 1.0
    multiplier: float = 2.0
    max_tokens: int = 10
    token_ratio: float = 0.1

    def service_config(self) -> dict[str, Any]:
        """The channel's service config: every method of every service (``name: [{}]``)."""
        if self.attempts < 2:
            return {}
        retry = {
            "maxAttempts": self.attempts,
            "initialBackoff": f"{self.base_delay:g}s",
            "maxBackoff": f"{self.max_delay:g}s",
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": list(RETRYABLE),
        }
        return {
            "methodConfig": [{"name": [{}], "retryPolicy": retry}],
            "retryThrottling": {"maxTokens": self.max_tokens, "tokenRatio": self.token_ratio},
        }

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel arguments that make gRPC retry by this policy (and only by it: a
        service config from DNS is not looked up)."""
        config = self.service_config()
        return [
            ("grpc.enable_retries", 1 if config else 0),
            ("grpc.service_config", json.dumps(config)),
            ("grpc.service_config_disable_resolution", 1),
        ]


NO_RETRY = RetryPolicy(attempts=1)
