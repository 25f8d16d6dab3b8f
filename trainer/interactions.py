"""Turn rating rows into one interaction per (user, work).

Ratings on different editions of one work are consolidated: an explicit rating
wins over an implicit one (0), and the highest explicit rating wins among
several. Rows whose ISBN is invalid or names no known book are counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trainer.isbn import normalize_isbn
from trainer.raw import RawRating


@dataclass(frozen=True)
class Interactions:
    user_ids: list[str]  # user row -> external id, sorted
    users: npt.NDArray[np.int32]  # per interaction
    items: npt.NDArray[np.int32]
    ratings: npt.NDArray[np.int8]  # 0 implicit, 1..10 explicit
    rows_in: int
    invalid_isbn: int
    unknown_book: int
    merged: int  # rows folded into another row of the same user and work

    def fingerprint(self) -> str:
        """Identifies exactly this interaction set (used as the split id for now)."""
        h = hashlib.sha256()
        for arr in (self.users, self.items, self.ratings):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(self.user_ids).encode())
        return h.hexdigest()[:16]


def consolidate(rows: Sequence[RawRating], isbn_to_item: dict[str, int]) -> Interactions:
    best: dict[tuple[str, int], int] = {}
    invalid = unknown = 0
    for row in rows:
        isbn = normalize_isbn(row.isbn)
        if isbn is None:
            invalid += 1
            continue
        item = isbn_to_item.get(isbn)
        if item is None:
            unknown += 1
            continue
        key = (row.user_id, item)
        prev = best.get(key)
        if prev is None or row.rating > prev:
            best[key] = row.rating
    kept = len(best)
    user_ids = sorted({u for u, _ in best})
    user_row = {u: i for i, u in enumerate(user_ids)}
    triples = sorted((user_row[u], i, r) for (u, i), r in best.items())
    arr = np.array(triples, dtype=np.int64).reshape(-1, 3)
    return Interactions(
        user_ids=user_ids,
        users=arr[:, 0].astype(np.int32),
        items=arr[:, 1].astype(np.int32),
        ratings=arr[:, 2].astype(np.int8),
        rows_in=len(rows),
        invalid_isbn=invalid,
        unknown_book=unknown,
        merged=len(rows) - invalid - unknown - kept,
    )
