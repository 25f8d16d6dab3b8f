"""The embedded default: one JSON line per rating in a local file, fsynced.

Every worker process on one machine appends to the same file (O_APPEND, one
write per line, under an exclusive ``flock``) and tails it by size, so a rating
accepted by any worker is seen by all of them on their next read. Offsets are
byte positions.

Under the lock an append first reads what other workers appended since its last
look, so a request_id stored by any worker in the last ``DEDUP_SECONDS`` is
answered with its first record and not written again. A write or fsync that fails
(disk full, I/O error) is cut off again and raises LogUnavailable: no partial line
is left for the next append to run into, and every acknowledged line stays.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from bookrec.log import kv
from bookrec.ratinglog.recent import RecentKeys
from bookrec.ratinglog.record import BadRecord, LogUnavailable, Rating, Sink, Stored

log = logging.getLogger("bookrec.ratinglog.file")

CHUNK = 1 << 20  # bytes read at a time when indexing or looking for a torn line
# What an operator should read into the errno of a failed write.
_CAUSE = {
    errno.ENOSPC: "its disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EIO: "the disk reported an I/O error",
    errno.EROFS: "its file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


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
        self._recent = RecentKeys()  # request_ids of the lines up to _indexed
        self._indexed = 0
        self._indexed_inode = -1

    def append(self, rating: Rating) -> Stored:
        with self._write_lock:
            try:
                return self._append(rating, rating.to_json() + b"\n")
            except OSError as e:
                raise self._not_stored(e) from e

    def _append(self, rating: Rating, line: bytes) -> Stored:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the other workers append to this file too
            end = self._drop_torn_tail(fd)
            key = rating.dedup_key()
            if key:
                self._index(fd, end)
                first = self._recent.get(key)
                if first is not None:
                    return first
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # the error below says what matters
                    os.ftruncate(fd, end)
                raise
            if key and self._indexed == end:
                self._recent.add(end, rating)
                self._indexed = end + len(line)
            return Stored(end, rating)
        finally:
            os.close(fd)  # releases the lock

    def _index(self, fd: int, end: int) -> None:
        """Learn the request_ids of the lines other workers appended since the last look."""
        inode = os.fstat(fd).st_ino
        if inode != self._indexed_inode or end < self._indexed:  # a new or replaced log
            self._recent.clear()
            self._indexed, self._indexed_inode = 0, inode
        self._recent.prune()
        for offset, raw in _lines(fd, self._indexed, end):
            if b'"request_id"' not in raw:
                continue
            with contextlib.suppress(BadRecord):  # the tails warn about bad lines
                self._recent.add(offset, Rating.from_json(raw))
        self._indexed = end

    def _drop_torn_tail(self, fd: int) -> int:
        """The log's end; a last line without its newline is cut off first.

        Only a writer that died mid-line or a failed cut leaves one (all writers hold
        the lock), and it was never acknowledged; left there, the next line would be
        glued to it and both would be lost to every reader."""
        end = os.fstat(fd).st_size
        if end == 0 or os.pread(fd, 1, end - 1) == b"\n":
            return end
        keep = _after_last_newline(fd, end)
        os.ftruncate(fd, keep)
        log.warning(
            "cut a torn last line off the rating log",
            extra=kv(path=str(self.path), bytes=end - keep),
        )
        return keep

    def _not_stored(self, e: OSError) -> LogUnavailable:
        code = errno.errorcode.get(e.errno or 0, str(e.errno))
        cause = _CAUSE.get(e.errno or 0, e.strerror or str(e))
        log.error(
            "rating log cannot be written",
            extra=kv(path=str(self.path), errno=code, error=str(e)),
        )
        return LogUnavailable(
            f"rating not stored: the rating log {self.path} cannot be written ({cause}; "
            f"{code}). Ratings acknowledged before are safe. Operator: free space on, or "
            f"repair, the disk holding {self.path.parent}; client: retry later"
        )

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


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` may write part of ``data`` (a disk filling up); the rest raises."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _lines(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the whole lines in [start, end), read a chunk at a time."""
    carry, pos = b"", start
    while pos < end:
        chunk = carry + os.pread(fd, min(CHUNK, end - pos), pos)
        pos += len(chunk) - len(carry)
        if not chunk or len(chunk) == len(carry):
            return  # the file shrank under us: the next append starts over
        cut = chunk.rfind(b"\n") + 1
        first = pos - len(chunk)
        for line in chunk[:cut].splitlines(keepends=True):
            yield first, line
            first += len(line)
        carry = chunk[cut:]


def _after_last_newline(fd: int, end: int) -> int:
    """The offset just past the last newline before ``end`` (0 when there is none)."""
    pos = end
    while pos > 0:
        start = max(0, pos - CHUNK)
        i = os.pread(fd, pos - start, start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0
