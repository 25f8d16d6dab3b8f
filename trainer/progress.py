"""Progress of the training stages, on stderr, without breaking the JSON log lines.

On a terminal, rich.progress draws the running tasks as bars at the bottom
(``als study  ━━━━━━━╸━━━━━━━ 4/8 trials 0:00:31 0:00:30 best 0.1234``); a log
line written meanwhile is printed whole above them, and a finished task leaves one
summary line. Anywhere else (a pipe, a file, CI, tests that parse stderr) nothing
is drawn: progress is a JSON log line (event "progress") at most every
``LINE_SECONDS`` per task, so CI logs show a run is alive and every line still
parses. ``BOOKREC_PROGRESS=bar|lines|off`` forces a mode.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bookrec.log import kv
from trainer.progress_bars import Bars

log = logging.getLogger("trainer.progress")

# Seconds between two progress lines of one task when stderr is not a terminal.
LINE_SECONDS = 15.0
# Seconds between two looks at a task that runs long without advancing (lines mode).
TICK_SECONDS = 0.5
# Seconds a task runs before its bar appears (quicker ones leave no line);
# BOOKREC_PROGRESS_AFTER overrides it (0: every task, as the tests want).
SHOW_AFTER = float(os.environ.get("BOOKREC_PROGRESS_AFTER", "1.0"))


def mode() -> str:
    """bar (a terminal), lines (anything else) or off, unless BOOKREC_PROGRESS says."""
    forced = os.environ.get("BOOKREC_PROGRESS", "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    return "bar" if sys.stderr.isatty() and os.environ.get("TERM") != "dumb" else "lines"


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class Task:
    """One unit of work with an optional ``total`` (trials, epochs): ``advance``
    as it goes, ``note`` for a short status such as the best value so far."""

    def __init__(self, board: _Board, name: str, total: int | None, unit: str) -> None:
        self.board, self.name, self.total, self.unit = board, name, total, unit
        self.done = 0
        self.note = ""
        self.start = time.perf_counter()
        self.last_line = self.start
        self.bar_id: Any = None  # the rich task id, in bar mode

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        self.board.changed(self)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def summary(self) -> str:
        """The one line a finished task leaves."""
        count = f"{self.done}/{self.total} {self.unit}, " if self.total else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self.name}: {count}done in {_seconds(self.elapsed())}{note}"

    def fields(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "elapsed_s": round(self.elapsed(), 1),
            **({"note": self.note} if self.note else {}),
        }


class _Board:
    """The running tasks (a stack: the innermost gets notes) and how they are shown:
    rich bars on a terminal, JSON lines (and a ticker for quiet tasks) elsewhere."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tasks: list[Task] = []
        self.bars: Bars | None = None
        self.stop = threading.Event()

    def open(self, task: Task, how: str) -> None:
        with self.lock:
            if not self.tasks:
                self._start(how)
            self.tasks.append(task)
            if self.bars is not None:
                task.bar_id = self.bars.add(task.name, task.total, task.unit)

    def close(self, task: Task, how: str) -> None:
        with self.lock:
            if task in self.tasks:
                self.tasks.remove(task)
            if self.bars is not None:
                self.bars.remove(task.bar_id)
                if task.elapsed() >= SHOW_AFTER:
                    self.bars.say(task.summary())
            if not self.tasks:
                self._stop()
        if how == "lines" and task.total:  # a stage has its own "stage done" line
            log.info("progress done", extra=kv(**task.fields()))

    def changed(self, task: Task) -> None:
        bars = self.bars
        if bars is not None:
            bars.update(task.bar_id, task.done, task.note)
        elif current_mode() == "lines":
            self._line(task)

    @staticmethod
    def _line(task: Task) -> None:
        if time.perf_counter() - task.last_line >= LINE_SECONDS:
            task.last_line = time.perf_counter()
            log.info("progress", extra=kv(**task.fields()))

    def _start(self, how: str) -> None:
        if how == "bar":
            self.bars = Bars(sys.stderr, SHOW_AFTER)
            self.bars.start()
            return
        self.stop = threading.Event()
        threading.Thread(target=self._tick, args=(self.stop,), name="progress", daemon=True).start()

    def _stop(self) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None
        self.stop.set()

    def _tick(self, stop: threading.Event) -> None:
        """A line for a task that runs long without advancing (a refit, the artifact)."""
        while not stop.wait(TICK_SECONDS):
            with self.lock:
                innermost = self.tasks[-1] if self.tasks else None
            if innermost is not None:
                self._line(innermost)


_BOARD = _Board()
_MODE: list[str] = []  # the mode of the outermost running task, fixed while it runs


def current_mode() -> str:
    return _MODE[-1] if _MODE else mode()


@contextmanager
def task(name: str, total: int | None = None, unit: str = "") -> Iterator[Task]:
    """Progress for one stage or loop; nests (a study inside a stage)."""
    how = _MODE[-1] if _MODE else mode()
    _MODE.append(how)
    t = Task(_BOARD, name, total, unit)
    if how != "off":
        _BOARD.open(t, how)
    try:
        yield t
    finally:
        if how != "off":
            _BOARD.close(t, how)
        _MODE.pop()


def run_summary(times: dict[str, float], outcome: str) -> str:
    """One line for the end of a run: the total, the slowest stages and the outcome."""
    top = [k for k in times if "." not in k]
    total = sum(times[k] for k in top)
    slow = sorted(top, key=lambda k: -times[k])[:4]
    parts = ", ".join(f"{k} {_seconds(times[k])}" for k in slow)
    return f"trainer: done in {_seconds(total)} ({parts}): {outcome}"


def say(line: str) -> None:
    """``line`` for a person: plain on a terminal, a JSON log line (event "summary")
    elsewhere, so stderr stays parseable."""
    how = current_mode()
    if how == "bar":
        bars = _BOARD.bars
        if bars is not None:
            bars.say(line)
        else:
            print(line, file=sys.stderr, flush=True)
    elif how == "lines":
        log.info("summary", extra=kv(text=line))


def note(text: str) -> None:
    """A short status on the innermost running task (``models  35 s  item_item done``)."""
    with _BOARD.lock:
        if _BOARD.tasks:
            innermost = _BOARD.tasks[-1]
            innermost.note = text
            if _BOARD.bars is not None:
                _BOARD.bars.update(innermost.bar_id, innermost.done, text)
