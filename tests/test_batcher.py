"""server/batcher.py on a real event loop with stand-in compute functions: when a batch
goes, what it holds, and that each call gets its own answer, error, deadline and
cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest

from server import batcher as batcher_module
from server.batcher import Batcher, BatchSettings
from tests.fault_table import record_fault

R = TypeVar("R")


class Engine:
    """run_many / run_one that record what they were given; a compute hand-off that can
    be held open (``gate``), as the compute thread is while a batch runs."""

    def __init__(self) -> None:
        self.many: list[tuple[str, list[int]]] = []
        self.one: list[tuple[str, int]] = []
        self.alone_calls: list[tuple[str, int]] = []
        self.gate: asyncio.Event | None = None
        self.fail_many = False

    def run_many(self, model: str, items: Sequence[int]) -> list[int | Exception]:
        self.many.append((model, list(items)))
        if self.fail_many:
            raise RuntimeError("a bug in the batched path")
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    def run_one(self, model: str, item: int) -> int:
        self.one.append((model, item))
        if item < 0:
            raise ValueError(f"bad {item}")
        return item * 10

    async def alone(self, model: str, item: int) -> int:
        """The path from before batching (it too may be held at the gate)."""
        self.alone_calls.append((model, item))
        if self.gate is not None:
            await self.gate.wait()
        return item * 10

    async def compute(self, fn: Callable[[], R]) -> R:
        if self.gate is not None:
            await self.gate.wait()
        return fn()


def _batcher(engine: Engine, **settings: Any) -> Batcher[str, int, int]:
    return Batcher(
        "Test",
        engine.run_many,
        engine.run_one,
        engine.alone,
        engine.compute,
        BatchSettings(**settings),
    )


def _in_flight(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """What admission would report: calls this worker holds."""
    monkeypatch.setattr(batcher_module, "calls_in_flight", lambda: n)


def _ok() -> None:
    pass


async def test_a_lone_call_computes_at_once_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    _in_flight(monkeypatch, 1)
    engine = Engine()
    b = _batcher(engine, max_wait=10.0)  # a wait would show: the test would hang
    assert await asyncio.wait_for(b.submit("m", 4, _ok), 1.0) == 40
    assert engine.alone_calls == [("m", 4)] and engine.one == [] and engine.many == []


async def test_calls_arriving_during_a_batch_go_together_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _in_flight(monkeypatch, 1)
    engine = Engine()
    engine.gate = asyncio.Event()
    b = _batcher(engine, max_wait=10.0)
    first = asyncio.create_task(b.submit("m", 1, _ok))
    await asyncio.sleep(0)  # the first call is computing (held at the gate)
    _in_flight(monkeypatch, 5)
    rest = [asyncio.create_task(b.submit("m", i, _ok)) for i in (2, 3, 4, -5)]
    await asyncio.sleep(0.01)
    assert engine.one == [] and engine.many == []  # nothing else starts meanwhile
    engine.gate.set()
    assert await first == 10
    assert [await t for t in rest[:3]] == [20, 30, 40]
    with pytest.raises(ValueError, match="bad -5"):  # one call's error is that call's
        await rest[3]
    assert engine.alone_calls == [("m", 1)] and engine.many == [("m", [2, 3, 4, -5])]
    assert b.batches == 1 and b.batched_calls == 4


async def test_a_batch_waits_for_calls_in_flight_at_most_max_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _in_flight(monkeypatch, 3)  # three calls held, two reach the batcher
    engine = Engine()
    b = _batcher(engine, max_wait=0.05)
    tasks = [asyncio.create_task(b.submit("m", i, _ok)) for i in (1, 2)]
    await asyncio.sleep(0.01)
    assert engine.many == []  # the third may still come
    assert [await t for t in tasks] == [10, 20]  # it did not: the wait ended the batch
    assert engine.many == [("m", [1, 2])]


async def test_a_batch_goes_once_every_call_held_is_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _in_flight(monkeypatch, 3)
    engine = Engine()
    b = _batcher(engine, max_wait=10.0)
    tasks = [asyncio.create_task(b.submit("m", i, _ok)) for i in (1, 2, 3)]
    assert await asyncio.wait_for(asyncio.gather(*tasks), 1.0) == [10, 20, 30]
    assert engine.many == [("m", [1, 2, 3])]


async def test_max_batch_bounds_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    _in_flight(monkeypatch, 100)
    engine = Engine()
    b = _batcher(engine, max_wait=10.0, max_batch=3)
    tasks = [asyncio.create_task(b.submit("m", i, _ok)) for i in range(1, 8)]
    results = await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
    assert results == [i * 10 for i in range(1, 8)]
    assert [len(items) for _, items in engine.many] == [3, 3]
    assert engine.one == [("m", 7)]  # the last batch held one call: computed alone


async def test_calls_on_different_models_compute_per_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _in_flight(monkeypatch, 4)
    engine = Engine()
    b = _batcher(engine, max_wait=10.0)
    tasks = [
        asyncio.create_task(b.submit(m, i, _ok))
        for m, i in (("v1", 1), ("v2", 2), ("v1", 3), ("v2", 4))
    ]
    assert await asyncio.wait_for(asyncio.gather(*tasks), 1.0) == [10, 20, 30, 40]
    assert sorted(engine.many) == [("v1", [1, 3]), ("v2", [2, 4])]


async def test_a_call_cancelled_while_waiting_is_not_computed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _in_flight(monkeypatch, 1)
    engine = Engine()
    engine.gate = asyncio.Event()
    b = _batcher(engine, max_wait=10.0)
    first = asyncio.create_task(b.submit("m", 1, _ok))
    await asyncio.sleep(0)
    _in_flight(monkeypatch, 4)
    gone = asyncio.create_task(b.submit("m", 2, _ok))
    kept = [asyncio.create_task(b.submit("m", i, _ok)) for i in (3, 4)]
    await asyncio.sleep(0)
    gone.cancel()  # its client went away while it waited
    await asyncio.sleep(0)
    engine.gate.set()
    assert await first == 10 and [await t for t in kept] == [30, 40]
    assert gone.cancelled()
    assert engine.many == [("m", [3, 4])]
    record_fault(
        "a batched call cancelled by its client while it waits for its batch",
        "leaves the queue and is not computed; its neighbours' batch goes without it",
    )


class Expired(Exception):
    pass


def _expired() -> None:
    raise Expired("deadline passed before compute")


async def test_a_call_past_its_deadline_when_its_batch_starts_is_not_computed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _in_flight(monkeypatch, 3)
    engine = Engine()
    b = _batcher(engine, max_wait=10.0)
    tasks = [
        asyncio.create_task(b.submit("m", 1, _ok)),
        asyncio.create_task(b.submit("m", 2, _expired)),
        asyncio.create_task(b.submit("m", 3, _ok)),
    ]
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1.0)
    assert done[0] == 10 and done[2] == 30 and isinstance(done[1], Expired)
    assert engine.many == [("m", [1, 3])]
    record_fault(
        "a batched call whose deadline passed before its batch started",
        "not computed (its Deadline.check error: DEADLINE_EXCEEDED); the rest computed",
    )


async def test_a_failing_batch_is_computed_again_call_by_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _in_flight(monkeypatch, 3)
    engine = Engine()
    engine.fail_many = True
    b = _batcher(engine, max_wait=10.0)
    tasks = [asyncio.create_task(b.submit("m", i, _ok)) for i in (1, -2, 3)]
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1.0)
    assert done[0] == 10 and done[2] == 30 and isinstance(done[1], ValueError)
    assert engine.one == [("m", 1), ("m", -2), ("m", 3)]
    record_fault(
        "the batched computation raises (a bug in the batch path)",
        "logged; each call computed again alone: only the call at fault fails",
    )
