"""Operator decisions shared by every worker process: ``<artifacts>/.control/serving.json``.

Pin and rollback must reach all workers, and an admin RPC reaches only the one
that accepted its connection, so the decision is a file each worker's source
watches rather than process memory. It survives restarts on purpose, like any
deployment setting: ``unpin`` clears it. The trainer never reads it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

CONTROL_DIR = ".control"
CONTROL_FILE = "serving.json"


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
