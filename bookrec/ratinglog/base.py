"""The engine-neutral rating log: what the server appends to and everyone tails.

``append`` returns only after the engine has acknowledged the rating durably
(fsync for the file, a JetStream PubAck for NATS) and raises LogUnavailable
otherwise; a rating whose request_id was stored in the last DEDUP_SECONDS is not
stored again, and ``append`` answers with the first record. ``read_from`` is one
pass from an offset to the log's end (the trainer). ``follow`` starts delivering
every rating, old and new, to a sink (the server's fold-in overlay); ``poll`` lets
a pull-style backend deliver now.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from bookrec.ratinglog.record import Rating, Sink, Stored


class RatingLog(Protocol):
    #: where the log lives, for messages and the status page
    describe: str

    def append(self, rating: Rating) -> Stored:
        """Store ``rating``; where it is once the engine acknowledged it (or, for a
        repeated request_id, where the first one is)."""
        ...

    def read_from(self, offset: int = 0) -> Iterator[tuple[int, Rating]]:
        """Every rating at or after ``offset`` up to the end as of the call."""
        ...

    def follow(self, sink: Sink, reset: Sink | None = None) -> None:
        """Deliver every rating from the start, then each new one, to ``sink``.

        ``reset`` (called with (0, placeholder)) tells the sink to forget what it
        holds: the file log was replaced."""
        ...

    def poll(self) -> None:
        """Deliver what is new now (the file backend reads here; a push one needn't)."""
        ...

    def caught_up(self) -> bool:
        """True once the follower has read everything that was in the log when it
        started (readiness waits for this)."""
        ...

    def connected(self) -> bool:
        """Whether the engine is reachable now (appends fail fast when not)."""
        ...

    def close(self) -> None: ...
