"""server/intake.py dates each call's arrival in gRPC core from core's running count:
never earlier than it came, at most one read later; a pause of a free loop forgets
calls core dropped, a held loop does not; a steady gap is forgotten, a backlog is not.
A simulated core (arrival times, FIFO hand-over) and clock; the loop's heartbeat is
stated per case."""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from dataclasses import dataclass, field

import pytest

from server.intake import CoreIntake, Heartbeat

EVERY = 0.005
QUIET = 0.1


@dataclass
class Core:
    """Calls arriving at given times; some are dropped (never handed over)."""

    now: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    dropped: set[int] = field(default_factory=set)
    handed: int = 0  # arrivals handed over or skipped as dropped

    def started(self) -> int:
        return bisect.bisect_right(self.arrivals, self.now)

    def next_arrival(self) -> float:
        """The arrival time of the next call core hands over (skipping dropped ones)."""
        while self.handed in self.dropped:
            self.handed += 1
        self.handed += 1
        return self.arrivals[self.handed - 1]


@dataclass
class Beat:
    """The loop's heartbeat, as the case says."""

    held: list[tuple[float, float]] = field(default_factory=list)  # spans the loop was held

    def ensure(self) -> None:
        pass

    def free(self, since: float, now: float) -> bool:
        return not any(a < now and b > since for a, b in self.held)


def intake(core: Core, beat: Beat) -> CoreIntake:
    out = CoreIntake(core.started, lambda: core.now, EVERY, QUIET)
    out.heartbeat = beat  # type: ignore[assignment]
    return out


def take_at(core: Core, taker: CoreIntake, when: float) -> tuple[float, float]:
    """Take the next call in at ``when``: (true wait, measured wait)."""
    core.now = when
    arrival = core.next_arrival()
    return when - arrival, taker.take()


@pytest.mark.parametrize("seed", range(5))
def test_a_burst_is_dated_within_one_read(seed: int) -> None:
    """Warm-up calls, a pause, 3,000 calls at once and more arriving while they are
    taken in at a varying pace: each measured wait is the true one, at most one read
    (plus the pace between takes) short, never over."""
    rng = random.Random(seed)
    warm = [i * 0.01 for i in range(5)]
    burst = [1.0 + i * 1e-6 for i in range(3000)]
    late = sorted(1.0 + rng.random() * 2 for _ in range(500))
    core = Core(arrivals=sorted(warm + burst + late))
    taker = intake(core, Beat())
    for t in warm:
        take_at(core, taker, t + 0.001)
    when = 1.0005
    for _ in range(3500):
        when += rng.choice((0.0002, 0.0005, 0.002))
        true, measured = take_at(core, taker, max(when, core.arrivals[core.handed] + 1e-6))
        assert measured <= true + 1e-9
        assert measured >= true - EVERY - 0.002 - 1e-9


def test_a_free_pause_forgets_dropped_calls() -> None:
    """200 calls cancelled while they waited in core were never handed over. After a
    pause of a free loop the next call waited nothing, not the pause."""
    core = Core(arrivals=[i * 0.001 for i in range(400)], dropped=set(range(100, 300)))
    taker = intake(core, Beat())
    for i in range(200):  # the 200 handed over, taken in at 1 ms each
        take_at(core, taker, 0.5 + i * 0.001)
    core.arrivals.append(5.0)
    true, measured = take_at(core, taker, 5.0005)
    assert true == pytest.approx(0.0005)
    assert measured <= true


def test_a_held_loop_keeps_dating_the_backlog() -> None:
    """3,000 calls at once; the loop is held 0.5 s after 1,000 were taken in: the calls
    taken after it waited the whole time, and are measured so (no new anchor)."""
    core = Core(arrivals=[1.0] * 3000)
    beat = Beat(held=[(1.5, 2.0)])
    taker = intake(core, beat)
    for i in range(1000):
        take_at(core, taker, 1.0 + i * 0.0005)
    true, measured = take_at(core, taker, 2.0)
    assert true == pytest.approx(1.0)
    assert measured == pytest.approx(true, abs=EVERY)


def test_a_steady_gap_is_forgotten_a_draining_backlog_is_not() -> None:
    """Steady traffic (a call every 2 ms, taken 1 ms later) after 50 calls were dropped,
    no pause: within a window or two the measured waits are back to the true ones. A
    backlog that drains (3,000 at once) is never forgotten on the way."""
    arrivals = [i * 0.002 for i in range(2000)]
    core = Core(arrivals=arrivals, dropped=set(range(10, 60)))
    taker = intake(core, Beat())
    errors = []
    for i in range(1950):
        arrival = arrivals[i + 50 if i >= 10 else i]
        true, measured = take_at(core, taker, arrival + 0.001)
        errors.append(measured - true)
    assert max(errors[:60]) > 0.05  # the dropped calls made them look older at first
    assert all(abs(e) <= EVERY for e in errors[-1500:])

    core = Core(arrivals=[1.0] * 3000)
    taker = intake(core, Beat())
    for i in range(3000):
        true, measured = take_at(core, taker, 1.0 + i * 0.0005)
        assert measured == pytest.approx(true, abs=EVERY)


async def test_the_heartbeat_sees_a_held_loop() -> None:
    """A loop blocked for 0.2 s (a long computation on it) is not free over that span."""
    beat = Heartbeat(time.monotonic)
    beat.ensure()
    await asyncio.sleep(0.06)
    since = time.monotonic()
    time.sleep(0.2)  # noqa: ASYNC251 -- holds the loop, on purpose
    await asyncio.sleep(0.06)
    assert not beat.free(since, time.monotonic())


def test_reads_are_rare_without_a_backlog_and_follow_one_that_builds() -> None:
    """Steady traffic with no backlog (a call every 2 ms, taken 1 ms later) reads core's
    count about once per calm interval, not every 5 ms (a read costs ~0.15 ms of CPU).
    Then calls come faster than they are taken in, with no pause: once a read sees the
    backlog, reads come every 5 ms again and each wait is dated within one read."""
    calm = 0.1
    steady = [i * 0.002 for i in range(1000)]  # 2 s
    rush = [2.0 + i * 0.0002 for i in range(5000)]  # 5 calls a ms, taken 1 a ms
    core = Core(arrivals=steady + rush)
    reads = 0

    def started() -> int:
        nonlocal reads
        reads += 1
        return core.started()

    taker = CoreIntake(started, lambda: core.now, EVERY, QUIET, calm)
    taker.heartbeat = Beat()  # type: ignore[assignment]
    for t in steady:
        take_at(core, taker, t + 0.001)
    assert reads <= 2.0 / calm + 2  # not 2.0 / EVERY = 400
    for i in range(1500):
        true, measured = take_at(core, taker, 2.0005 + i * 0.001)
        assert measured <= true + 1e-9
        if i * 0.001 > calm + EVERY:  # the backlog was seen by then
            assert measured >= true - EVERY - 0.001 - 1e-9
