"""The embedded default: one JSON line per rating in a local file, fsynced.

Every worker process on one machine appends to the same file (O_APPEND, one
write per line) and tails it by size, so a rating accepted by any worker is
seen by all of them on their next read. Offsets are byte positions.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from bookrec.log import kv
from bookrec.ratinglog.record import BadRecord, Rating, Sink

log = logging.getLogger("bookrec.ratinglog.file")


class FileRatingLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.describe = f"file {path}"
        self._write_lock = threading.Lock()
        self._tail_lock = threading.Lock()
        self._sink: Sink | None = None
        self._reset: Sink | None = None
        self._offset = 0
        self._inode = -1

    def append(self, rating: Rating) -> int:
        line = rating.to_json() + b"\n"
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                offset = os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return offset

    def read_from(self, offset: int = 0) -> Iterator[tuple[int, Rating]]:
        if not self.path.is_file():
            return
        with self.path.open("rb") as f:
            f.seek(offset)
            pos = offset
            for line in f:
                start, pos = pos, pos + len(line)
                if not line.endswith(b"\n"):
                    return  # a line still being written
                if line.strip():
                    yield start, Rating.from_json(line)

    def follow(self, sink: Sink, reset: Sink | None = None) -> None:
        self._sink, self._reset = sink, reset
        self.poll()

    def poll(self) -> None:
        """One ``stat`` when nothing was appended, so readers call it before every read."""
        sink = self._sink
        if sink is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if st.st_ino == self._inode and st.st_size == self._offset:
            return
        with self._tail_lock:
            if st.st_ino != self._inode or st.st_size < self._offset:  # new or rotated log
                self._offset, self._inode = 0, st.st_ino
                if self._reset is not None:
                    self._reset(0, Rating("", "", 0))
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read(st.st_size - self._offset)
            end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
            pos = self._offset
            for line in chunk[:end].splitlines(keepends=True):
                start, pos = pos, pos + len(line)
                if not line.strip():
                    continue
                try:
                    sink(start, Rating.from_json(line))
                except BadRecord as e:
                    log.warning(
                        "skipping bad feedback line", extra=kv(path=str(self.path), error=str(e))
                    )
            self._offset += end

    def caught_up(self) -> bool:
        return True  # ``poll`` reads to the end before every read

    def connected(self) -> bool:
        return True

    def close(self) -> None:
        pass
