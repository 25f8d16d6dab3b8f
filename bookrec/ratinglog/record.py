"""One rating as every rating log stores it, and the errors every backend raises.

The record is the JSON line the file log has always held (docs/artifact-format.md,
Feedback log), so the file, the shared log and the trainer read one format.

A rating may carry the client's ``request_id`` (RateBookRequest.request_id), its
idempotency key: a retry sends it again, and every reader stores or counts a
(user, request_id) pair once (``dedup_key``), so a retry after a lost reply is not
a second rating.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Seconds a server remembers a request_id: a retry within them is answered as the first
# call was, with nothing stored (JetStream's duplicate window, the file log's index).
# The trainer drops repeats over the whole log, whenever they came.
DEDUP_SECONDS = 120.0


@dataclass(frozen=True)
class Rating:
    user_id: str
    book_id: str
    rating: int
    model_version: str = ""
    ts: float = field(default_factory=time.time)
    request_id: str = ""  # the client's idempotency key; empty: none

    def to_json(self) -> bytes:
        doc: dict[str, object] = {
            "ts": self.ts,
            "user_id": self.user_id,
            "book_id": self.book_id,
            "rating": self.rating,
            "model_version": self.model_version,
        }
        if self.request_id:  # lines without a key stay as they always were
            doc["request_id"] = self.request_id
        return json.dumps(doc, sort_keys=True).encode()

    def dedup_key(self) -> str:
        """One value per (user, request_id), safe as a NATS header; empty without a key.

        Scoped by user, so one user's key can never stand for another's rating."""
        if not self.request_id:
            return ""
        raw = f"{self.user_id}\n{self.request_id}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def same_rating(self, other: Rating) -> bool:
        """Whether ``other`` asks for this rating (what a retry must repeat)."""
        return (self.user_id, self.book_id, self.rating) == (
            other.user_id,
            other.book_id,
            other.rating,
        )

    @staticmethod
    def from_json(raw: bytes | str) -> Rating:
        """Raises BadRecord for anything that is not a rating record."""
        try:
            doc = json.loads(raw)
            return Rating(
                str(doc["user_id"]),
                str(doc["book_id"]),
                int(doc["rating"]),
                str(doc.get("model_version", "")),
                float(doc["ts"]) if "ts" in doc else 0.0,
                str(doc.get("request_id") or ""),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BadRecord(f"not a rating record: {e}") from e


@dataclass(frozen=True)
class Stored:
    """What ``append`` answers: where the rating is and the rating as stored there.

    ``repeat``: the request_id was stored before, nothing was written, and ``rating``
    is that first record (its model_version is what the first call answered)."""

    offset: int
    rating: Rating
    repeat: bool = False


class BadRecord(ValueError):
    """A stored record that is not a rating (skipped by tails, fatal to the trainer)."""


class LogUnavailable(Exception):
    """The log's engine did not acknowledge in time: the rating is NOT stored.

    The server answers UNAVAILABLE (the client may retry); never OK."""


# Called with (offset, rating) for each rating a tail reads, in log order.
Sink = Callable[[int, Rating], None]
