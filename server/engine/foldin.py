"""Real-time fold-in: new ratings change a user's ALS vector without retraining.

Ratings sent through RateBook go to the feedback log (server/engine/feedback.py),
which every worker process appends to and the trainer's next run ingests.
``RatingsOverlay`` tails that log, so a rating accepted by any worker is seen by
all of them on the user's next request. ``fold_in`` (bookrec/fold_in.py, shared
with the trainer) then solves the user's vector against the fixed item factors
exactly as ALS's user step does, over the user's trained ratings plus the new
ones.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bookrec.fold_in import fold_in
from bookrec.log import kv

__all__ = ["RatingsOverlay", "fold_in"]

log = logging.getLogger("server.foldin")

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


class RatingsOverlay:
    """Per-user ratings from the feedback log, newest rating per book winning.

    ``refresh`` costs one ``stat`` when nothing was appended, so handlers call it
    before every read. Thread-safe.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._offset = 0
        self._inode = -1
        self._by_user: dict[str, dict[str, int]] = {}

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if st.st_ino == self._inode and st.st_size == self._offset:
            return
        with self._lock:
            if st.st_ino != self._inode or st.st_size < self._offset:  # new or rotated log
                self._offset, self._inode, self._by_user = 0, st.st_ino, {}
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read(st.st_size - self._offset)
            end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
            for line in chunk[:end].splitlines():
                self._add(line)
            self._offset += end

    def _add(self, line: bytes) -> None:
        try:
            doc = json.loads(line)
            user, book, rating = str(doc["user_id"]), str(doc["book_id"]), int(doc["rating"])
        except (ValueError, KeyError, TypeError) as e:
            log.warning("skipping bad feedback line", extra=kv(path=str(self.path), error=str(e)))
            return
        self._by_user.setdefault(user, {})[book] = rating

    def ratings_of(self, user_id: str) -> Mapping[str, int]:
        """book_id -> rating; a copy, so callers never see it change under them."""
        with self._lock:
            return dict(self._by_user.get(user_id, {}))
