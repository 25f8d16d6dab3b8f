"""A replica's rating tail leaves no pull request behind (issue 20, item 18).

Across hosts, 3 of ~1,800 ratings took 0.66-1.9 s to reach another replica. The
cause: nats-py's ``fetch`` reads every pull's answers from one inbox, so when the
expiry notice (408) of an idle pull arrives after the client gave up on it, the
next fetch takes it for its own answer and sends a second, lingering pull for 512
messages. The engine then holds two pulls; the next rating goes to one of them,
and the fetch that receives it waits for that orphan to fill or expire.

Here a proxy (tests/natsdelay.py) makes that late 408 happen on every idle pull,
against the real nats-server. While the tail idles through several pulls and
ratings arrive between them, the engine's count of waiting pulls for the tail's
consumer must never pass one, and every rating must reach the tail. The same with
every 408 lost (nats-server 2.9 sometimes ends a pull without one when a rating is
stored as it expires): the tail must not take the silence for a lost consumer and
start over (a first fix waited 7 s for the answer, then resubscribed: 5.5 s late).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import nats
import pytest

from bookrec.ratinglog import Rating
from bookrec.ratinglog.jetstream import FETCH_WAIT, JetStreamRatingLog
from bookrec.ratinglog.natslink import NatsLink
from tests.natsdelay import late_timeouts

NATS_PORT = 4222
DIRECT = f"nats://127.0.0.1:{NATS_PORT}"
LATE = 0.2  # seconds each 408 is held back: far past the old fetch's 0.1 ms margin
IDLE_PULLS = 3


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"test-tail-{uuid.uuid4().hex[:10]}"
    yield name

    async def drop() -> None:
        nc = await nats.connect(DIRECT, connect_timeout=2, max_reconnect_attempts=1)
        with contextlib.suppress(Exception):  # never made
            await nc.jetstream().delete_stream(name)
        await nc.close()

    asyncio.run(drop())


async def watch_waiting(stream: str, stop: threading.Event) -> list[int]:
    """The engine's waiting-pull count of every consumer of ``stream``, every 20 ms."""
    nc = await nats.connect(DIRECT, connect_timeout=2)
    seen: list[int] = []
    try:
        while not stop.is_set():
            for info in await nc.jetstream().consumers_info(stream):
                seen.append(int(info.num_waiting or 0))
            await asyncio.sleep(0.02)
    finally:
        await nc.close()
    return seen


@pytest.mark.timeout(120)
@pytest.mark.parametrize("late", [LATE, None], ids=["408s-late", "408s-lost"])
def test_an_idle_tail_holds_one_pull_whatever_becomes_of_expiry_notices(
    stream: str, late: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[str] = []
    with late_timeouts(NATS_PORT, late) as proxy:
        link = NatsLink(proxy.url)
        writer = NatsLink(DIRECT)
        try:
            assert link.wait_connected(10) and writer.wait_connected(10)
            tail = JetStreamRatingLog(f"{proxy.url}/{stream}", link)
            log = JetStreamRatingLog(f"{DIRECT}/{stream}", writer)
            tail.follow(lambda _seq, r: got.append(r.user_id))
            stop = threading.Event()
            with _thread_result(lambda: asyncio.run(watch_waiting(stream, stop))) as waiting:
                sent = []
                for i in range(IDLE_PULLS):  # ratings between idle pulls that expire
                    time.sleep(FETCH_WAIT + LATE + 0.5)  # past one pull's life, and its 408
                    sent.append(f"u{i}")
                    log.append(Rating(sent[-1], "b", 0))
                deadline = time.monotonic() + 30
                while len(got) < len(sent) and time.monotonic() < deadline:
                    time.sleep(0.05)
                stop.set()
            tail.close()
        finally:
            link.close()
            writer.close()
    restarts = [r.getMessage() for r in caplog.records if "tail interrupted" in r.getMessage()]
    assert not restarts, "the tail started over"
    assert got == sent, "every rating reached the tail, once, in order"
    assert waiting and max(waiting) <= 1, f"pulls left waiting on the engine: {max(waiting)}"
    assert proxy.delayed >= IDLE_PULLS, "idle pulls expired, their 408s held back or lost"


@contextlib.contextmanager
def _thread_result(fn: Callable[[], list[int]]) -> Iterator[list[int]]:
    """Run ``fn`` in a thread; after the block, the list holds what it returned."""
    out: list[int] = []

    def run() -> None:
        out.extend(fn())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield out
    finally:
        t.join(10)
