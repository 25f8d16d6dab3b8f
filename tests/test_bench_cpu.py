"""bench/cpu.py's arithmetic: CPU from /proc (bench/serverproc.py), medians and ranges
over repeats, the floor beside each row, open-loop figures kept apart from closed-loop
ones."""

from __future__ import annotations

import os
import time
from typing import Any

from bench import cpu
from bench.serverproc import cpu_seconds


def test_cpu_seconds_counts_this_process_and_ignores_gone_ones() -> None:
    before = cpu_seconds([os.getpid()])
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert cpu_seconds([os.getpid()]) >= before + 0.03
    assert cpu_seconds([2**22 + 12345]) == 0.0  # above any pid_max default


def _run(rpc: str, mode: str, cpu_ms: float, rps: float, p50: float, p99: float) -> dict[str, Any]:
    return {
        "rpc": rpc,
        "mode": mode,
        "cpu_ms_per_call": cpu_ms,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
    }


def test_summaries_take_medians_and_put_the_floor_beside_each_row() -> None:
    runs = [
        _run("health", "closed", 0.2, 5000, 1.0, 2.0),
        _run("health", "closed", 0.3, 4000, 1.0, 2.0),
        _run("health", "closed", 0.25, 4500, 1.0, 2.0),
        _run("recommend", "closed", 2.0, 800, 10.0, 20.0),
        _run("recommend", "closed", 1.0, 900, 9.0, 18.0),
        _run("recommend", "closed", 1.5, 850, 9.5, 19.0),
        _run("recommend", "open", 9.9, 400, 4.0, 12.0),
    ]
    rows = {r["rpc"]: r for r in cpu.summarize_runs(300_000, runs)}
    assert set(rows) == {"health", "recommend"}
    rec = rows["recommend"]
    assert rec["cpu_ms_per_call"] == 1.5 and rec["runs"] == 3  # the open run is not in it
    assert rec["cpu_range"] == "1.00-2.00" and rec["rps"] == 850
    assert rec["floor_cpu_ms"] == 0.25 and rec["above_floor_ms"] == 1.25
    assert rec["open_rps"] == 400 and rec["open_p99_over_p50"] == 3.0
    assert rows["health"]["open_rps"] is None
    md = cpu.markdown(list(rows.values()), ["a note"], cpu.CpuSettings())
    assert "| 300000 | als+reranker | on | 8x1 | Recommend | 3 |" in md and "a note" in md


def _at(
    rpc: str, cpu_ms: float, in_flight: int, batching: bool | str = True, **tags: Any
) -> dict[str, Any]:
    return {
        **_run(rpc, "closed", cpu_ms, 1000, 1.0, 2.0),
        "in_flight": in_flight,
        "batching": batching,
        **tags,
    }


def test_the_curve_the_batching_off_rows_and_pipelines_are_rows_of_their_own() -> None:
    """Each (pipeline, batching, concurrency) is its own row, with the floor of the same
    server at the same concurrency and the cost over that server's 8x1 cost."""
    runs = [
        _at("health", 0.40, 8),
        _at("health", 0.20, 64),
        _at("recommend", 2.0, 8),
        _at("recommend", 1.0, 64),
        _at("recommend", 2.2, 1),
        _at("health", 0.45, 8, batching=False),
        _at("recommend", 2.4, 8, batching=False),
        _at("recommend", 2.1, 64, batching=False),
        _at("health", 0.43, 8, batching="before"),
        _at("recommend", 2.3, 8, batching="before"),
        _at("health", 0.41, 8, pipeline="als+item_item"),
        _at("recommend", 0.9, 8, pipeline="als+item_item"),
    ]
    rows = cpu.summarize_runs(300_000, runs)
    got = {(r["pipeline"], r["batching"], r["shape"], r["rpc"]): r for r in rows}
    on64 = got[("als+reranker", "on", "8x8", "recommend")]
    assert on64["floor_cpu_ms"] == 0.2 and on64["vs_8x1"] == 0.5
    assert got[("als+reranker", "on", "1x1", "recommend")]["floor_cpu_ms"] is None
    off64 = got[("als+reranker", "off", "8x8", "recommend")]
    assert off64["vs_8x1"] == 0.875 and off64["floor_cpu_ms"] is None
    before = got[("als+reranker", "before", "8x1", "recommend")]
    assert before["cpu_ms_per_call"] == 2.3 and before["floor_cpu_ms"] == 0.43
    ii = got[("als+item_item", "on", "8x1", "recommend")]
    assert ii["cpu_ms_per_call"] == 0.9 and ii["floor_cpu_ms"] == 0.41
    # The batching-on rows first, by concurrency; then off; then the next pipeline.
    order = [
        (r["pipeline"], r["batching"], r["in_flight"]) for r in rows if r["rpc"] == "recommend"
    ]
    assert order == [
        ("als+reranker", "on", 1),
        ("als+reranker", "on", 8),
        ("als+reranker", "on", 64),
        ("als+reranker", "off", 8),
        ("als+reranker", "off", 64),
        ("als+reranker", "before", 8),
        ("als+item_item", "on", 8),
    ]
    assert [cpu.shape(n) for n in (1, 8, 32, 64)] == [(1, 1), (8, 1), (8, 4), (8, 8)]
