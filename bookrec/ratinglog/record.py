"""One rating as every rating log stores it, and the errors every backend raises.

The record is the JSON line the file log has always held (docs/artifact-format.md,
Feedback log), so the file, the shared log and the trainer read one format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rating:
    user_id: str
    book_id: str
    rating: int
    model_version: str = ""
    ts: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        doc = {
            "ts": self.ts,
            "user_id": self.user_id,
            "book_id": self.book_id,
            "rating": self.rating,
            "model_version": self.model_version,
        }
        return json.dumps(doc, sort_keys=True).encode()

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
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BadRecord(f"not a rating record: {e}") from e


class BadRecord(ValueError):
    """A stored record that is not a rating (skipped by tails, fatal to the trainer)."""


class LogUnavailable(Exception):
    """The log's engine did not acknowledge in time: the rating is NOT stored.

    The server answers UNAVAILABLE (the client may retry); never OK."""


# Called with (offset, rating) for each rating a tail reads, in log order.
Sink = Callable[[int, Rating], None]
