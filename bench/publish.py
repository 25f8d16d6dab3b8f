"""Publish a copy of an artifact under a newer version, the way the trainer publishes.

The copy is written under ``<root>/.tmp-<version>`` (hidden from the server),
its manifest gets the new ``model_version``, every file is fsynced, and one
rename makes it visible: the server must see it whole or not at all. Only the
manifest changes; it is not among the files it hashes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from bookrec import artifact
from bookrec.artifact import MANIFEST, TMP_PREFIX, complete_versions, new_model_version

_STAMP = "%Y%m%dT%H%M%SZ"


def next_version(current: str, seed_text: str = "bench") -> str:
    """A valid version that sorts after ``current`` even when the clock has not moved on."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        last = dt.datetime.strptime(current.split("-", maxsplit=1)[0], _STAMP).replace(
            tzinfo=dt.UTC
        )
    except ValueError:
        last = now - dt.timedelta(seconds=1)
    when = max(now, last + dt.timedelta(seconds=1))
    return new_model_version(f"{seed_text}|{current}", when)


def publish_copy(root: Path, source: Path | None = None) -> str:
    """Copy ``source`` (default: the newest complete artifact in ``root``) as a new version.

    Returns the new version, visible in ``root`` when this returns."""
    versions = complete_versions(root)
    if source is None:
        if not versions:
            raise FileNotFoundError(f"no complete artifact in {root}")
        source = versions[-1]
    newest = versions[-1].name if versions else source.name
    version = next_version(max(newest, source.name))
    tmp = root / f"{TMP_PREFIX}{version}"
    shutil.copytree(source, tmp)
    manifest = tmp / MANIFEST
    doc = json.loads(manifest.read_text())
    doc["model_version"] = version
    manifest.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    for path in tmp.iterdir():
        artifact.fsync(path)
    artifact.fsync(tmp, directory=True)
    os.rename(tmp, root / version)
    artifact.fsync(root, directory=True)
    return version
