"""Owns the bundle being served (TF Serving's manager: one serving slot, one standby).

Requests call ``current()`` once at their start and use only that bundle, so a
swap never changes the model under a running request. ``poll`` asks
server/engine/decisions.py what to serve, loads that version into the standby
slot (a worker thread: open, verify, warm up), then swaps it in with one
reference assignment. The old bundle is UNLOADING until the last request
holding it drops its reference, and then it is gone (its mappings close with
it). A failed load leaves the current bundle serving and records why, with
the version directory's fingerprint (verified.py): the version is tried again
once its files change, so a version seen half-written is loaded when it is
whole, by every worker alike. Pinning loads the version into the standby slot
first, so a version that cannot serve is refused before any worker follows it.
Lifecycle states are data, shown by the admin status RPC.
"""

from __future__ import annotations

import enum
import gc
import logging
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from bookrec import artifact
from bookrec.log import kv
from server import metrics
from server.engine import control, filelock
from server.engine.bundle import Bundle
from server.engine.decisions import decide, rollback_target
from server.engine.errors import EngineError, InvalidArgument, NoModel, NotFound
from server.engine.verified import Fingerprint, fingerprint
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
    # FAILED: the directory as the failed load found it; a change means "try again".
    files: Fingerprint | None = None


class VersionFailed(EngineError):
    """An operator asked for a version that cannot serve (the handlers answer
    FAILED_PRECONDITION)."""


class NoOlderVersion(EngineError):
    """Rollback with no loadable version older than the serving one: a valid request the
    artifact root cannot grant now (the handlers answer FAILED_PRECONDITION)."""


@dataclass(frozen=True)
class _Standby:
    """A bundle opened and warmed up but not yet serving (a pin's version)."""

    bundle: Bundle
    files: Fingerprint


class ModelManager:
    """``current()`` is safe from any thread; loads are serialised by a lock."""

    def __init__(
        self,
        artifacts_dir: Path,
        compile_reranker: bool = True,
        control_store: control.ControlStore | None = None,
    ) -> None:
        self.artifacts_dir = artifacts_dir
        # Where pins live: the control file (one machine) or a fleet's shared store.
        self.control = control_store or control.FileControl(artifacts_dir)
        # Hash stamps and compiled reranker trees, beside the artifacts, shared by workers.
        self.cache_dir = artifacts_dir / ".cache"
        self.compile_reranker = compile_reranker
        self._current: Bundle | None = None
        self._status: dict[str, VersionStatus] = {}
        self._standby: _Standby | None = None
        self._load_lock = threading.Lock()
        self.loading = False  # a load is running in this process (handlers read it)
        self.last_decision = ""
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

    @property
    def serving_version(self) -> str | None:
        return self._current.version if self._current else None

    @property
    def pinned(self) -> str | None:
        return self.control.read_pin()

    def status(self) -> list[VersionStatus]:
        return sorted(self._status.values(), key=lambda s: s.version)

    def _failed(self) -> set[str]:
        """Versions that failed on the files they still hold. One whose files changed
        since is forgotten (untried again), so the rules may choose it once more."""
        out = set()
        for version, status in list(self._status.items()):
            if status.state is not State.FAILED:
                continue
            if status.files is not None and fingerprint(self._dir(version)) != status.files:
                self._status.pop(version, None)
                log.info("failed version changed: retry", extra=kv(version=version))
                continue
            out.add(version)
        return out

    def _dir(self, version: str) -> Path:
        return self.artifacts_dir / version

    def _available(self) -> list[str]:
        return [p.name for p in artifact.complete_versions(self.artifacts_dir)]

    def poll(self) -> bool:
        """Serve what the rules say; True when a new bundle was swapped in."""
        with self._load_lock:
            tried: set[str] = set()  # once per poll each, even if its files keep changing
            while True:  # a failed load joins ``tried``, so this ends
                decision = decide(
                    self.serving_version, self._available(), self._failed() | tried, self.pinned
                )
                if decision.reason != self.last_decision:
                    log.info(
                        "serving decision", extra=kv(load=decision.load, reason=decision.reason)
                    )
                    self.last_decision = decision.reason
                standby, self._standby = self._standby, None  # used now or never
                if decision.load is None:
                    return False
                if self._load(self._dir(decision.load), standby):
                    return True
                tried.add(decision.load)

    def _open(self, path: Path) -> tuple[Bundle | None, Fingerprint]:
        """Open, verify and warm up ``path``; on failure record it (with the files it
        saw) and return None. The fingerprint is taken first: a file that changes
        during the load makes the next poll try again."""
        version = path.name
        files = fingerprint(path)
        self._status[version] = VersionStatus(version, State.LOADING)
        try:
            # One worker loads at a time: the others serve on undisturbed meanwhile
            # (swap-window p99 2.3x -> 1.4x steady state, docs/serving.md).
            with filelock.exclusive(self.cache_dir / "load.lock"):
                self.loading = True  # requests go to threads while this one works
                start = time.perf_counter()  # not the wait for the lock
                bundle = Bundle.open(
                    path, cache_dir=self.cache_dir, compile_reranker=self.compile_reranker
                )
                run_warmup(bundle)
        except Exception as e:
            self._status[version] = VersionStatus(version, State.FAILED, str(e), files)
            log.error("model load failed", extra=kv(version=version, error=str(e)))
            metrics.model_load_failed()
            return None, files
        finally:
            self.loading = False
        metrics.MODEL_LOAD_SECONDS.observe(time.perf_counter() - start)
        return bundle, files

    def _load(self, path: Path, standby: _Standby | None = None) -> bool:
        version = path.name
        start = time.perf_counter()
        bundle: Bundle | None = None
        if standby and standby.bundle.version == version and fingerprint(path) == standby.files:
            bundle = standby.bundle
        else:
            bundle, _ = self._open(path)
        if bundle is None:
            return False
        # What the load left alive lives as long as the model: out of the cyclic
        # collector's sight, later collections stay short (steady p99.9 22 -> 15 ms).
        gc.freeze()
        previous, self._current = self._current, bundle
        self._status[version] = VersionStatus(version, State.AVAILABLE)
        try:
            artifact.write_lease(self.artifacts_dir, self.lease_holder, version)
        except OSError as e:  # a read-only artifact store still serves
            log.warning("could not write lease", extra=kv(error=str(e)))
        metrics.model_loaded(version, previous.version if previous else None)
        if previous is not None:
            self._retire(previous)
        log.info(
            "model available",
            extra=kv(
                version=version,
                seconds=round(time.perf_counter() - start, 3),
                books=bundle.n_books,
                users=len(bundle.user_row),
                reranker=_reranker_kind(bundle),
            ),
        )
        return True

    def _retire(self, bundle: Bundle) -> None:
        """UNLOADING until the last request holding ``bundle`` lets go of it."""
        version = bundle.version
        self._status[version] = VersionStatus(version, State.UNLOADING)

        def unloaded() -> None:
            status = self._status.get(version)
            if status is not None and status.state is State.UNLOADING:
                del self._status[version]
            log.info("model unloaded", extra=kv(version=version))

        weakref.finalize(bundle, unloaded)

    def pin(self, version: str | None, by: str) -> None:
        """Operator command for every worker (the control file); ``None`` unpins.

        The version must be able to serve before the file changes, or every worker
        would follow a pin it cannot load: a name that is no version is
        InvalidArgument, an absent one NotFound, one that fails to load (now, in
        this worker's standby slot, or before) VersionFailed."""
        if version is not None:
            with self._load_lock:
                self._check_servable(version)
        self.control.write_pin(version, by)

    def _check_servable(self, version: str) -> None:
        if not artifact.is_model_version(version):
            raise InvalidArgument(
                f"{version!r} is not a model version (like 20260101T000000Z-1a2b3c4d)"
            )
        if version not in self._available():
            raise NotFound(
                f"version {version!r} is not a complete artifact in {self.artifacts_dir}"
            )
        if version == self.serving_version:
            return
        if version not in self._failed():
            before = self._status.get(version)  # UNLOADING: still held by old requests
            bundle, files = self._open(self._dir(version))
            if bundle is not None:  # serving is the next poll's job (the swap)
                if before is None:
                    del self._status[version]
                else:
                    self._status[version] = before
                self._standby = _Standby(bundle, files)
                return
        error = self._status[version].error
        raise VersionFailed(f"version {version} cannot serve: it failed to load: {error}")

    def rollback(self, by: str) -> str:
        """Pin the newest loadable version older than the one serving; return it."""
        try:
            target = rollback_target(self.serving_version, self._available(), self._failed())
        except LookupError as e:
            raise NoOlderVersion(f"{e}: nothing changed; pin a version instead") from e
        self.pin(target, by)
        return target

    def close(self) -> None:
        artifact.remove_lease(self.artifacts_dir, self.lease_holder)


def _reranker_kind(bundle: Bundle) -> str:
    if bundle.reranker is None:
        return "none"
    return "compiled" if bundle.reranker.compiled else "lightgbm"
