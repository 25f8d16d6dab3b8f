"""Admission control: a bounded queue per worker in front of the compute.

Why not gRPC's ``maximum_concurrent_rpcs``: grpc.aio stops *taking* calls at the
limit, so the excess waits inside gRPC core, unseen, until the client's deadline
(about 10% of 3,000 concurrent calls ended CANCELLED with no detail). And since
Recommend, Similar and ColdStart compute on the event loop itself, a call finishes
before the next one is even looked at: the limit was never reached and Recommend
was never shed (400 calls queued for up to 1.3 s at a limit of 8).

So every call takes a turn here first. A turn is handed out when one of ``slots``
is free and the previous turn has started, and only a few loop iterations later
(``_grant_later``): grpc.aio takes one new call from core every second iteration,
and those iterations bring the backlog here, where it is seen and shed, instead of
leaving it in core. A call is refused at once (``Shed``, RESOURCE_EXHAUSTED) when
the queue is full or when the wait this queue predicts for it (places ahead x the
measured wait per place) is longer than it may wait: ``max_wait`` or a little less
than its remaining deadline, whichever is less. A call that still gets no turn
within that is refused then. A call whose deadline has passed when its turn comes
(or while it waits) is not computed (DEADLINE_EXCEEDED), and is logged. The time a
call waited inside gRPC core before the loop took it in (server/intake.py) counts as
waiting: it is taken off ``max_wait``, and a call that already waited longer than
``max_wait`` there is refused at once, even with a slot free.

On shutdown, gRPC core cancels the calls it holds that the application has not
taken yet (CANCELLED, no detail). So ``take_in`` first lets the loop bring them
into this queue, computing nothing meanwhile; then core is told to stop (GOAWAY:
new calls fail UNAVAILABLE at the client) and ``drain`` waits for every call taken.

No gRPC here: the interceptor (server/shedding.py) maps ``Shed`` to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import NoReturn

from bookrec.log import kv

log = logging.getLogger("server.admission")

# Weight of the newest sample in the running mean of the wait per queue place.
_ALPHA = 0.1
# A queued call is refused this share of its remaining time before its deadline (within
# these bounds), so that the refusal reaches the client before the client's own timer
# ends the call as DEADLINE_EXCEEDED.
_REPLY_MARGIN = 0.1
_REPLY_MARGIN_S = (0.002, 0.02)
# Loop iterations between a slot coming free and the next turn: at least _MIN_SPINS,
# then more while calls keep arriving, until _QUIET_SPINS in a row bring none or
# _MAX_SPINS have passed. Why: grpc.aio takes one new call from gRPC core every second
# loop iteration, so turns handed out on every iteration let the backlog build up in
# core, unseen here and never shed (core cancels it later: CANCELLED, no detail).
_MIN_SPINS = 4
_QUIET_SPINS = 3
_MAX_SPINS = 64
# A queued call waits up to this times max_wait (less near its deadline) before a late
# refusal: the prediction it was queued on is a running mean, so a burst can make it
# short; serving the call a little later beats refusing it slowly (a late refusal took
# the whole wait, and refused calls must be refused fast).
_HOLD_FACTOR = 2.0
# The shortest wait a queued call is given (it waits a few loop iterations at least).
_MIN_WAIT_S = 0.001
# How often take_in looks whether calls still come in.
_TAKE_IN_TICK_S = 0.002
# The first guess of that wait, before any call has waited (a few ms of compute).
_FIRST_GUESS_S = 0.002
# A call that waited at least this long in gRPC core may be refused for that alone.
_AGE_FLOOR_S = 0.05


@dataclass
class _Gauge:
    n: int = 0


# Calls in this process between arrival at admission and their end (any queue).
_IN_FLIGHT = _Gauge()


def calls_in_flight() -> int:
    """Calls this process's admission holds now, queued or running, the caller's own
    included: the pipelines compute inline only when it is the only one (handlers)."""
    return _IN_FLIGHT.n


class Shed(Exception):
    """A call refused before it was computed. ``expired``: its deadline had passed
    (DEADLINE_EXCEEDED); otherwise the server is overloaded (RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str, expired: bool = False, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.expired = expired
        # Seconds after which the queue ahead has likely drained (a hint for the client,
        # sent as ``retry-after-ms``); 0 for an expired call, which is not retried.
        self.retry_after = retry_after


@dataclass
class Counts:
    """What this worker's admission did, by outcome (for logs, metrics and tests)."""

    admitted: int = 0
    refused_full: int = 0  # the queue held max_queue calls
    refused_wait: int = 0  # the predicted wait was longer than the call may wait
    refused_late: int = 0  # it waited all it could and got no turn
    refused_aged: int = 0  # it had waited all it could in gRPC core before admission
    expired: int = 0  # its deadline passed before its turn: not computed

    @property
    def refused(self) -> int:
        return self.refused_full + self.refused_wait + self.refused_late + self.refused_aged


@dataclass(eq=False)
class _Waiter:
    turn: asyncio.Future[None]
    since: float  # clock() when it joined
    places: int  # its place in the queue when it joined (1 = first)
    granted: bool = field(default=False)


class Admission:
    """The queue of one worker; use ``async with admission.turn(remaining): ...``."""

    def __init__(
        self,
        slots: int,
        max_queue: int,
        max_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots < 1 or max_queue < 0 or max_wait < 0:
            raise ValueError("slots >= 1, max_queue >= 0 and max_wait >= 0")
        self.slots = slots
        self.max_queue = max_queue
        self.max_wait = max_wait
        self.counts = Counts()
        self._clock = clock
        self._queue: deque[_Waiter] = deque()
        self._waiting = 0  # live waiters in _queue (abandoned ones are skipped)
        self._busy = 0  # slots held, by granted and running calls
        self._pending = 0  # granted, not yet running (0 or 1)
        self._per_place = _FIRST_GUESS_S
        self._arrivals = 0  # calls that reached _enter, ever
        self._events = 0  # arrivals and ends (served, refused, abandoned), ever
        self._seen = 0  # _arrivals when the last grant was decided
        self._deferred = False  # a _grant_later is scheduled
        self._quiet = 0
        self._spins = 0
        self._holding = False  # take_in: no turns handed out
        self._idle: asyncio.Event | None = None  # set by _release once drained

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def busy(self) -> int:
        return self._busy

    def predicted_wait(self) -> float:
        """Seconds a call joining now would wait for its turn."""
        if not (self._waiting or self._pending or self._deferred) and self._busy < self.slots:
            return 0.0
        return (self._waiting + 1) * self._per_place

    async def take_in(self, quiet_s: float = 0.05, most_s: float = 1.0) -> int:
        """Shutdown's first step, before gRPC core is told to stop: hand out no turn (no
        computing on the loop, so grpc.aio keeps taking calls from core) until no call
        came or ended for ``quiet_s``, or ``most_s`` passed. Calls taken in queue as
        usual and are computed after. Why: core cancels the calls it holds that were not
        taken yet when it stops (CANCELLED, no detail, grpc/grpc#41785). A closed-loop
        client waits on its queued call, so arrivals stop soon; but a call that ends
        (its compute was under way, or it was refused) is followed by that client's next
        call a few ms later, which must not meet the stop: so an end counts as an event
        too. A reply sent after the stop is safe, as the GOAWAY reaches the client
        before it. Returns the calls taken in."""
        self._holding = True
        first, last = self._arrivals, self._events
        start = quiet_since = self._clock()
        while (now := self._clock()) - quiet_since < quiet_s and now - start < most_s:
            await asyncio.sleep(_TAKE_IN_TICK_S)
            if self._events != last:
                last, quiet_since = self._events, self._clock()
        return self._arrivals - first

    async def drain(self, grace: float) -> bool:
        """Once gRPC core stops (it hands over no new call then): wait up to ``grace`` s
        for the calls admitted or queued to finish; calls still coming in were taken by
        core before it stopped, and are served as usual. True when all finished."""
        self._holding = False
        self._dispatch()
        if self._busy or self._waiting:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
        return not (self._busy or self._waiting)

    @contextlib.asynccontextmanager
    async def turn(
        self, time_remaining: Callable[[], float | None], what: str = "", waited: float = 0.0
    ) -> AsyncIterator[None]:
        """Wait for a turn (or raise ``Shed``), hold a slot for the body, give it back.
        ``time_remaining``: seconds to the call's deadline, None without one; ``waited``:
        seconds it already waited in gRPC core (server/intake.py), counted against
        ``max_wait``."""
        _IN_FLIGHT.n += 1
        try:
            await self._enter(time_remaining, what, waited)
            try:
                yield
            finally:
                self._release()
        finally:
            _IN_FLIGHT.n -= 1
            self._events += 1

    async def _enter(
        self, time_remaining: Callable[[], float | None], what: str, waited: float
    ) -> None:
        self._arrivals += 1
        self._events += 1
        remaining = time_remaining()
        if remaining is not None and remaining <= 0:
            self._expired(what, "on arrival")
        predicted = self.predicted_wait()
        if waited > max(self.max_wait, _AGE_FLOOR_S):
            self.counts.refused_aged += 1
            raise Shed(
                f"server overloaded: this call waited {waited * 1000:.0f} ms for the server "
                "to take it in; retry later",
                retry_after=max(predicted, self._per_place),
            )
        if predicted > 0 and self._waiting >= self.max_queue:
            self.counts.refused_full += 1
            raise Shed(
                f"server overloaded: {self._waiting} calls already queued; retry later",
                retry_after=predicted,
            )
        # The latest a refusal may come: a little before the deadline, so the client
        # hears why.
        low, high = _REPLY_MARGIN_S
        latest = (
            math.inf
            if remaining is None
            else remaining - min(max(remaining * _REPLY_MARGIN, low), high)
        )
        budget = min(self.max_wait - waited, latest)
        if predicted > 0 and predicted > budget:
            self.counts.refused_wait += 1
            raise Shed(
                f"server overloaded: a turn is about {predicted * 1000:.0f} ms away, this "
                f"call may wait {max(budget, 0) * 1000:.0f} ms; retry later",
                retry_after=predicted,
            )
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), self._clock(), self._waiting + 1)
        self._queue.append(waiter)
        self._waiting += 1
        self._dispatch()
        # Queued on a prediction within budget, it may wait a little longer than that
        # before a late refusal (which reaches the client slowly, so should be rare).
        hold = min(self.max_wait * _HOLD_FACTOR - waited, latest)
        try:
            async with asyncio.timeout(max(hold, budget, _MIN_WAIT_S)):
                await waiter.turn
        except TimeoutError:
            if not waiter.granted:  # else it was granted just as its time ran out
                self._abandon(waiter)
                remaining = time_remaining()
                if remaining is not None and remaining <= 0:
                    self._expired(what, f"after {(self._clock() - waiter.since) * 1000:.1f} ms")
                self.counts.refused_late += 1
                raise Shed(
                    f"server overloaded: no turn within {max(hold, budget) * 1000:.0f} ms; "
                    "retry later",
                    retry_after=max(self.predicted_wait(), self._per_place),
                ) from None
        except BaseException:  # cancelled: the client went away or gRPC stopped the call
            self._abandon(waiter)
            remaining = time_remaining()
            if remaining is not None and remaining <= 0:  # gRPC ended it at its deadline
                self._note_expired(what, "cancelled by gRPC at its deadline")
            raise
        self._started(waiter)
        remaining = time_remaining()
        if remaining is not None and remaining <= 0:
            self._release()
            self._expired(what, f"after {(self._clock() - waiter.since) * 1000:.1f} ms")
        self.counts.admitted += 1

    def _expired(self, what: str, when: str) -> NoReturn:
        self._note_expired(what, when)
        raise Shed("deadline passed before the call's turn; not computed", expired=True)

    def _note_expired(self, what: str, when: str) -> None:
        self.counts.expired += 1
        log.info(
            "deadline passed before its turn; not computed",
            extra=kv(rpc=what, when=when, expired=self.counts.expired),
        )

    def _dispatch(self) -> None:
        """Hand out the next turn when a slot is free and no turn is pending, a few loop
        iterations later (``_grant_later``)."""
        if self._pending or self._deferred or self._busy >= self.slots or not self._waiting:
            return
        if self._holding:
            return
        self._deferred = True
        self._seen, self._quiet, self._spins = self._arrivals, 0, 0
        asyncio.get_running_loop().call_soon(self._grant_later)

    def _grant_later(self) -> None:
        """One loop iteration of the wait before a turn (see ``_MIN_SPINS``): each lets
        grpc.aio bring in more calls, which join the queue or are refused meanwhile."""
        self._spins += 1
        if self._arrivals != self._seen:
            self._seen, self._quiet = self._arrivals, 0
        else:
            self._quiet += 1
        more = self._spins < _MIN_SPINS or self._quiet < _QUIET_SPINS
        if more and self._spins < _MAX_SPINS:
            asyncio.get_running_loop().call_soon(self._grant_later)
            return
        self._deferred = False
        if not self._pending and self._busy < self.slots and not self._holding:
            self._grant()

    def _grant(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if waiter.turn.done():  # its task was cancelled; _abandon will count it
                continue
            waiter.turn.set_result(None)
            waiter.granted = True
            self._waiting -= 1
            self._busy += 1
            self._pending += 1
            return

    def _started(self, waiter: _Waiter) -> None:
        self._pending -= 1
        waited = self._clock() - waiter.since
        self._per_place += _ALPHA * (waited / waiter.places - self._per_place)
        self._dispatch()

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.granted:
            self._pending -= 1
            self._release()
        else:
            waiter.turn.cancel()
            # At most max_queue long; already gone when _dispatch skipped it (its future
            # was cancelled with its task before this ran).
            with contextlib.suppress(ValueError):
                self._queue.remove(waiter)
            self._waiting -= 1
            self._note_idle()

    def _release(self) -> None:
        self._busy -= 1
        self._dispatch()
        self._note_idle()

    def _note_idle(self) -> None:
        if self._idle is not None and not (self._busy or self._waiting):
            self._idle.set()
