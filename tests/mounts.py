"""A small tmpfs for tests that need a file system that fills up.

``tmpfs(path, size)`` mounts one on ``path`` and always unmounts it afterwards.
Mounting needs root (CI runs as root) and the ``mount`` command; ``unavailable``
says why it cannot be done here, and ``skip_reason`` is that message for a skip,
except where ``BOOKREC_REQUIRE_MOUNT=1`` (CI, .ci/run): there the tests run and
fail with it, so a missing prerequisite never passes as a skip (the same rule as
the network-namespace tests, tests/netns.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REQUIRE_ENV = "BOOKREC_REQUIRE_MOUNT"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: command not found")


def unavailable() -> str | None:
    """Why a tmpfs cannot be mounted here, or None when it can."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mounting a tmpfs needs the mount command (Debian: apt-get install mount)"
    with tempfile.TemporaryDirectory(prefix="bookrec-mount-probe-") as probe:
        done = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe)
        if done.returncode != 0:
            return (
                f"cannot mount a tmpfs ({done.stderr.strip()}): run as root (CI does) "
                "or with CAP_SYS_ADMIN"
            )
        _run("umount", probe)
    return None


def skip_reason() -> str | None:
    """``unavailable()``, or None where ``BOOKREC_REQUIRE_MOUNT=1`` demands the tests run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        return None
    return unavailable()


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's syntax: 64k, 1m) on ``path``, made if missing."""
    path.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    if done.returncode != 0:
        raise RuntimeError(
            f"mount -t tmpfs on {path}: {done.stderr.strip() or done.returncode} "
            f"({unavailable() or 'mount failed'})"
        )
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))  # still busy: detach it now, freed when let go
