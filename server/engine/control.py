"""Operator decisions shared by every worker and replica: the control store.

Pin and rollback must reach all workers, and an admin RPC reaches only the one
that accepted its connection, so the decision lives in a store each worker
reads rather than in process memory. On one machine that is the file
``<artifacts>/.control/serving.json`` (``FileControl``, the default); a fleet
uses the shared store (server/fleet/, docs/fleet.md). It survives restarts on
purpose, like any deployment setting: ``unpin`` clears it. The trainer never
reads it.

A store also carries the fleet view: each replica's heartbeat (its version
and state), which the file store keeps for this process alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CONTROL_DIR = ".control"
CONTROL_FILE = "serving.json"


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica's heartbeat, as GetStatus shows the fleet."""

    replica_id: str
    serving_version: str
    state: str  # "ready", "loading" (no model yet), "catching-up", "stopping"
    ready: bool
    pinned_version: str = ""
    at: float = 0.0  # unix seconds of the heartbeat


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
    path = control_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{CONTROL_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pin": version, "by": by, "at": time.time()}))
    os.replace(tmp, path)


class FileControl:
    """The embedded default: the control file, watched by the artifact source."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.describe = f"file {control_path(root)}"
        self._self: ReplicaStatus | None = None

    def read_pin(self) -> str | None:
        return read_pin(self.root)

    def write_pin(self, version: str | None, by: str) -> None:
        write_pin(self.root, version, by)

    def heartbeat(self, status: ReplicaStatus) -> None:
        self._self = status

    def fleet(self) -> list[ReplicaStatus]:
        return [self._self] if self._self else []

    def on_change(self, callback: Callable[[], None]) -> None:
        pass  # the artifact source watches the artifact root, .control included

    def close(self) -> None:
        pass
