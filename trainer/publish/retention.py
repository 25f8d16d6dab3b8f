"""Keep the newest N published artifacts plus any a server is using; delete the rest.

Deletion first renames a directory out of the version namespace (``.deleting-``),
which is atomic, so a server scanning the root never sees a half-deleted
artifact; then the files are removed.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from bookrec import artifact
from bookrec.log import kv
from trainer.errors import InputError

log = logging.getLogger("trainer.publish.retention")
DELETING_PREFIX = ".deleting-"
KEEP_REJECTED = 1


def check_keep(keep: int) -> None:
    """``--keep`` is at least 1 (checked before a scheduled run, not after it)."""
    if keep < 1:
        raise InputError(f"--keep {keep}: retention must keep at least 1 artifact")


def prune(root: Path, keep: int = 3) -> list[str]:
    """Remove old artifacts; returns the names removed."""
    check_keep(keep)
    versions = artifact.complete_versions(root)
    in_use = artifact.leased_versions(root)
    doomed = [p for p in versions[:-keep] if p.name not in in_use]
    rejected = sorted(p for p in root.glob(f"{artifact.REJECTED_PREFIX}*") if p.is_dir())
    doomed += rejected[: max(len(rejected) - KEEP_REJECTED, 0)]
    removed = []
    for path in doomed:
        target = root / f"{DELETING_PREFIX}{path.name.lstrip('.')}"
        os.rename(path, target)
        shutil.rmtree(target, ignore_errors=True)
        removed.append(path.name)
    for leftover in root.glob(f"{DELETING_PREFIX}*"):  # from a run killed mid-delete
        shutil.rmtree(leftover, ignore_errors=True)
    if removed:
        log.info("old artifacts removed", extra=kv(removed=removed, kept_in_use=sorted(in_use)))
    return removed
