"""The asyncio load generator: closed loop (fixed concurrency) and open loop (fixed rate).

Closed loop: ``concurrency`` workers each send, wait for the reply, send again.
It measures capacity, but a slow reply also delays the next send, so its
latencies understate what users behind a queue would see.

Open loop: requests leave at Poisson *intended* times drawn before the run, and
latency is measured from the intended time, not from when the client managed to
send. If the server (or the client) falls behind, the wait counts against the
latency instead of silently lowering the rate (no coordinated omission);
``send_lag`` reports how late the client itself was.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import grpc
import numpy as np

from bench.arrivals import poisson_offsets
from bench.client import ChannelPool
from bench.workload import RequestFactory

DEFAULT_TIMEOUT = 10.0


class Sample(NamedTuple):
    """One request; times are ``time.perf_counter()`` seconds."""

    kind: str
    channel: int
    intended: float  # when it should have left (open loop) or left (closed loop)
    sent: float
    done: float
    code: str  # "OK" or the grpc.StatusCode name
    version: str  # the reply's model_version, "" for errors and health checks
    detail: str = ""  # the status details of an error

    @property
    def latency(self) -> float:
        return self.done - self.intended


@dataclass
class RunResult:
    mode: str  # "open" or "closed"
    channels: int
    duration: float  # planned seconds
    started: float  # perf_counter at the first intended send
    finished: float  # perf_counter after the last reply
    offered_rate: float | None = None
    concurrency: int | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        """Seconds from the first intended send to the last reply, at least the planned window
        (the last Poisson arrival and its reply may both fall before its end)."""
        return max(self.finished - self.started, self.duration, 1e-9)


async def _one(
    pool: ChannelPool,
    channel: int,
    kind: str,
    request: Any,
    intended: float,
    rpc_timeout: float,
    out: list[Sample],
) -> None:
    sent = time.perf_counter()
    try:
        reply = await pool.method(channel, kind)(request, timeout=rpc_timeout)
        code, version, detail = "OK", str(getattr(reply, "model_version", "")), ""
    except grpc.aio.AioRpcError as e:
        code, version, detail = e.code().name, "", str(e.details() or "")
    out.append(Sample(kind, channel, intended, sent, time.perf_counter(), code, version, detail))


async def closed_loop(
    pool: ChannelPool,
    factory: RequestFactory,
    concurrency: int,
    duration: float,
    rpc_timeout: float = DEFAULT_TIMEOUT,
) -> RunResult:
    """``concurrency`` workers, worker w on channel w mod channels, for ``duration`` seconds."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    samples: list[Sample] = []
    start = time.perf_counter()
    end = start + duration

    async def worker(w: int) -> None:
        channel = w % len(pool)
        while time.perf_counter() < end:
            kind, request = factory.next()
            await _one(pool, channel, kind, request, time.perf_counter(), rpc_timeout, samples)

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return RunResult(
        mode="closed",
        channels=len(pool),
        duration=duration,
        started=start,
        finished=time.perf_counter(),
        concurrency=concurrency,
        samples=samples,
    )


async def open_loop(
    pool: ChannelPool,
    factory: RequestFactory,
    rate: float,
    duration: float,
    rng: np.random.Generator,
    rpc_timeout: float = DEFAULT_TIMEOUT,
) -> RunResult:
    """Poisson arrivals at ``rate``/s for ``duration`` s, round-robin over the channels."""
    offsets = poisson_offsets(rate, duration, rng).tolist()
    samples: list[Sample] = []
    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.005
    backlog = 0
    for i, offset in enumerate(offsets):
        intended = start + offset
        delay = intended - time.perf_counter()
        if delay > 0.0002:
            await asyncio.sleep(delay)
            backlog = 0
        else:
            backlog += 1
            if backlog % 32 == 0:  # behind schedule: still let replies be read
                await asyncio.sleep(0)
        kind, request = factory.next()
        task = asyncio.create_task(
            _one(pool, i % len(pool), kind, request, intended, rpc_timeout, samples)
        )
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    return RunResult(
        mode="open",
        channels=len(pool),
        duration=duration,
        started=start,
        finished=time.perf_counter(),
        offered_rate=rate,
        samples=samples,
    )
