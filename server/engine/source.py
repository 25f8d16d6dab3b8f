"""Announces that the artifact root changed, so the manager looks again at once.

A watchdog observer reports new or renamed directories in the root and changes
to the operator's control file; a caller-side poll (app.py) runs as well, as a
fallback for filesystems where inotify says nothing (NFS, some containers). The
source only says "look": what to load is the manager's decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bookrec.log import kv
from server.engine.control import CONTROL_DIR

log = logging.getLogger("server.source")


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

            on_change = self.on_change

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event: FileSystemEvent) -> None:
                    if event.event_type in ("created", "moved", "deleted", "modified", "closed"):
                        on_change()

            (self.root / CONTROL_DIR).mkdir(parents=True, exist_ok=True)
            observer = Observer()
            observer.schedule(Handler(), str(self.root), recursive=False)
            observer.schedule(Handler(), str(self.root / CONTROL_DIR), recursive=False)
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
