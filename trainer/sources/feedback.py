"""Ratings the server recorded through RateBook (docs/artifact-format.md, Feedback log).

They join the file ratings so the next model learns from them. They name works
directly, so they reach consolidation as ``book_key = "work:<id>"``.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.cleaning.catalog import WORK_KEY_PREFIX
from trainer.errors import InputError
from trainer.sources.raw import RawRating, ReadReport

FEEDBACK_FILE = Path("feedback") / "ratings.jsonl"


def read_feedback(path: Path) -> tuple[list[RawRating], ReadReport]:
    report = ReadReport(path.name)
    rows: list[RawRating] = []
    if not path.is_file():
        return rows, report
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            report.lines += 1
            try:
                doc = json.loads(line)
                user, book, rating = str(doc["user_id"]), str(doc["book_id"]), int(doc["rating"])
                ts = int(doc["ts"]) if "ts" in doc else None
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"{path}:{lineno}: not a feedback record: {e}") from e
            rows.append(RawRating(user, "", rating, book_key=WORK_KEY_PREFIX + book, timestamp=ts))
    report.rows = len(rows)
    return rows, report
