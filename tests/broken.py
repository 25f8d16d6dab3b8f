"""Broken copies of a good artifact, for the fault tests, and reading the server's log.

``publish_broken`` writes the copy the way the trainer publishes (a hidden
directory, then one rename), so the server sees the fault whole, never a copy
half-made by the test. A ``Break`` edits the copy's files and its manifest
document (and returns the manifest's text when it breaks that itself);
``save_array`` and ``rehash`` keep the manifest's sha256 and size in step with
an edited file, so the fault is in the values and not a checksum.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.publish import next_version
from bookrec.artifact import MANIFEST, TMP_PREFIX, complete_versions

# Edits (directory, manifest document); returns None, or the manifest text to write.
Break = Callable[[Path, dict[str, Any]], str | None]


def rehash(directory: Path, doc: dict[str, Any], name: str) -> None:
    """Make the manifest's sha256 and size of ``name`` match the file as it is now."""
    data = (directory / name).read_bytes()
    entry = doc["files"][name]
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    entry["bytes"] = len(data)


def save_array(
    directory: Path, doc: dict[str, Any], name: str, array: npt.NDArray[Any], meta: bool = False
) -> None:
    """Replace ``name.npy`` and rehash it; ``meta``: the manifest's shape and dtype too."""
    np.save(directory / f"{name}.npy", array, allow_pickle=False)
    rehash(directory, doc, f"{name}.npy")
    if meta:
        doc["files"][f"{name}.npy"].update(shape=list(array.shape), dtype=str(array.dtype))


def load(directory: Path, name: str) -> npt.NDArray[Any]:
    out: npt.NDArray[Any] = np.load(directory / f"{name}.npy", allow_pickle=False).copy()
    return out


def publish_broken(root: Path, source: Path, breaks: Break, version: str | None = None) -> str:
    """A copy of ``source`` as a new version (newer than any in ``root`` unless
    ``version`` is given), broken by ``breaks`` before it becomes visible."""
    if version is None:
        newest = max([p.name for p in complete_versions(root)] + [source.name])
        version = next_version(newest, "broken")
    tmp = root / f"{TMP_PREFIX}{version}"
    shutil.copytree(source, tmp)
    doc = json.loads((tmp / MANIFEST).read_text())
    doc["model_version"] = version
    text = breaks(tmp, doc)
    (tmp / MANIFEST).write_text(
        json.dumps(doc, indent=2, sort_keys=True) + "\n" if text is None else text
    )
    tmp.rename(root / version)
    return version


def log_lines(log: Path, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``log`` whose event is ``event`` (other lines skipped)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") == event:
            out.append(doc)
    return out


def wait_for_log(log: Path, event: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
    """The first line of ``event`` with ``fields``, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while True:
        for doc in log_lines(log, event):
            if all(doc.get(k) == v for k, v in fields.items()):
                return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {event!r} line with {fields} in {log}")
        time.sleep(0.05)
