"""Ratings the server recorded through RateBook (docs/artifact-format.md, Feedback log).

They join the file ratings so the next model learns from them. They name works
directly, so they reach consolidation as ``book_key = "work:<id>"``. One
machine's server writes them to ``<data>/feedback/ratings.jsonl``; a fleet's to
the shared rating log (``rating_log``, docs/fleet.md), which each run reads
whole, after the local file when one is there (ratings from before the switch).

A rating is counted once per (user, request_id): a client's retry after a lost
reply that reached a log twice (after the server's 2-minute window, or once in
each log) would otherwise add an implicit rating's weight twice, since the server
stamps each call with its own time and cleaning drops only exact duplicates.
"""

from __future__ import annotations

from pathlib import Path

from bookrec.ratinglog import BadRecord, FileRatingLog, LogUnavailable, Rating, RatingLog, open_log
from trainer.cleaning.catalog import WORK_KEY_PREFIX
from trainer.errors import InputError
from trainer.sources.raw import RawRating, ReadReport

FEEDBACK_FILE = Path("feedback") / "ratings.jsonl"


def read_feedback(path: Path, rating_log: str = "") -> tuple[list[RawRating], ReadReport]:
    report = ReadReport(path.name if not rating_log else f"{path.name} + {rating_log}")
    rows: list[RawRating] = []
    logs: list[RatingLog] = []
    seen: set[str] = set()  # dedup keys (user, request_id) counted so far
    if path.is_file():
        logs.append(FileRatingLog(path))
    if rating_log:
        try:
            logs.append(open_log(rating_log, path))
        except ValueError as e:
            raise InputError(f"rating_log: {e}") from e
    for log in logs:
        try:
            for _offset, r in log.read_from(0):
                report.lines += 1
                key = r.dedup_key()
                if key and key in seen:
                    continue
                seen.add(key)
                rows.append(_raw(r))
        except BadRecord as e:
            raise InputError(f"{log.describe}: not a feedback record: {e}") from e
        except LogUnavailable as e:
            raise InputError(
                f"{e}; the run cannot include the served ratings: start the engine, or "
                "unset BOOKREC_TRAIN_RATING_LOG to train without them"
            ) from e
        finally:
            log.close()
    report.rows = len(rows)
    if report.rows < report.lines:
        report.why = "a retried RateBook (same user and request_id) counted once"
    return rows, report


def _raw(r: Rating) -> RawRating:
    ts = int(r.ts) if r.ts else None
    return RawRating(r.user_id, "", r.rating, book_key=WORK_KEY_PREFIX + r.book_id, timestamp=ts)
