"""Owns the bundle being served.

Requests call ``current()`` once at their start and use only that bundle, so a
swap never changes the model under a running request. Loading happens in a
worker thread; the swap is one reference assignment. A failed load leaves the
current bundle serving and records why. Lifecycle states are data, visible to
the health/status reporting.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from bookrec import artifact
from bookrec.log import kv
from server.engine.bundle import Bundle
from server.engine.errors import NoModel
from server.engine.warmup import run_warmup

log = logging.getLogger("server.manager")


class State(enum.Enum):
    LOADING = "loading"
    AVAILABLE = "available"
    UNLOADING = "unloading"
    FAILED = "failed"


@dataclass(frozen=True)
class VersionStatus:
    version: str
    state: State
    error: str = ""


class ModelManager:
    """Thread-safety: ``current()`` is safe from any thread; loads are serialised
    by the caller (one loader at a time)."""

    def __init__(self, artifacts_dir: Path) -> None:
        self.artifacts_dir = artifacts_dir
        self._current: Bundle | None = None
        self._status: dict[str, VersionStatus] = {}
        # The lease tells the trainer's retention which version this process serves.
        self.lease_holder = f"{socket.gethostname()}-{os.getpid()}"

    def current(self) -> Bundle:
        bundle = self._current
        if bundle is None:
            raise NoModel(
                f"no model loaded yet from {self.artifacts_dir}; train one with `trainer run`"
            )
        return bundle

    @property
    def ready(self) -> bool:
        return self._current is not None

    def status(self) -> list[VersionStatus]:
        return sorted(self._status.values(), key=lambda s: s.version)

    def load(self, path: Path) -> bool:
        """Blocking: open, validate and warm a bundle, then swap it in."""
        version = path.name
        self._status[version] = VersionStatus(version, State.LOADING)
        start = time.perf_counter()
        try:
            bundle = Bundle.open(path)
            run_warmup(bundle)
        except Exception as e:
            self._status[version] = VersionStatus(version, State.FAILED, str(e))
            log.error("model load failed", extra=kv(version=version, error=str(e)))
            return False
        previous, self._current = self._current, bundle
        self._status[version] = VersionStatus(version, State.AVAILABLE)
        try:
            artifact.write_lease(self.artifacts_dir, self.lease_holder, version)
        except OSError as e:  # a read-only artifact store still serves
            log.warning("could not write lease", extra=kv(error=str(e)))
        if previous is not None:
            # In-flight requests keep their reference; the mapping goes with the last one.
            self._status.pop(previous.version, None)
        log.info(
            "model available",
            extra=kv(
                version=version,
                seconds=round(time.perf_counter() - start, 3),
                books=bundle.n_books,
                users=len(bundle.user_row),
            ),
        )
        return True

    def poll(self) -> bool:
        """Load the newest complete artifact if it is newer than the served one and has
        not failed before; True when a new bundle was swapped in."""
        versions = artifact.complete_versions(self.artifacts_dir)
        if not versions:
            return False
        newest = versions[-1]
        known = self._status.get(newest.name)
        current = self._current.version if self._current else ""
        if newest.name <= current or (known and known.state is State.FAILED):
            return False
        return self.load(newest)

    def close(self) -> None:
        artifact.remove_lease(self.artifacts_dir, self.lease_holder)

    def load_newest(self) -> bool:
        """Load the newest artifact that verifies; False when there is none."""
        found = artifact.newest_valid(self.artifacts_dir)
        if found is None:
            log.warning("no valid artifact", extra=kv(artifacts_dir=str(self.artifacts_dir)))
            return False
        path, _ = found
        if self._current is not None and self._current.version == path.name:
            return True
        return self.load(path)
