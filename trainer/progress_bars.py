"""The terminal side of trainer/progress.py: rich.progress bars under whole log lines.

While bars are shown, the root logger's handlers that write to stderr write
through the bars' console instead, one line at a time, unwrapped and without
markup: rich prints each above the bars, so a JSON log line stays one parseable
line. A task's bar appears once it has run ``show_after`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Task as RichTask
from rich.text import Text

NAME_WIDTH = 16
BAR_WIDTH = 20
REFRESHES_PER_SECOND = 2  # the clocks tick; the trainer's cores stay on the work


class _Count(ProgressColumn):
    """``4/8 trials``; a task without a total shows what it has done, if anything."""

    def render(self, task: RichTask) -> Text:
        unit = task.fields.get("unit", "")
        done = int(task.completed)
        if task.total is not None:
            return Text(f"{done}/{int(task.total)} {unit}")
        return Text(f"{done} {unit}" if done else "")


class _Progress(Progress):
    """Draws only the tasks that have run ``show_after`` seconds: a quick stage leaves
    no bar at all."""

    def __init__(self, *columns: ProgressColumn, show_after: float, **kw: Any) -> None:
        super().__init__(*columns, **kw)
        self.show_after = show_after

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(
            [t for t in self.tasks if (t.elapsed or 0.0) >= self.show_after]
        )


class _LogLines:
    """Stands in for stderr in the log handlers: whole lines go out through the console."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.partial = ""
        self.lock = threading.Lock()

    def write(self, s: str) -> int:
        with self.lock:
            *lines, self.partial = (self.partial + s).split("\n")
            for line in lines:
                self.console.out(line, highlight=False)
        return len(s)

    def flush(self) -> None:
        self.console.file.flush()

    def isatty(self) -> bool:
        return True


class Bars:
    """One rich Progress for the outermost task's life; log handlers routed through it."""

    def __init__(self, stderr: IO[str], show_after: float) -> None:
        self.stderr = stderr
        self.console = Console(file=stderr, force_terminal=True, highlight=False)
        self.progress = _Progress(
            TextColumn(f"{{task.description:<{NAME_WIDTH}}}"),
            BarColumn(bar_width=BAR_WIDTH),
            _Count(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=self.console,
            transient=True,
            redirect_stdout=False,  # the trainer's stdout is its output, not a person's
            refresh_per_second=REFRESHES_PER_SECOND,
            show_after=show_after,
        )
        self.swapped: list[tuple[logging.StreamHandler[Any], IO[str]]] = []

    def start(self) -> None:
        proxy = _LogLines(self.console)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stderr:
                self.swapped.append((handler, handler.stream))
                handler.setStream(proxy)
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()
        for handler, stream in self.swapped:
            handler.setStream(stream)
        self.swapped.clear()

    def add(self, name: str, total: int | None, unit: str) -> TaskID:
        return self.progress.add_task(name, total=total, unit=unit, note="")

    def update(self, task: TaskID, done: int, note: str) -> None:
        self.progress.update(task, completed=done, note=note)

    def remove(self, task: TaskID) -> None:
        self.progress.remove_task(task)

    def say(self, line: str) -> None:
        """A line for a person, above the bars."""
        self.console.out(line, highlight=False)
