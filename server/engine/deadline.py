"""A call's deadline and cancellation as the engine sees them.

Work in a thread goes on after its call has ended: gRPC cancels the handler's task
at the deadline or when the client cancels, but a thread cannot be interrupted, and
before this a 1 MB SearchBooks query burned a core for a minute after its client had
gone. So a handler gives the engine a ``Deadline`` and the engine calls
``check(step)`` between steps: once the deadline has passed or the call was
cancelled (``cancel``, from the handler when its task is cancelled), ``check``
raises ``Abandoned`` and the rest is not computed. Each abandon is one log line
("call abandoned": the RPC, the step, the reason) and a count in
``bookrec_calls_abandoned``.

``step_delay`` is a test hook, off (0) unless the server is started with
BOOKREC_TEST_STEP_DELAY_MS: each step first sleeps that long (and logs "test hook:
slow step"), so a test can end a call mid-compute and see that it stops.
"""

from __future__ import annotations

import logging
import time

from bookrec.log import kv
from server import metrics
from server.engine.errors import EngineError

log = logging.getLogger("server.deadline")


class Abandoned(EngineError):
    """The call is no longer wanted; nothing more is computed for it."""


class DeadlinePassed(Abandoned):
    """Its deadline passed (the handlers send DEADLINE_EXCEEDED)."""


class Cancelled(Abandoned):
    """Its client cancelled it, or gRPC ended it (CANCELLED)."""


class Deadline:
    """Thread-safe enough by design: ``cancel`` sets a bool from the event loop's thread,
    ``check`` reads it from the computing one (one attribute read under the GIL)."""

    def __init__(self, at: float | None = None, rpc: str = "", step_delay: float = 0.0) -> None:
        self.at = at  # time.monotonic() seconds; None: no deadline
        self.rpc = rpc
        self.step_delay = step_delay
        self.cancelled = False

    @staticmethod
    def after(remaining: float | None, rpc: str = "", step_delay: float = 0.0) -> Deadline:
        """From a call's ``time_remaining()`` (seconds, None without a deadline)."""
        at = None if remaining is None else time.monotonic() + remaining
        return Deadline(at, rpc, step_delay)

    def cancel(self) -> None:
        self.cancelled = True

    def check(self, step: str) -> None:
        """Raise ``Abandoned`` if the call should stop before ``step``."""
        if self.step_delay > 0:
            log.info("test hook: slow step", extra=kv(rpc=self.rpc, step=step))
            time.sleep(self.step_delay)
        # The deadline first: gRPC also cancels a call when its deadline passes.
        if self.at is not None and time.monotonic() >= self.at:
            self._abandon(step, "deadline", DeadlinePassed)
        if self.cancelled:
            self._abandon(step, "cancelled", Cancelled)

    def _abandon(self, step: str, reason: str, error: type[Abandoned]) -> None:
        metrics.ABANDONED.labels(method=self.rpc, reason=reason).inc()
        log.info("call abandoned", extra=kv(rpc=self.rpc, step=step, reason=reason))
        raise error(f"{self.rpc or 'the call'} stopped before {step}: {reason}")
