"""Operator decisions shared by every worker and replica: the control store.

Pin and rollback must reach all workers, and an admin RPC reaches only the one
that accepted its connection, so the decision lives in a store each worker
reads rather than in process memory. On one machine that is the file
``<artifacts>/.control/serving.json`` (``FileControl``, the default); a fleet
uses the shared store (server/fleet/, docs/fleet.md). It survives restarts on
purpose, like any deployment setting: ``unpin`` clears it. The trainer never
reads it.

A store also carries the fleet view: each worker's heartbeat (its replica, its
process, version and state). The file store keeps one file per worker in
``<artifacts>/.fleet/`` (hidden, so the artifact source ignores it), so GetStatus
on any worker lists every worker sharing the root, the workers of one supervisor
first of all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from bookrec.artifact import process_alive, replace_text
from bookrec.log import kv

log = logging.getLogger("server.control")

CONTROL_DIR = ".control"
CONTROL_FILE = "serving.json"
FLEET_DIR = ".fleet"
BEAT_TTL = 10.0  # seconds: a worker silent this long leaves the fleet view


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica's heartbeat, as GetStatus shows the fleet."""

    replica_id: str
    serving_version: str
    state: str  # "ready", "loading" (no model yet), "catching-up", "stopping"
    ready: bool
    pinned_version: str = ""
    at: float = 0.0  # unix seconds of the heartbeat
    worker_pid: int = 0  # the worker process that beat (a replica may run several)


def beat_key(status: ReplicaStatus) -> str:
    """The store's key for one worker of one replica (letters, digits, ``_=-``)."""
    return re.sub(r"[^A-Za-z0-9_=-]", "_", f"{status.replica_id}/{status.worker_pid}")


class ControlStore(Protocol):
    describe: str

    def read_pin(self) -> str | None: ...

    def write_pin(self, version: str | None, by: str) -> None:
        """Replace the decision (``None`` unpins); raises ControlUnavailable."""
        ...

    def heartbeat(self, status: ReplicaStatus) -> None: ...

    def fleet(self) -> list[ReplicaStatus]: ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """``callback`` (from any thread) when the decision may have changed."""
        ...

    def close(self) -> None: ...


class ControlUnavailable(Exception):
    """The shared control store did not take the change: it is not in effect."""


def control_path(root: Path) -> Path:
    return root / CONTROL_DIR / CONTROL_FILE


def read_pin(root: Path) -> str | None:
    path = control_path(root)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a torn or foreign file pins nothing; writes are atomic anyway
    pin = doc.get("pin") if isinstance(doc, dict) else None
    return str(pin) if pin else None


def write_pin(root: Path, version: str | None, by: str) -> None:
    """Atomically replace the decision (``None`` unpins)."""
    doc = {"pin": version, "by": by, "at": time.time()}
    replace_text(control_path(root), json.dumps(doc))


class FileControl:
    """The embedded default: the control file, watched by the artifact source, and a
    heartbeat file per worker. ``heartbeat`` writes a file (call it off the loop)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.describe = f"file {control_path(root)}"
        self._self: ReplicaStatus | None = None
        self._written: Path | None = None
        self._write_error = ""

    def read_pin(self) -> str | None:
        return read_pin(self.root)

    def write_pin(self, version: str | None, by: str) -> None:
        write_pin(self.root, version, by)

    def heartbeat(self, status: ReplicaStatus) -> None:
        self._self = status
        path = self.root / FLEET_DIR / f"{beat_key(status)}.json"
        try:
            replace_text(path, json.dumps({**asdict(status), "host": socket.gethostname()}))
        except OSError as e:  # a read-only root still serves; the view holds this worker
            if str(e) != self._write_error:
                log.warning("heartbeat not written", extra=kv(path=str(path), error=str(e)))
            self._write_error = str(e)
            return
        self._write_error = ""
        self._written = path

    def fleet(self) -> list[ReplicaStatus]:
        """Every worker that beat within ``BEAT_TTL`` and, on this host, still runs; a
        killed worker's file is removed here."""
        beats = {beat_key(self._self): self._self} if self._self else {}
        here, now = socket.gethostname(), time.time()
        try:
            paths = sorted((self.root / FLEET_DIR).glob("*.json"))  # [] when absent
        except OSError:  # an unreadable root: this worker alone
            paths = []
        for path in paths:
            try:
                doc = json.loads(path.read_text())
                host = doc.pop("host", "")
                beat = ReplicaStatus(**doc)
            except (OSError, ValueError, TypeError):
                continue  # being replaced, or not ours
            if now - beat.at > BEAT_TTL or (host == here and not process_alive(beat.worker_pid)):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            beats.setdefault(beat_key(beat), beat)
        return sorted(beats.values(), key=lambda b: (b.replica_id, b.worker_pid))

    def on_change(self, callback: Callable[[], None]) -> None:
        pass  # the artifact source watches the artifact root, .control included

    def close(self) -> None:
        if self._written is not None:  # leave the view now rather than at the TTL
            with contextlib.suppress(OSError):
                self._written.unlink()
