"""Announces that the artifact root changed, so the manager looks again at once.

A watchdog observer reports new or renamed directories in the root, files
written inside a version directory (one published manifest-first, or repaired,
must be looked at again when it changes: the manager retries a failed version
whose files changed) and changes to the operator's control file. Events under
the root's other hidden entries (``.cache``, ``.leases``, the trainer's
``.tmp-*``) are scratch and say nothing. A caller-side poll (app.py) runs as
well, as a fallback for filesystems where inotify says nothing (NFS, some
containers). The source only says "look": what to load is the manager's decision.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bookrec.log import kv
from server.engine.control import CONTROL_DIR

log = logging.getLogger("server.source")
# What writes, renames and removals say (not opens and reads: serving reads the files).
EVENTS = frozenset({"created", "moved", "deleted", "modified", "closed"})


def relevant(root: Path, path: str) -> bool:
    """Whether a change at ``path`` may change what to serve: anything in the root but
    what lies under a hidden entry other than the control folder."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    first = rel.split(os.sep, 1)[0]
    if first == os.pardir:
        return False
    return first == "." or not first.startswith(".") or first == CONTROL_DIR


class ArtifactSource:
    def __init__(self, root: Path, on_change: Callable[[], object]) -> None:
        self.root = root
        self.on_change = on_change
        self._observer: Any = None

    @property
    def watching(self) -> bool:
        return self._observer is not None

    def start(self) -> bool:
        """Start the observer; False (and polling only) when it cannot watch."""
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer

            on_change, root = self.on_change, self.root

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event: FileSystemEvent) -> None:
                    if event.event_type not in EVENTS:
                        return
                    paths = (os.fsdecode(event.src_path), os.fsdecode(event.dest_path or ""))
                    if any(p and relevant(root, p) for p in paths):
                        on_change()

            observer = Observer()
            observer.schedule(Handler(), str(self.root), recursive=True)
            observer.daemon = True
            observer.start()
        except Exception as e:  # no inotify, no permission, missing root: poll instead
            log.warning("watcher unavailable, polling only", extra=kv(error=str(e)))
            return False
        self._observer = observer
        return True

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
