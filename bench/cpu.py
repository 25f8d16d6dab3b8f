"""Server CPU time per call (issue 14), measured with h2load, a C client.

Latency on this 2-core machine mostly measures the client; the CPU time the
server spends per call is its capacity per core and moves little with noise.
Protocol, per RPC on ``python -m server --workers 2 --cache-size 0``:

- a separate 2 s h2load warm-up run, then the measured run: closed loop,
  8 connections x 1 stream, one fixed request;
- CPU per call: utime + stime of all the server's processes (supervisor and
  workers, from /proc) over the measured run, over the calls it completed;
- grpc.health.v1.Health/Check in the same server session: the floor;
- then each RPC open loop (h2load --rps) at 50% of its measured capacity, for
  p99 / p50 there.

Repeated ``repeats`` times per catalogue size; the table gives the median and
the range. Figures only, never a timed test.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2

from bench import h2load
from bench.report import markdown_table
from bench.scale_artifact import ScaleSpec
from bench.serverproc import ServerProcess, cpu_seconds, running_server
from bench.workload import FLOOR, PATHS, ArtifactIds
from bookrec.v1 import recommender_pb2

DEFAULT_SIZES: tuple[int, ...] = (30_000, 300_000, 1_000_000)
RPCS: tuple[str, ...] = (FLOOR, "recommend", "similar", "cold_start")
LABELS = {
    FLOOR: "Health/Check (floor)",
    "recommend": "Recommend (reranker on)",
    "similar": "Similar (ALS)",
    "cold_start": "ColdStart (2 subjects)",
}


@dataclass(frozen=True)
class CpuSettings:
    connections: int = 8
    streams: int = 1
    warmup: float = 2.0
    duration: float = 5.0
    repeats: int = 3
    open_share: float = 0.5  # open-loop rate, as a share of the closed-loop capacity
    k: int = 10


def requests(ids: ArtifactIds, k: int = 10) -> dict[str, bytes]:
    """One fixed, typical request per RPC: a busy user, a popular book, two common
    subjects (the cache is off, so repeating one request costs the same as many)."""
    user = ids.user_ids[len(ids.user_ids) // 10]
    book = ids.book_ids[len(ids.book_ids) // 100]
    msgs: dict[str, Any] = {
        FLOOR: health_pb2.HealthCheckRequest(service=""),
        "recommend": recommender_pb2.RecommendRequest(user_id=user, k=k),
        "similar": recommender_pb2.SimilarRequest(
            book_id=book, k=k, mode=recommender_pb2.SIMILAR_MODE_ALS
        ),
        "cold_start": recommender_pb2.ColdStartRequest(
            favourite_subjects=sorted(ids.subject_ids[:2]), k=k
        ),
    }
    return {kind: m.SerializeToString() for kind, m in msgs.items()}


def measure(
    server: ServerProcess,
    kind: str,
    body: bytes,
    settings: CpuSettings,
    rps: float | None = None,
) -> dict[str, Any]:
    """The warm-up run, then the measured one with the server's CPU around it."""
    path = PATHS[kind]
    conn, streams = settings.connections, settings.streams
    h2load.run(server.target, path, body, conn, streams, settings.warmup, warmup=0, rps=rps)
    pids = server.tree()
    before, wall = cpu_seconds(pids), time.perf_counter()
    if rps:  # open loop: streams to spare, so a slow reply does not hold the next send
        streams = max(streams, 16)
    result = h2load.run(
        server.target, path, body, conn, streams, settings.duration, warmup=0, rps=rps
    )
    cpu, wall = cpu_seconds(pids) - before, time.perf_counter() - wall
    calls = result.succeeded
    return {
        "rpc": kind,
        "calls": calls,
        "failed": result.failed,
        "rps": round(result.rps, 1),
        "p50_ms": result.latency.get("p50_ms"),
        "p99_ms": result.latency.get("p99_ms"),
        "server_cpu_s": round(cpu, 3),
        "server_cores": round(cpu / wall, 2) if wall > 0 else None,
        "cpu_ms_per_call": round(1000 * cpu / calls, 4) if calls else None,
        "status_codes": result.status_codes,
    }


def _median(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.median(kept), 4) if kept else None


def _range(values: Sequence[float | None], digits: int = 2) -> str:
    kept = [v for v in values if v is not None]
    if not kept:
        return "-"
    lo, hi = min(kept), max(kept)
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f}-{hi:.{digits}f}"


def summarize_runs(books: int, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per RPC: medians and ranges over the repeats, the floor beside each."""
    by_kind = {k: [r for r in runs if r["rpc"] == k and r["mode"] == "closed"] for k in RPCS}
    floor = _median([r["cpu_ms_per_call"] for r in by_kind[FLOOR]])
    rows = []
    for kind in RPCS:
        mine = by_kind[kind]
        if not mine:
            continue
        cpu = _median([r["cpu_ms_per_call"] for r in mine])
        open_runs = [r for r in runs if r["rpc"] == kind and r["mode"] == "open"]
        ratio = [r["p99_ms"] / r["p50_ms"] for r in open_runs if r["p50_ms"] and r["p99_ms"]]
        rows.append(
            {
                "books": books,
                "rpc": kind,
                "label": LABELS[kind],
                "runs": len(mine),
                "rps": _median([r["rps"] for r in mine]),
                "rps_range": _range([r["rps"] for r in mine], 0),
                "p50_ms": _median([r["p50_ms"] for r in mine]),
                "p99_ms": _median([r["p99_ms"] for r in mine]),
                "cpu_ms_per_call": cpu,
                "cpu_range": _range([r["cpu_ms_per_call"] for r in mine]),
                "floor_cpu_ms": floor,
                "above_floor_ms": None if cpu is None or floor is None else round(cpu - floor, 4),
                "open_rps": _median([r["rps"] for r in open_runs]),
                "open_p50_ms": _median([r["p50_ms"] for r in open_runs]),
                "open_p99_ms": _median([r["p99_ms"] for r in open_runs]),
                "open_p99_over_p50": _median(ratio),
            }
        )
    return rows


def run_size(
    artifact: Path, workdir: Path, settings: CpuSettings, rpcs: Sequence[str] = RPCS
) -> tuple[list[dict[str, Any]], ArtifactIds, int]:
    """All repeats on one artifact: raw runs (closed, then open loop), ids, server workers."""
    ids = ArtifactIds.load(artifact)
    bodies = requests(ids, settings.k)
    runs: list[dict[str, Any]] = []
    with running_server(artifact.parent, workdir, 2, cache_size=0) as server:
        for repeat in range(settings.repeats):
            for kind in rpcs:
                row = measure(server, kind, bodies[kind], settings)
                runs.append({"mode": "closed", "repeat": repeat, **row})
        if settings.open_share > 0:
            for kind in rpcs:
                capacity = _median(
                    [r["rps"] for r in runs if r["rpc"] == kind and r["mode"] == "closed"]
                )
                if not capacity:
                    continue
                rate = settings.open_share * capacity
                row = measure(server, kind, bodies[kind], settings, rps=rate)
                runs.append({"mode": "open", "repeat": 0, "target_rps": round(rate, 1), **row})
        workers = server.workers or 1
    return runs, ids, workers


COLUMNS = (
    ("books", "books"),
    ("RPC", "label"),
    ("n", "runs"),
    ("calls/s", "rps_range"),
    ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"),
    ("server CPU ms/call", "cpu_range"),
    ("floor ms/call", "floor_cpu_ms"),
    ("above floor ms", "above_floor_ms"),
    ("open-loop calls/s", "open_rps"),
    ("open p50 ms", "open_p50_ms"),
    ("open p99 ms", "open_p99_ms"),
    ("open p99/p50", "open_p99_over_p50"),
)


def markdown(rows: list[dict[str, Any]], notes: Sequence[str], settings: CpuSettings) -> str:
    curve = [r for r in rows if r["rpc"] != FLOOR]
    curve_cols = (("books", "books"), ("RPC", "label"), ("server CPU ms/call", "cpu_ms_per_call"))
    return "\n".join(
        [
            "## CPU per call: server utime+stime / completed calls (h2load, closed loop)",
            "",
            f"`python -m server --workers 2 --cache-size 0`; h2load {settings.connections} "
            f"connections x {settings.streams} stream, one fixed request per RPC; a separate "
            f"{settings.warmup:g} s warm-up run before each {settings.duration:g} s measured "
            f"run; {settings.repeats} repeats (median; ranges in the cells). Open loop: "
            f"h2load --rps at {settings.open_share:.0%} of the closed-loop calls/s. Floor = "
            "grpc.health.v1.Health/Check on the same server.",
            "",
            markdown_table(rows, COLUMNS),
            "",
            "Books curve (median server CPU ms per call):",
            "",
            markdown_table(curve, curve_cols),
            "",
            *notes,
        ]
    )


def cpu_scenario(
    sizes: Sequence[int],
    users: int,
    factors: int,
    seed: int,
    settings: CpuSettings,
    big_users: int | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The protocol on each synthetic catalogue size (artifacts built once, reused).
    ``big_users``: the user count for catalogues of 1M books and more (building 1M x
    100k is slow on this machine); None keeps ``users``."""
    from bench.common import RESULTS
    from bench.scenarios import scale_artifact

    if h2load.available() is None:
        md = "## CPU per call\n\nh2load is not installed (apt-get install nghttp2-client)."
        return [], md
    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    notes: list[str] = []
    for books in sizes:
        n_users = big_users if big_users and books >= 1_000_000 else users
        if n_users != users:
            notes.append(f"{books} books: built with {n_users} users (not {users}), to build fast.")
        spec = ScaleSpec(books=books, users=n_users, factors=factors, seed=seed)
        path, built = scale_artifact(spec)
        if built is not None:
            notes.append(f"{books} books: artifact built in {built:.0f} s.")
        runs, _, _ = run_size(path, RESULTS / f"server-cpu-{books}", settings)
        raw += [{"section": "run", "books": books, **r} for r in runs]
        rows += summarize_runs(books, runs)
    md = markdown(rows, notes, settings)
    return [{"section": "summary", **r} for r in rows] + raw, md
