"""Hash an artifact once per machine, not once per worker.

Every worker opens every new version, and checking the sha256 of its files is
the largest single cost of a load (0.4 s of CPU at 300k books), paid while the
same cores serve. The first worker to open a version checks the hashes under a
lock and leaves a stamp: each file's size, mtime and inode as it found them.
The next worker, waiting on the lock meanwhile, sees the stamp, finds every file
unchanged and skips the hashes (sizes, dtypes and shapes are still checked).
A file replaced or rewritten since has another inode or mtime, so it is hashed
again.

``fingerprint`` is the same idea for a whole directory: whether a version that
failed to load has changed since, and so is worth trying again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from server.engine import filelock

STAMPS = "verified"

# (name, size, mtime_ns, inode) of every file in a directory, by name.
Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """What a directory's files look like now. A load that failed on these files fails
    again on them, so the manager retries a failed version only once this changes
    (a version still being written gains files; a repaired file gets a new mtime)."""
    out = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return ()
    for entry in entries:
        with contextlib.suppress(OSError):  # removed meanwhile: it is not there
            st = entry.stat()
            out.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def _identity(directory: Path, names: list[str]) -> dict[str, list[int]]:
    out = {}
    for name in names:
        st = (directory / name).stat()
        out[name] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


@contextlib.contextmanager
def hashes_needed(directory: Path, files: list[str], cache_dir: Path) -> Iterator[bool]:
    """Yields whether ``files`` of ``directory`` still need their hashes checked; if
    the block then ends without an error, they are stamped as checked."""
    stamps = cache_dir / STAMPS
    stamp = stamps / f"{directory.name}.json"
    with filelock.exclusive(stamps / f"{directory.name}.lock") as locked:
        try:
            now = _identity(directory, files)
        except OSError:
            now = None  # a missing file: let the full check say which
        seen = None
        with contextlib.suppress(OSError, ValueError):
            seen = json.loads(stamp.read_text())
        yield not locked or now is None or seen != now
        if locked and now is not None and seen != now:
            with contextlib.suppress(OSError):  # no stamp: the next worker hashes too
                partial = stamp.with_suffix(f".{os.getpid()}.tmp")
                partial.write_text(json.dumps(now))
                os.replace(partial, stamp)
                _forget_removed(stamps, directory.parent)


def _forget_removed(stamps: Path, root: Path) -> None:
    """Drop the stamps of versions that retention has since deleted."""
    for old in stamps.glob("*.json"):
        if not (root / old.stem).exists():
            with contextlib.suppress(OSError):
                old.unlink()
                (stamps / f"{old.stem}.lock").unlink(missing_ok=True)
