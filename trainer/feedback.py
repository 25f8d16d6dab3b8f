"""Ratings the server recorded through RateBook (docs/artifact-format.md, Feedback log).

They are merged with the file ratings so the next model learns from them; a
rating on a work is expressed through the work's first ISBN so it joins the
same consolidation as every other rating.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.catalog import Catalog
from trainer.errors import InputError
from trainer.raw import RawRating

FEEDBACK_FILE = Path("feedback") / "ratings.jsonl"


def read_feedback(path: Path, catalog: Catalog) -> tuple[list[RawRating], int]:
    """(rows, unknown): ratings on works this catalogue no longer has are counted."""
    if not path.is_file():
        return [], 0
    first_isbn = {w.work_id: w.isbns[0] for w in catalog.works if w.isbns}
    rows: list[RawRating] = []
    unknown = 0
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                user, book, rating = str(doc["user_id"]), str(doc["book_id"]), int(doc["rating"])
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"{path}:{lineno}: not a feedback record: {e}") from e
            isbn = first_isbn.get(book)
            if isbn is None:
                unknown += 1
                continue
            rows.append(RawRating(user, isbn, rating))
    return rows, unknown
