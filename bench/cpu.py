"""Server CPU time per call (issues 14 and 21), measured with h2load, a C client.

Latency on this 2-core machine mostly measures the client; the CPU time the
server spends per call is its capacity per core and moves little with noise.
Protocol, per RPC on ``python -m server --workers 2 --cache-size 0``:

- a separate 2 s h2load warm-up run, then the measured run: closed loop, one fixed
  request, at each point of the concurrency curve (1, 8, 32 and 64 calls in flight:
  1 connection x 1 stream, 8 x 1, 8 x 4, 8 x 8);
- CPU per call: utime + stime of all the server's processes (supervisor and
  workers, from /proc) over the measured run, over the calls it completed;
- grpc.health.v1.Health/Check at the same concurrency on the same server: the floor,
  beside each row;
- the same server with batching off (``--no-batching``) at 8 and 64 in flight;
- optionally the server of another commit (``--cpu-baseline REF``: a git worktree of
  REF, on the same artifact) at 8 in flight: the "before" of a change, side by side;
- then each RPC open loop (h2load --rps) at 50% of its 8 x 1 capacity, for p99 / p50;
- per pipeline Recommend serves (``bench.scale_artifact --pipeline``): with the
  reranker (every RPC), and ALS + item-item (the floor and Recommend, which alone
  depends on it).

The servers of one artifact (batching on, off, the baseline) run at once and are
measured in turn at each point and RPC, the order reversed each repeat: on this
shared machine a neighbour's burst then falls on all of them, and their ratios hold
where a figure alone moves by a third. Repeated ``repeats`` times per catalogue size;
the table gives the median and the range. Figures only, never a timed test.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2

from bench import h2load
from bench.common import ROOT
from bench.report import markdown_table
from bench.scale_artifact import DEFAULT_PIPELINE, ScaleSpec
from bench.serverproc import ServerProcess, cpu_seconds, running_server
from bench.workload import FLOOR, PATHS, ArtifactIds
from bookrec.v1 import recommender_pb2

DEFAULT_SIZES: tuple[int, ...] = (30_000, 300_000, 1_000_000)
RPCS: tuple[str, ...] = (FLOOR, "recommend", "similar", "cold_start")
LABELS = {
    FLOOR: "Health/Check (floor)",
    "recommend": "Recommend",
    "similar": "Similar (ALS)",
    "cold_start": "ColdStart (2 subjects)",
}
# Concurrency (calls in flight) -> h2load connections x streams per connection.
SHAPES: dict[int, tuple[int, int]] = {1: (1, 1), 8: (8, 1), 32: (8, 4), 64: (8, 8)}
BASE_STREAMS = 8  # the "1 stream": 8 connections x 1 stream; ratios are to it
PIPELINES: tuple[str, ...] = (DEFAULT_PIPELINE, "als+item_item")


@dataclass(frozen=True)
class CpuSettings:
    curve: tuple[int, ...] = (1, 8, 32, 64)
    off_curve: tuple[int, ...] = (8, 64)  # batching off, on a second server
    pipelines: tuple[str, ...] = PIPELINES
    warmup: float = 2.0
    duration: float = 5.0
    repeats: int = 3
    open_share: float = 0.5  # open-loop rate, as a share of the 8 x 1 capacity
    k: int = 10
    baseline: Path | None = None  # another checkout's server, measured at baseline_curve
    baseline_curve: tuple[int, ...] = (BASE_STREAMS,)


def baseline_tree(ref: str) -> Path:
    """A git worktree of ``ref`` (made once per commit in the temp folder, outside the
    tree that ruff and mypy check) whose server is the "before" of a side-by-side run."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"bookrec-baseline-{sha[:12]}"
    if not (tree / "server").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--force", "--detach", str(tree), sha],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
    return tree


def shape(in_flight: int) -> tuple[int, int]:
    """h2load's connections x streams for ``in_flight`` calls."""
    if in_flight in SHAPES:
        return SHAPES[in_flight]
    connections = min(in_flight, 8)
    return connections, max(1, in_flight // connections)


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
    in_flight: int,
    settings: CpuSettings,
    rps: float | None = None,
) -> dict[str, Any]:
    """The warm-up run, then the measured one with the server's CPU around it."""
    path = PATHS[kind]
    conn, streams = shape(in_flight)
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
        "in_flight": in_flight,
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


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# A run's batching tag: on, off, or "before" (the baseline commit's server).
Batching = bool | str
BEFORE = "before"
_BATCHING_ORDER: dict[Batching, int] = {True: 0, False: 1, BEFORE: 2}


def _batching_label(batching: Batching) -> str:
    if isinstance(batching, str):
        return batching
    return "on" if batching else "off"


def _tags(run: dict[str, Any]) -> tuple[str, Batching, int]:
    """(pipeline, batching, in flight) of a run (older runs: the defaults at 8 x 1)."""
    return (
        run.get("pipeline", DEFAULT_PIPELINE),
        run.get("batching", True),
        run.get("in_flight", BASE_STREAMS),
    )


def _order(tags: tuple[str, Batching, int]) -> tuple[int, int, int]:
    pipeline, batching, in_flight = tags
    rank = PIPELINES.index(pipeline) if pipeline in PIPELINES else 99
    return (rank, _BATCHING_ORDER.get(batching, 3), in_flight)


def summarize_runs(books: int, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (pipeline, batching, in flight, RPC): medians and ranges over the
    repeats, the floor of the same server at the same concurrency beside each row, and
    the cost against the same server's 8 x 1 row (and its open loop there)."""
    closed: dict[tuple[str, tuple[str, Batching, int]], list[dict[str, Any]]] = {}
    opened: dict[tuple[str, tuple[str, Batching, int]], list[dict[str, Any]]] = {}
    for r in runs:
        (closed if r["mode"] == "closed" else opened).setdefault((r["rpc"], _tags(r)), []).append(r)
    rows = []
    for tags in sorted({t for _, t in closed}, key=_order):
        pipeline, batching, in_flight = tags
        floor = _median([r["cpu_ms_per_call"] for r in closed.get((FLOOR, tags), [])])
        for kind in RPCS:
            here = closed.get((kind, tags), [])
            if not here:
                continue
            cpu = _median([r["cpu_ms_per_call"] for r in here])
            base_tags = (pipeline, batching, BASE_STREAMS)
            base = _median([r["cpu_ms_per_call"] for r in closed.get((kind, base_tags), [])])
            open_runs = opened.get((kind, tags), [])
            ratio = [r["p99_ms"] / r["p50_ms"] for r in open_runs if r["p50_ms"] and r["p99_ms"]]
            conn, streams = shape(in_flight)
            rows.append(
                {
                    "books": books,
                    "pipeline": pipeline,
                    "batching": _batching_label(batching),
                    "in_flight": in_flight,
                    "shape": f"{conn}x{streams}",
                    "rpc": kind,
                    "label": LABELS[kind],
                    "runs": len(here),
                    "rps": _median([r["rps"] for r in here]),
                    "rps_range": _range([r["rps"] for r in here], 0),
                    "p50_ms": _median([r["p50_ms"] for r in here]),
                    "p99_ms": _median([r["p99_ms"] for r in here]),
                    "cpu_ms_per_call": cpu,
                    "cpu_range": _range([r["cpu_ms_per_call"] for r in here]),
                    "floor_cpu_ms": floor,
                    "above_floor_ms": None
                    if cpu is None or floor is None
                    else round(cpu - floor, 4),
                    "vs_8x1": _ratio(cpu, base),
                    "open_rps": _median([r["rps"] for r in open_runs]),
                    "open_p50_ms": _median([r["p50_ms"] for r in open_runs]),
                    "open_p99_ms": _median([r["p99_ms"] for r in open_runs]),
                    "open_p99_over_p50": _median(ratio),
                }
            )
    return rows


@dataclass
class Variant:
    """One server of a side-by-side run: its batching tag, the points of the curve it is
    measured at, and the server itself."""

    batching: Batching
    curve: tuple[int, ...]
    server: ServerProcess


def _closed(
    variants: Sequence[Variant],
    bodies: dict[str, bytes],
    rpcs: Sequence[str],
    settings: CpuSettings,
    pipeline: str,
) -> list[dict[str, Any]]:
    """Closed-loop runs with the variants' servers interleaved: at each point and RPC
    every server runs in turn (the order reversed each repeat), so that a neighbour's
    burst on this shared machine falls on all of them, not on whichever ran then."""
    runs = []
    points = sorted({p for v in variants for p in v.curve})
    for repeat in range(settings.repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for in_flight in points:
            for kind in rpcs:
                for v in order:
                    if in_flight not in v.curve:
                        continue
                    row = measure(v.server, kind, bodies[kind], in_flight, settings)
                    tags = {"pipeline": pipeline, "batching": v.batching}
                    runs.append({"mode": "closed", "repeat": repeat, **tags, **row})
    return runs


def _open(
    server: ServerProcess,
    bodies: dict[str, bytes],
    rpcs: Sequence[str],
    closed: list[dict[str, Any]],
    settings: CpuSettings,
    tags: dict[str, Any],
) -> list[dict[str, Any]]:
    """Each RPC open loop at ``open_share`` of its 8 x 1 closed-loop calls/s."""
    runs = []
    for kind in rpcs:
        capacity = _median(
            [r["rps"] for r in closed if r["rpc"] == kind and r["in_flight"] == BASE_STREAMS]
        )
        if not capacity or settings.open_share <= 0:
            continue
        rate = settings.open_share * capacity
        row = measure(server, kind, bodies[kind], BASE_STREAMS, settings, rps=rate)
        runs.append({"mode": "open", "repeat": 0, "target_rps": round(rate, 1), **tags, **row})
    return runs


def run_size(
    artifact: Path,
    workdir: Path,
    settings: CpuSettings,
    rpcs: Sequence[str] = RPCS,
    pipeline: str = DEFAULT_PIPELINE,
) -> tuple[list[dict[str, Any]], ArtifactIds, int]:
    """All runs on one artifact: batching on over the curve (then open loop), batching
    off over ``off_curve``, the baseline commit's server over ``baseline_curve``, each on
    its own server, all started at once and measured in turn; raw runs, ids, server
    workers."""
    ids = ArtifactIds.load(artifact)
    bodies = requests(ids, settings.k)
    wanted: list[tuple[Batching, tuple[int, ...], tuple[str, ...], Path]] = [
        (True, settings.curve, ("--batching",), ROOT),
        (False, settings.off_curve, ("--no-batching",), ROOT),
    ]
    if settings.baseline is not None:
        wanted.append((BEFORE, settings.baseline_curve, (), settings.baseline))
    with contextlib.ExitStack() as stack:
        variants = [
            Variant(
                batching,
                curve,
                stack.enter_context(
                    running_server(
                        artifact.parent,
                        workdir / _batching_label(batching),
                        2,
                        cache_size=0,
                        extra_args=flags,
                        root=root,
                    )
                ),
            )
            for batching, curve, flags, root in wanted
            if curve
        ]
        runs = _closed(variants, bodies, rpcs, settings, pipeline)
        on = next((v for v in variants if v.batching is True), None)
        if on is not None:
            closed_on = [r for r in runs if r["batching"] is True]
            tags = {"pipeline": pipeline, "batching": True}
            runs += _open(on.server, bodies, rpcs, closed_on, settings, tags)
        workers = max((v.server.workers or 1 for v in variants), default=1)
    return runs, ids, workers


COLUMNS = (
    ("books", "books"),
    ("pipeline", "pipeline"),
    ("batching", "batching"),
    ("in flight", "shape"),
    ("RPC", "label"),
    ("n", "runs"),
    ("calls/s", "rps_range"),
    ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"),
    ("server CPU ms/call", "cpu_range"),
    ("median", "cpu_ms_per_call"),
    ("floor ms/call", "floor_cpu_ms"),
    ("above floor ms", "above_floor_ms"),
    ("vs 8x1", "vs_8x1"),
    ("open p50 ms", "open_p50_ms"),
    ("open p99 ms", "open_p99_ms"),
    ("open p99/p50", "open_p99_over_p50"),
)


def markdown(rows: list[dict[str, Any]], notes: Sequence[str], settings: CpuSettings) -> str:
    base = [r for r in rows if r["rpc"] != FLOOR and r["in_flight"] == BASE_STREAMS]
    curve_cols = (
        ("books", "books"),
        ("pipeline", "pipeline"),
        ("batching", "batching"),
        ("RPC", "label"),
        ("server CPU ms/call (8x1)", "cpu_ms_per_call"),
    )
    shapes = ", ".join(f"{n} ({'x'.join(map(str, shape(n)))})" for n in settings.curve)
    return "\n".join(
        [
            "## CPU per call: server utime+stime / completed calls (h2load, closed loop)",
            "",
            "`python -m server --workers 2 --cache-size 0`; h2load closed loop at "
            f"{shapes} calls in flight (connections x streams), batching on; batching off "
            f"(`--no-batching`, its own server) at {', '.join(map(str, settings.off_curve))}; "
            f"one fixed request per RPC; a separate {settings.warmup:g} s warm-up run before "
            f"each {settings.duration:g} s measured run; {settings.repeats} repeats (median; "
            "ranges in the cells). Floor = grpc.health.v1.Health/Check on the same server at "
            "the same concurrency; vs 8x1 = the row's cost over the same server's 8x1 cost. "
            f"Open loop: h2load --rps at {settings.open_share:.0%} of the 8x1 calls/s.",
            "",
            markdown_table(rows, COLUMNS),
            "",
            "Books curve (median server CPU ms per call, 8x1):",
            "",
            markdown_table(base, curve_cols),
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
    """The protocol on each synthetic catalogue size and pipeline (artifacts built once,
    reused). ``big_users``: the user count for catalogues of 1M books and more
    (building 1M x 100k is slow on this machine); None keeps ``users``."""
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
        runs: list[dict[str, Any]] = []
        for n, pipeline in enumerate(settings.pipelines):
            spec = ScaleSpec(
                books=books, users=n_users, factors=factors, seed=seed, pipeline=pipeline
            )
            path, built = scale_artifact(spec)
            if built is not None:
                notes.append(f"{books} books, {pipeline}: artifact built in {built:.0f} s.")
            # Similar and ColdStart do not depend on the pipeline: measured on the first.
            rpcs = RPCS if n == 0 else (FLOOR, "recommend")
            work = RESULTS / f"server-cpu-{books}-{pipeline.replace('+', '-')}"
            runs += run_size(path, work, settings, rpcs, pipeline)[0]
        raw += [{"section": "run", "books": books, **r} for r in runs]
        rows += summarize_runs(books, runs)
    md = markdown(rows, notes, settings)
    return [{"section": "summary", **r} for r in rows] + raw, md
