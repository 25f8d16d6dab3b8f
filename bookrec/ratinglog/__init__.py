"""The rating log shared by the server (RateBook appends, fold-in tails) and the
trainer (the next run reads it). ``open_log`` picks the backend from one setting:
empty for the local file (one machine), ``nats://HOST:PORT/STREAM`` for the
shared JetStream log (a fleet; docs/fleet.md)."""

from __future__ import annotations

from pathlib import Path

from bookrec.ratinglog.base import RatingLog
from bookrec.ratinglog.file import FileRatingLog
from bookrec.ratinglog.record import (
    DEDUP_SECONDS,
    BadRecord,
    LogUnavailable,
    Rating,
    Sink,
    Stored,
)

__all__ = [
    "DEDUP_SECONDS",
    "BadRecord",
    "FileRatingLog",
    "LogUnavailable",
    "Rating",
    "RatingLog",
    "Sink",
    "Stored",
    "open_log",
]


def open_log(url: str, default_file: Path) -> RatingLog:
    """``url`` empty: the file ``default_file``; ``file:///PATH``: that file;
    ``nats://...``: JetStream."""
    if not url:
        return FileRatingLog(default_file)
    if url.startswith("file://"):
        return FileRatingLog(Path(url.removeprefix("file://")))
    if url.startswith("nats://"):
        from bookrec.ratinglog.jetstream import JetStreamRatingLog

        return JetStreamRatingLog(url)
    raise ValueError(
        f"rating log {url!r}: expected empty (the local file), file:///PATH or "
        "nats://HOST:PORT/STREAM"
    )
