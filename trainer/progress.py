"""Progress of the training stages, on stderr, without breaking the JSON log lines.

On a terminal, the innermost running task is drawn as one bar on the last line
(``als study  [#####.....] 4/8 trials  31 s, ~30 s left  best 0.1234``); a log line
written meanwhile clears the bar first and the bar is redrawn under it, and a
finished task leaves one summary line. Anywhere else (a pipe, a file, CI, tests that
parse stderr) nothing is drawn: progress is a JSON log line (event "progress") at
most every ``LINE_SECONDS`` per task, so CI logs show a run is alive and every line
still parses. ``BOOKREC_PROGRESS=bar|lines|off`` forces a mode.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from bookrec.log import kv

log = logging.getLogger("trainer.progress")

# Seconds between two progress lines of one task when stderr is not a terminal.
LINE_SECONDS = 15.0
# Seconds between two redraws of a bar (its clock ticks even when nothing advances).
TICK_SECONDS = 0.5
BAR_WIDTH = 20
# Seconds a task runs before its bar appears (quicker ones leave no line);
# BOOKREC_PROGRESS_AFTER overrides it (0: every task, as the tests want).
SHOW_AFTER = float(os.environ.get("BOOKREC_PROGRESS_AFTER", "1.0"))
_CLEAR = "\r\x1b[K"


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
        self.shown = False

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        self.board.changed(self)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def text(self, width: int = BAR_WIDTH) -> str:
        """The bar's line (no newline)."""
        spent = self.elapsed()
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * width)
            left = (
                f", ~{_seconds(spent / self.done * (self.total - self.done))} left"
                if 0 < self.done < self.total
                else ""
            )
            body = (
                f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{self.unit}  {_seconds(spent)}{left}"
            )
        else:
            body = f"{_seconds(spent)}" + (f", {self.done} {self.unit}" if self.done else "")
        return f"{self.name:<16} {body}" + (f"  {self.note}" if self.note else "")

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


class _Stream:
    """Stands in for stderr in the log handlers while a bar is drawn: clears the bar
    before a log line and draws it again after."""

    def __init__(self, board: _Board, real: IO[str]) -> None:
        self.board, self.real = board, real

    def write(self, s: str) -> int:
        with self.board.lock:
            if self.board.drawn:
                self.real.write(_CLEAR)
                self.board.drawn = False
            n = self.real.write(s)
            if s.endswith("\n"):
                self.board.draw_locked()
        return n

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()


class _Board:
    """The running tasks (a stack: the innermost is drawn) and the one bar line."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tasks: list[Task] = []
        self.drawn = False
        self.stderr: IO[str] = sys.stderr
        self.swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        self.ticker: threading.Thread | None = None
        self.stop = threading.Event()
        self.how = "off"

    def open(self, task: Task, how: str) -> None:
        with self.lock:
            if not self.tasks:
                self._hook(how)
            self.tasks.append(task)
            if how == "bar":
                self.draw_locked()

    def close(self, task: Task, how: str) -> None:
        with self.lock:
            if task in self.tasks:
                self.tasks.remove(task)
            if how == "bar":
                if self.drawn:
                    self.stderr.write(_CLEAR)
                    self.drawn = False
                if task.shown:
                    self.stderr.write(task.summary() + "\n")
                self.draw_locked()
                self.stderr.flush()
            if not self.tasks:
                self._unhook()
        if how == "lines" and task.total:  # a stage has its own "stage done" line
            log.info("progress done", extra=kv(**task.fields()))

    def changed(self, task: Task) -> None:
        how = current_mode()
        if how == "bar":
            with self.lock:
                self.draw_locked()
        elif how == "lines":
            self._line(task)

    @staticmethod
    def _line(task: Task) -> None:
        if time.perf_counter() - task.last_line >= LINE_SECONDS:
            task.last_line = time.perf_counter()
            log.info("progress", extra=kv(**task.fields()))

    def draw_locked(self) -> None:
        """The innermost task that has run for SHOW_AFTER seconds: a stage that takes
        less leaves no line at all."""
        shown = next((t for t in reversed(self.tasks) if t.elapsed() >= SHOW_AFTER), None)
        if shown is None:
            return
        shown.shown = True
        self.stderr.write(_CLEAR + shown.text())
        self.stderr.flush()
        self.drawn = True

    def _hook(self, how: str) -> None:
        """Start the clock; for a bar, route the log handlers that write to stderr
        through ``_Stream``."""
        self.how = how
        self.stderr = sys.stderr
        if how == "bar":
            proxy = _Stream(self, self.stderr)
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is self.stderr:
                    self.swapped.append((handler, handler.stream))
                    handler.setStream(proxy)
        self.stop = threading.Event()
        self.ticker = threading.Thread(
            target=self._tick, args=(how, self.stop), name="progress", daemon=True
        )
        self.ticker.start()

    def _unhook(self) -> None:
        for handler, stream in self.swapped:
            handler.setStream(stream)
        self.swapped.clear()
        self.stop.set()
        self.ticker = None

    def _tick(self, how: str, stop: threading.Event) -> None:
        """Redraws the bar's clock; in lines mode, a line for a task that runs long
        without advancing (a refit, the artifact)."""
        while not stop.wait(TICK_SECONDS):
            with self.lock:
                innermost = self.tasks[-1] if self.tasks else None
                if innermost is not None and how == "bar":
                    self.draw_locked()
            if innermost is not None and how == "lines":
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
        print(line, file=sys.stderr, flush=True)
    elif how == "lines":
        log.info("summary", extra=kv(text=line))


def note(text: str) -> None:
    """A short status on the innermost running task (``models  35 s  item_item done``)."""
    with _BOARD.lock:
        if _BOARD.tasks:
            _BOARD.tasks[-1].note = text
