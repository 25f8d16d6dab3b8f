"""The request_ids a log stored in the last ``DEDUP_SECONDS``, with their first record.

A retry of a rating comes seconds after the first call, so a window that long
answers every retry while memory stays bounded by the rating rate (about 200
bytes a rating: 24 MB at 1,000 ratings/s). Ratings older than the window are not
remembered; the trainer still counts a late repeat once.
"""

from __future__ import annotations

import time
from collections import deque

from bookrec.ratinglog.record import DEDUP_SECONDS, Rating, Stored


class RecentKeys:
    def __init__(self, window: float = DEDUP_SECONDS) -> None:
        self.window = window
        self._first: dict[str, Stored] = {}
        self._order: deque[tuple[float, str]] = deque()  # (ts, key), oldest first

    def get(self, key: str) -> Stored | None:
        """The first record stored under ``key``, as a repeat; None when not seen."""
        return self._first.get(key)

    def add(self, offset: int, rating: Rating) -> None:
        """Remember ``rating`` at ``offset``; a key seen before keeps its first record."""
        key = rating.dedup_key()
        if not key or key in self._first or rating.ts < time.time() - self.window:
            return
        self._first[key] = Stored(offset, rating, repeat=True)
        self._order.append((rating.ts, key))

    def prune(self) -> None:
        """Forget the keys older than the window."""
        oldest = time.time() - self.window
        while self._order and self._order[0][0] < oldest:
            _, key = self._order.popleft()
            self._first.pop(key, None)

    def clear(self) -> None:
        self._first.clear()
        self._order.clear()

    def __len__(self) -> int:
        return len(self._first)
