"""Durable record of ratings sent through RateBook.

The ratings go to a rating log (bookrec/ratinglog): by default the local JSON
lines file, fsynced before the call returns; with ``rating_log`` set, the
shared JetStream stream every replica tails (docs/fleet.md). ``append``
returns only once the log acknowledged, and raises LogUnavailable when it
cannot, so a rating is never answered OK and then lost. The trainer's next run
reads the same log. Writes run in a worker thread, never on the event loop.

A rating with a request_id is stored once: a retry of it (the client sent it again
after a lost reply) gets the first call's record back and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

from bookrec.ratinglog import FileRatingLog, LogUnavailable, Rating, RatingLog, Stored
from server.engine.errors import InvalidArgument

__all__ = ["FeedbackLog", "LogUnavailable"]


class FeedbackLog:
    def __init__(self, log: Path | RatingLog) -> None:
        self.log: RatingLog = FileRatingLog(log) if isinstance(log, Path) else log

    @property
    def path(self) -> Path | None:
        """The local file, when the log is one."""
        return self.log.path if isinstance(self.log, FileRatingLog) else None

    def append(
        self, user_id: str, book_id: str, rating: int, model_version: str, request_id: str = ""
    ) -> Stored:
        """Where the rating is, once stored; LogUnavailable otherwise. A request_id
        already stored for another rating is InvalidArgument (a client bug)."""
        new = Rating(user_id, book_id, rating, model_version, request_id=request_id)
        stored = self.log.append(new)
        if stored.repeat and not stored.rating.same_rating(new):
            first = stored.rating
            raise InvalidArgument(
                f"request_id {request_id!r} was already used for another rating "
                f"(book {first.book_id}, rating {first.rating}): send a new request_id "
                "for each new rating and the same one only when retrying it",
                "request_id",
            )
        return stored
