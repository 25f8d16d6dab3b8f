"""Durable record of ratings sent through RateBook.

The ratings go to a rating log (bookrec/ratinglog): by default the local JSON
lines file, fsynced before the call returns; with ``rating_log`` set, the
shared JetStream stream every replica tails (docs/fleet.md). ``append``
returns only once the log acknowledged, and raises LogUnavailable when it
cannot, so a rating is never answered OK and then lost. The trainer's next run
reads the same log. Writes run in a worker thread, never on the event loop.
"""

from __future__ import annotations

from pathlib import Path

from bookrec.ratinglog import FileRatingLog, LogUnavailable, Rating, RatingLog

__all__ = ["FeedbackLog", "LogUnavailable"]


class FeedbackLog:
    def __init__(self, log: Path | RatingLog) -> None:
        self.log: RatingLog = FileRatingLog(log) if isinstance(log, Path) else log

    @property
    def path(self) -> Path | None:
        """The local file, when the log is one."""
        return self.log.path if isinstance(self.log, FileRatingLog) else None

    def append(self, user_id: str, book_id: str, rating: int, model_version: str) -> int:
        """The rating's offset in the log, once stored; LogUnavailable otherwise."""
        return self.log.append(Rating(user_id, book_id, rating, model_version))
