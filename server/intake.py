"""How long each call waited inside gRPC core before this process took it in.

grpc.aio takes calls from core one at a time. In a burst the rest wait in core, out of
admission's sight, for as long as the loop needs to take them all: 1 to 3 s for 3,000
calls on two busy cores. A call taken in late was then queued with its full
``--max-queue-wait-ms`` and answered OK seconds after it was sent. Admission subtracts
the time measured here from what a call may still wait (server/admission.py).

Core counts every call it receives (channelz ``callsStarted``) and hands them over in
the order they came. So the n-th call taken in since an anchor arrived when core's
count first reached the anchor's count + n. Reads of the count (time, count), at most
every ``every`` s while calls come in, date each call to within one read, never
earlier than it came (a wait is never overstated). Calls core counted but never handed
over (cancelled while they waited) would make later calls look older, so the count is
anchored again after ``quiet`` s without a call while the event loop ran freely (a
heartbeat on the loop says so): core held no call then, the next one is the first that
came after. A pause because the loop was held or starved of CPU is no such proof, and
the reads before it still date the calls taken after it. Under steady traffic with no
such pause, a gap between core's count and the calls taken in that neither shrinks nor
grows over ``quiet`` s of a free loop is no backlog (a backlog drains or grows): it is
dropped calls, and is forgotten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("server.intake")

# Read core's count at most this often while it holds a backlog (a read costs ~0.15 ms),
# and at most _CALM_S apart while it holds none.
_EVERY_S = 0.02
_CALM_S = 0.1
# A pause this long between calls taken in, the loop running freely: core holds none.
_QUIET_S = 0.1
# A gap between core's count and the calls taken in that moved no more than this over
# a window is dropped calls, not a backlog; a gap no larger than this is no backlog.
_STEADY_CALLS = 4
# The heartbeat's period, and how late a beat may be before the loop counts as held.
_BEAT_S = 0.025
_LATE_S = 0.025


def channelz_calls_started() -> int | None:
    """Calls gRPC core has received on the servers of this process (channelz), or None
    where channelz cannot be read."""
    try:  # grpcio's private channelz reader (the public one is a gRPC service)
        from grpc._cython import cygrpc  # type: ignore[attr-defined]

        doc = json.loads(cygrpc.channelz_get_servers(0))
        return sum(int(s.get("data", {}).get("callsStarted", 0)) for s in doc.get("server", []))
    except Exception:  # without it, waits count from intake, as before
        return None


class Heartbeat:
    """A timer on the event loop, every ``beat`` s: whether the loop ran freely (each
    beat on time, none overdue) over a span of time."""

    def __init__(
        self, clock: Callable[[], float], beat: float = _BEAT_S, late: float = _LATE_S
    ) -> None:
        self._clock = clock
        self._beat = beat
        self._late = late
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_beat = -float("inf")
        self.last_held = -float("inf")  # when a late beat ran

    def ensure(self) -> None:
        """Beat on the running loop (from now on, once per loop)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self.last_beat = loop, self._clock()
            loop.call_later(self._beat, self._tick, loop, self.last_beat + self._beat)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = self._clock()
        if now - due > self._late:
            self.last_held = now
        self.last_beat = now
        if loop is self._loop:
            loop.call_later(self._beat, self._tick, loop, now + self._beat)

    def free(self, since: float, now: float) -> bool:
        """The loop ran freely from ``since`` to ``now``."""
        return self.last_held < since and now - self.last_beat <= self._beat + self._late


class CoreIntake:
    """Count the calls the application takes in; ``take()`` says how long each one
    waited in core (0.0 where that cannot be known)."""

    def __init__(
        self,
        started: Callable[[], int | None] = channelz_calls_started,
        clock: Callable[[], float] = time.monotonic,
        every: float = _EVERY_S,
        quiet: float = _QUIET_S,
        calm: float = _CALM_S,
    ) -> None:
        self._started = started
        self._clock = clock
        self._every = every
        self._quiet = quiet
        self._calm = calm
        self._backlog = False  # the last read showed calls waiting in core
        self.heartbeat = Heartbeat(clock)
        self._reads: deque[tuple[float, int]] = deque()  # (time, core's count)
        self._index = 0  # core's count when the last call taken in came
        self._window = (-float("inf"), 0)  # (since, gap between count and index then)
        self._last = -float("inf")  # when the last call was taken in
        self._off = False  # channelz unreadable: say 0 from now on

    def take(self) -> float:
        """One call is being taken in now (on the event loop): seconds it waited in core."""
        self.heartbeat.ensure()
        now = self._clock()
        last, self._last = self._last, now
        if self._off:
            return 0.0
        if not self._reads or (now - last > self._quiet and self.heartbeat.free(last, now)):
            self._anchor(now)
            return 0.0
        self._index += 1
        if now - self._reads[-1][0] >= (self._every if self._backlog else self._calm):
            if not self._read(now):
                return 0.0
            self._forget_dropped(now)
        if self._reads[-1][1] < self._index:  # it came after the last read
            return 0.0
        while self._reads[0][1] < self._index:  # reads from before it came
            self._reads.popleft()
        return now - self._reads[0][0]

    def _forget_dropped(self, now: float) -> None:
        """Each ``quiet`` s of a free loop: a gap that held steady is dropped calls."""
        since, gap = self._window
        if now - since < self._quiet:
            return
        current = self._reads[-1][1] - self._index
        if abs(current - gap) <= _STEADY_CALLS and self.heartbeat.free(since, now):
            self._index += max(min(current, gap), 0)
            current = self._reads[-1][1] - self._index
        self._window = (now, current)

    def _anchor(self, now: float) -> None:
        """Core holds no call older than this one: it is the first that came after the
        last read (the first core ever counted, on the first call)."""
        last = self._reads[-1][1] if self._reads else 0
        self._reads.clear()
        if self._read(now):
            count = self._reads[-1][1]
            self._index = min(max(last, self._index) + 1, count)
            self._window = (now, count - self._index)
            self._backlog = count - self._index > _STEADY_CALLS

    def _read(self, now: float) -> bool:
        count = self._started()
        if count is None:
            self._off = True
            log.warning("channelz unreadable: waits in gRPC core are not counted")
            return False
        self._reads.append((now, count))
        self._backlog = count - self._index > _STEADY_CALLS
        return True


# One per process: core's count covers every server of the process.
INTAKE = CoreIntake()
