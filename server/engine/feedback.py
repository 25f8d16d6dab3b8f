"""Durable record of ratings sent through RateBook.

Each rating is appended as one JSON line and fsynced before the call returns,
so an accepted rating survives a crash. The trainer's next run reads the log
(docs/artifact-format.md names the path). Writes are serialised by a lock and
run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


class FeedbackLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, user_id: str, book_id: str, rating: int, model_version: str) -> None:
        line = json.dumps(
            {
                "ts": time.time(),
                "user_id": user_id,
                "book_id": book_id,
                "rating": rating,
                "model_version": model_version,
            },
            sort_keys=True,
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
