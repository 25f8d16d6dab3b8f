"""A dynamic batcher: a worker's concurrent calls of one RPC computed together.

Why: at 300k books most of a call's server CPU is per-call work (Python around the
native searches and trees, the hand-off to the compute thread, GIL switches), the
same for one call as for eight; a batch pays it once (Triton's dynamic batcher and
TF Serving's batching session do this for model servers). docs/serving.md, "Batching".

When a batch goes (``_ready``):

- alone: when this worker holds no other call (admission's count), at once, by
  ``alone``: the path a call took before batching (inline on the loop), so an idle
  server waits for nothing and pays nothing;
- when the RPC's previous batch ends: the calls that queued meanwhile, at once (they
  have waited a batch already);
- otherwise when ``max_batch`` are waiting, or every call this worker holds is already
  waiting in a batcher (no other is coming), or ``max_wait`` after the first joined.

A batch computes through ``compute`` (the worker's compute thread, or inline when
alone; handlers/common.py) as ``run_many(bundle, items)``: calls on different model
versions (during a swap) are computed per bundle, a batch of one by ``run_one``, and
a batch that raises is computed again call by call, so one call's bug never fails
its neighbours. A call cancelled while it waits leaves the queue; one whose
deadline passes before its batch starts is not computed (``check``).

Asyncio only, no gRPC: the handlers map the outcomes to status codes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import Histogram

from bookrec.log import kv
from server.admission import calls_in_flight

log = logging.getLogger("server.batcher")

BATCH_CALLS = Histogram(
    "bookrec_batch_calls",
    "Calls computed together in one batch (server/batcher.py), by RPC",
    ["rpc"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)

Item = TypeVar("Item")
Out = TypeVar("Out")
Model = TypeVar("Model")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchSettings:
    """ServerConfig's batching, batch_wait_ms and max_batch."""

    enabled: bool = True
    max_wait: float = 0.001  # seconds a call may wait for others to join
    max_batch: int = 32


@dataclass
class _Gauge:
    n: int = 0


# Calls of this worker waiting in any batcher or computing in a batch.
_PARKED = _Gauge()


@dataclass(eq=False)
class _Waiting(Generic[Model, Item, Out]):
    model: Model
    item: Item
    check: Callable[[], None]  # raises when the call should not be computed any more
    future: asyncio.Future[Out]
    since: float = field(default_factory=time.monotonic)


Compute = Callable[[Callable[[], R]], Awaitable[R]]


class Batcher(Generic[Model, Item, Out]):
    """One RPC's batcher in one worker: ``await batcher.submit(model, item, check)``."""

    def __init__(
        self,
        rpc: str,
        run_many: Callable[[Model, Sequence[Item]], list[Out | Exception]],
        run_one: Callable[[Model, Item], Out],
        alone: Callable[[Model, Item], Awaitable[Out]],
        compute: Compute[list[Out | Exception]],
        settings: BatchSettings,
    ) -> None:
        """``run_many`` / ``run_one``: a batch's calls, computed where ``compute`` puts
        them; ``alone``: a call alone in its worker, computed as before batching."""
        self.rpc = rpc
        self.run_many = run_many
        self.run_one = run_one
        self.alone = alone
        self.compute = compute
        self.settings = settings
        self._queue: deque[_Waiting[Model, Item, Out]] = deque()
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # the batch computing (held: not GC'd)
        self._observe = BATCH_CALLS.labels(rpc=rpc)
        self.batches = 0  # batches computed, ever (for tests and logs)
        self.batched_calls = 0  # calls computed in them

    async def submit(self, model: Model, item: Item, check: Callable[[], None]) -> Out:
        """``item``'s answer on ``model``, computed in a batch with the calls that join."""
        if not self._running and not self._queue and calls_in_flight() <= 1:
            return await self._alone(model, item)
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        waiting = _Waiting(model, item, check, future)
        _PARKED.n += 1
        try:
            self._queue.append(waiting)
            self._consider()
            return await future
        finally:
            _PARKED.n -= 1
            if not waiting.future.done():  # cancelled while waiting: not computed
                waiting.future.cancel()
                if waiting in self._queue:
                    self._queue.remove(waiting)

    async def _alone(self, model: Model, item: Item) -> Out:
        """A call alone in its worker: computed now, as before batching (inline on the
        loop); calls that arrive meanwhile queue behind it and go together after."""
        self._running = True
        _PARKED.n += 1
        try:
            return await self.alone(model, item)
        finally:
            _PARKED.n -= 1
            self._running = False
            if self._queue:
                asyncio.get_running_loop().call_soon(self._go)

    def _consider(self) -> None:
        """Start a batch now if one is due (see the module's docstring), else make sure
        a timer will start it."""
        if self._running or not self._queue:
            return
        if self._ready():
            self._start()
        elif self._timer is None:
            delay = max(0.0, self._queue[0].since + self.settings.max_wait - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _ready(self) -> bool:
        held = calls_in_flight()
        return (
            held <= 1  # alone (or admission off: nothing to wait for)
            or len(self._queue) >= self.settings.max_batch
            or held <= _PARKED.n  # every call this worker holds is parked: none to come
            or time.monotonic() - self._queue[0].since >= self.settings.max_wait
        )

    def _on_timer(self) -> None:
        self._timer = None
        self._go()

    def _go(self) -> None:
        """The wait is over, or the previous batch ended: the queue goes now."""
        if not self._running and self._queue:
            self._start()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch: list[_Waiting[Model, Item, Out]] = []
        while self._queue and len(batch) < self.settings.max_batch:
            waiting = self._queue.popleft()
            if not waiting.future.done():
                batch.append(waiting)
        if not batch:
            return
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[_Waiting[Model, Item, Out]]) -> None:
        """Compute ``batch`` (``self._running`` is set) and settle its calls."""
        try:
            outcomes = await self.compute(lambda: self._compute(batch))
        except Exception as e:  # the hand-off itself failed: every call hears why
            outcomes = [e] * len(batch)
        except BaseException:  # cancelled (shutdown)
            for waiting in batch:
                waiting.future.cancel()
            raise
        finally:
            self._running = False
            if self._queue:  # those that queued meanwhile go next, without waiting more
                asyncio.get_running_loop().call_soon(self._go)
        self._settle(batch, outcomes)

    def _settle(
        self, batch: list[_Waiting[Model, Item, Out]], outcomes: list[Out | Exception]
    ) -> None:
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if waiting.future.done():
                continue
            if isinstance(outcome, Exception):
                waiting.future.set_exception(outcome)
            else:
                waiting.future.set_result(outcome)

    def _compute(self, batch: list[_Waiting[Model, Item, Out]]) -> list[Out | Exception]:
        """In the compute thread (or inline): drop the calls no longer wanted, then one
        ``run_many`` per model version among the rest."""
        out: list[Out | Exception | None] = [None] * len(batch)
        groups: dict[int, list[int]] = {}
        for i, waiting in enumerate(batch):
            if waiting.future.done():  # its caller went away since the batch started
                out[i] = RuntimeError("cancelled")
                continue
            try:
                waiting.check()
            except Exception as e:  # past its deadline, or cancelled: not computed
                out[i] = e
                continue
            groups.setdefault(id(waiting.model), []).append(i)
        for rows in groups.values():
            model = batch[rows[0]].model
            items = [batch[i].item for i in rows]
            for i, outcome in zip(rows, self._group(model, items), strict=True):
                out[i] = outcome
        self.batches += 1
        self.batched_calls += len(batch)
        self._observe.observe(len(batch))
        return [o if o is not None else RuntimeError("not computed") for o in out]

    def _group(self, model: Model, items: list[Item]) -> list[Out | Exception]:
        if len(items) == 1:
            return [self._one(model, items[0])]
        try:
            return self.run_many(model, items)
        except Exception as e:  # a bug in the batched path: each call computed alone
            log.exception(
                "batch failed; computing its calls one by one",
                extra=kv(rpc=self.rpc, calls=len(items), error=repr(e)),
            )
            return [self._one(model, item) for item in items]

    def _one(self, model: Model, item: Item) -> Out | Exception:
        try:
            return self.run_one(model, item)
        except Exception as e:  # that call's answer (INVALID_ARGUMENT, NOT_FOUND, a bug)
            return e
