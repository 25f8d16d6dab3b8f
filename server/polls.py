"""Background rounds that must not die in silence (docs/serving.md, "Lifecycle").

A worker polls in the background: the artifact watcher asks the manager what to
serve, the replica tick keeps health and heartbeats current, a fleet's control
store reads the pin and the fleet. An exception escaping one round must not end
the task for the worker's lifetime while health says SERVING: the task catches
it, and its ``PollGuard`` logs it (a warning when it starts or changes, not once
per round), counts it (``bookrec_background_errors_total{task}``, summed over
workers) and keeps the failures in a row. The artifact watcher's guard turns
readiness NOT_SERVING after ``--watch-failures-unready`` failed polls in a row:
the loaded model still answers (liveness stays SERVING), but it no longer
follows new versions or pins, which a balancer should know. A round that
succeeds again resets the count and says so in the log.

Thread safety: one guard belongs to one task; ``healthy`` may be read from any
thread (it reads one int).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from bookrec.log import kv
from server import metrics

T = TypeVar("T")

log = logging.getLogger("server.polls")


class PollGuard:
    def __init__(self, task: str, unready_after: int = 0, logger: logging.Logger = log) -> None:
        """``task`` labels the metric and the log; ``unready_after`` failures in a row
        make ``healthy`` False (0: never)."""
        self.task = task
        self.unready_after = unready_after
        self.log = logger
        self.failures = 0  # in a row
        self._last_error = ""
        self._counter = metrics.BACKGROUND_ERRORS.labels(task=task)

    @property
    def healthy(self) -> bool:
        return self.unready_after <= 0 or self.failures < self.unready_after

    def failed(self, error: BaseException, what: str = "") -> None:
        """One round failed with ``error``; ``what`` says what it keeps doing meanwhile."""
        self.failures += 1
        self._counter.inc()
        text = f"{type(error).__name__}: {error}"
        fields = {"task": self.task, "error": text, "failures_in_a_row": self.failures}
        if what:
            fields["meanwhile"] = what
        if self.failures == self.unready_after:
            self.log.error(
                f"{self.task} failing: readiness NOT_SERVING until it succeeds",
                extra=kv(**fields),
            )
        elif text != self._last_error:  # once per kind of failure, not once per round
            self.log.warning(f"{self.task} failed: will retry", extra=kv(**fields), exc_info=error)
        self._last_error = text

    def succeeded(self) -> None:
        if self.failures:
            self.log.info(
                f"{self.task} recovered",
                extra=kv(task=self.task, failures_in_a_row=self.failures),
            )
        self.failures = 0
        self._last_error = ""

    async def run(
        self, fn: Callable[[], T], executor: Executor | None = None, what: str = ""
    ) -> T | None:
        """``fn()`` off the event loop (``executor``, else a thread): its result, or None
        when it raised, which is logged and counted."""
        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, fn)
        except Exception as e:
            self.failed(e, what)
            return None
        self.succeeded()
        return result
