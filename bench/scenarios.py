"""The standard load scenarios. Each starts its own server, measures, and returns
JSON rows plus a markdown report (written to bench/results/load_<name>.*).

- crosscheck: the Python client against h2load (C) on the same RPCs and concurrency;
- knee: each RPC alone at doubling open-loop rates until p99 blows up or the
  achieved rate falls short;
- mix: the RPC mix, open loop at a fixed rate and closed loop at fixed concurrency;
- reload: open-loop load while new artifact versions are published;
- scale: the RPCs on synthetic artifacts of growing catalogue size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2

from bench import h2load
from bench.analysis import channel_versions, in_windows, kind_rows, swap_windows, total_errors
from bench.common import DATA, RESULTS, write_results
from bench.loadgen import RunResult
from bench.publish import publish_copy
from bench.report import (
    LOAD_COLUMNS,
    error_notes,
    markdown_table,
    plot_knee,
    plot_percentiles,
    plot_reload,
    plot_scale,
    with_floor,
)
from bench.runs import LoadSettings, run_closed, run_open
from bench.scale_artifact import DEFAULT_PIPELINE, ScaleSpec, build
from bench.serverproc import ServerProcess, running_server
from bench.stats import summarize
from bench.workload import FLOOR, PATHS, ArtifactIds
from bookrec.artifact import complete_versions, newest_valid
from bookrec.v1 import recommender_pb2


@dataclass(frozen=True)
class ServerSettings:
    workers: int = 2
    cache_size: int | None = None  # the result cache; None = the server's default

    def running(
        self, artifacts: Path, name: str
    ) -> contextlib.AbstractContextManager[ServerProcess]:
        """A ready server on ``artifacts``, its log in bench/results/server-<name>/."""
        return running_server(artifacts, _workdir(name), self.workers, cache_size=self.cache_size)


def _context(
    server: ServerProcess, ids: ArtifactIds, settings: LoadSettings, floor: bool = True
) -> str:
    workers = server.workers if server.workers is not None else "1 (no --workers flag)"
    text = (
        f"server: {workers} worker(s), model {ids.model_version} ({len(ids.book_ids)} books, "
        f"{len(ids.user_ids)} users); client: {settings.channels} channels, Zipf s="
        f"{settings.zipf_s}"
    )
    if floor:
        text += (
            f", floor = grpc.health.v1.Health/Check at {settings.floor_share:.0%} of the same "
            "arrival stream"
        )
    return text + ". Small machine, noisy figures: compare within a run."


def _newest(root: Path) -> Path:
    versions = complete_versions(root)
    if not versions:
        raise FileNotFoundError(f"no complete artifact in {root}")
    return versions[-1]


def _workdir(name: str) -> Path:
    path = RESULTS / f"server-{name}"
    shutil.rmtree(path, ignore_errors=True)
    return path


# -- crosscheck -------------------------------------------------------------------------


async def crosscheck(
    artifacts: Path,
    load: LoadSettings,
    server_settings: ServerSettings,
    concurrency: int = 16,
    duration: float = 5.0,
) -> tuple[list[dict[str, Any]], str]:
    """Same RPC, same request, same connections and concurrency: Python vs h2load."""
    load = dataclasses.replace(load, floor_share=0.0)
    ids = ArtifactIds.load(_newest(artifacts))
    user = ids.user_ids[0]
    one_user = dataclasses.replace(ids, user_ids=[user])
    cases: list[tuple[str, str, Any]] = [
        (FLOOR, PATHS[FLOOR], health_pb2.HealthCheckRequest(service="")),
        ("recommend", PATHS["recommend"], recommender_pb2.RecommendRequest(user_id=user, k=10)),
    ]
    streams = max(1, concurrency // load.channels)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with server_settings.running(artifacts, "crosscheck") as server:
        for kind, path, message in cases:
            conc = load.channels * streams
            await run_closed(server, one_user, {kind: 1.0}, conc, load.warmup_seconds, load)
            measured = dataclasses.replace(load, warmup_seconds=0.0)
            cpu = time.process_time()
            result = await run_closed(server, one_user, {kind: 1.0}, conc, duration, measured)
            cpu = time.process_time() - cpu
            row = kind_rows(result)[0]
            rows.append(
                {
                    "rpc": kind,
                    "client": "python grpc.aio",
                    "connections": load.channels,
                    "concurrency": load.channels * streams,
                    "requests": row["requests"],
                    "errors": row["errors"],
                    "rps": row["achieved_rps"],
                    "latency": row["latency"],
                    "client_cpu_us_per_request": round(1e6 * cpu / max(row["requests"], 1), 1),
                }
            )
            if h2load.available() is None:
                notes = ["h2load is not installed (apt-get install nghttp2-client): skipped."]
                continue
            h2 = await asyncio.to_thread(
                h2load.run,
                server.target,
                path,
                message.SerializeToString(),
                load.channels,
                streams,
                duration,
            )
            rows.append(
                {
                    "rpc": kind,
                    "client": "h2load",
                    "connections": load.channels,
                    "concurrency": load.channels * streams,
                    "requests": h2.requests,
                    "errors": {"failed": h2.failed} if h2.failed else {},
                    "rps": h2.rps,
                    "latency": h2.latency,
                    "client_cpu_us_per_request": None,
                    "reply_bytes": h2.body_bytes,
                    "status_codes": h2.status_codes,
                }
            )
        context = _context(server, ids, load, floor=False)
    columns = (
        ("rpc", "rpc"),
        ("client", "client"),
        ("conc.", "concurrency"),
        ("requests", "requests"),
        ("errors", "errors"),
        ("req/s", "rps"),
        ("p50 ms", "latency.p50_ms"),
        ("p90 ms", "latency.p90_ms"),
        ("p99 ms", "latency.p99_ms"),
        ("p99.9 ms", "latency.p99.9_ms"),
        ("client CPU µs/req", "client_cpu_us_per_request"),
    )
    md = "\n".join(
        [
            "## Cross-check: Python harness vs h2load (closed loop, same request)",
            "",
            context,
            f"Recommend always asks for user {user} (both clients), so it is mostly cache hits"
            + (" (here the cache is off)." if server_settings.cache_size == 0 else "."),
            "",
            markdown_table(rows, columns),
            "",
            *notes,
        ]
    )
    return rows, md


# -- knee -------------------------------------------------------------------------------

DEFAULT_RATES: tuple[float, ...] = (20, 40, 80, 160, 320, 640, 1280)


def knee_reason(row: dict[str, Any], best: dict[str, float], factor: float) -> str:
    """Why this step is past the knee, or '' when it is not.

    ``best`` holds the lowest p50 and p99 of the earlier steps. The median moving
    (3x) means requests queue; a p99 jump alone counts only when it is also
    ``factor`` times the floor's p99 in the same step, since a stall that delays
    health checks as much (a GC pause, the client itself) is not this RPC's knee."""
    p50, p99 = row["latency"]["p50_ms"], row["latency"]["p99_ms"]
    floor = row.get("floor_p99_ms") or 0.0
    if row["errors"]:
        return "errors"
    if row["achieved_rps"] < 0.9 * row["offered_rps"]:
        return "achieved < 90% of offered"
    if not best:
        return ""
    if p50 is None or p50 > 3 * best["p50"]:
        return "p50 > 3x the lowest"
    if p99 is None or (p99 > factor * best["p99"] and p99 > factor * floor):
        return f"p99 > {factor:g}x the lowest and the floor's"
    return ""


async def knee(
    artifacts: Path,
    load: LoadSettings,
    server_settings: ServerSettings,
    rpcs: Sequence[str] = ("recommend", "similar", "cold_start"),
    rates: Sequence[float] = DEFAULT_RATES,
    duration: float = 5.0,
    factor: float = 5.0,
    min_requests: int = 200,
) -> tuple[list[dict[str, Any]], str]:
    """Each RPC alone (plus the floor) at increasing open-loop rates, up to the first bad step.

    A step lasts ``duration`` seconds, longer at low rates so that it holds about
    ``min_requests`` requests (a p99 of 50 samples is just their maximum)."""
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    ids = ArtifactIds.load(_newest(artifacts))
    with server_settings.running(artifacts, "knee") as server:
        for rpc in rpcs:
            best: dict[str, float] = {}
            last_good: dict[str, Any] | None = None
            reason = "not reached"
            for step, rate in enumerate(sorted(rates)):
                seconds = max(duration, min_requests / rate)
                result = await run_open(server, ids, {rpc: 1.0}, rate, seconds, load, step)
                row = with_floor(kind_rows(result))[0]
                row["target_rps"] = rate
                row["seconds"] = round(seconds, 1)
                row["past_knee"] = knee_reason(row, best, factor)
                rows.append(row)
                if row["past_knee"]:
                    reason = row["past_knee"]
                    break
                last_good = row
                for key in ("p50", "p99"):
                    value = row["latency"][f"{key}_ms"]
                    best[key] = min(best.get(key, math.inf), value)
            summary.append(
                {
                    "rpc": rpc,
                    "sustained_rps": last_good["offered_rps"] if last_good else None,
                    "p50_ms": last_good["latency"]["p50_ms"] if last_good else None,
                    "p99_ms": last_good["latency"]["p99_ms"] if last_good else None,
                    "floor_p99_ms": last_good["floor_p99_ms"] if last_good else None,
                    "knee": reason,
                }
            )
        context = _context(server, ids, load)
    plot = RESULTS / "load_knee.png"
    plot_knee(rows, plot)
    md = "\n".join(
        [
            "## Knee: each RPC alone, open loop (Poisson), doubling rates",
            "",
            context,
            f"Steps of {duration:g} s (at least {min_requests} requests). A step is past the "
            "knee on errors, achieved < 90% of offered, p50 > 3x the lowest so far, or "
            f"p99 > {factor:g}x both the lowest so far and the floor's p99 in that step.",
            "",
            markdown_table(
                summary,
                (
                    ("rpc", "rpc"),
                    ("highest good rate/s", "sustained_rps"),
                    ("p50 ms there", "p50_ms"),
                    ("p99 ms there", "p99_ms"),
                    ("floor p99 there", "floor_p99_ms"),
                    ("next step stopped by", "knee"),
                ),
            ),
            "",
            markdown_table(rows, (*LOAD_COLUMNS, ("past knee", "past_knee"))),
            "",
            *error_notes(rows),
            f"plot: {plot}",
        ]
    )
    return rows, md


# -- mix --------------------------------------------------------------------------------


async def mix(
    artifacts: Path,
    load: LoadSettings,
    server_settings: ServerSettings,
    shares: dict[str, float],
    rate: float = 50.0,
    concurrency: int = 16,
    duration: float = 10.0,
) -> tuple[list[dict[str, Any]], str]:
    """The mix open loop at ``rate`` (latency) and closed loop at ``concurrency`` (capacity)."""
    ids = ArtifactIds.load(_newest(artifacts))
    with server_settings.running(artifacts, "mix") as server:
        opened = await run_open(server, ids, shares, rate, duration, load, 1)
        closed = await run_closed(server, ids, shares, concurrency, duration, load, 2)
        context = _context(server, ids, load)
    rows = []
    for label, result in ((f"open {rate:g}/s", opened), (f"closed c={concurrency}", closed)):
        for row in with_floor(kind_rows(result)):
            rows.append({"run": label, **row})
        rows.append(
            {
                "run": label,
                "rpc": "all (floor excluded)",
                **_overall(result),
            }
        )
    plot = RESULTS / "load_mix.png"
    plot_percentiles(opened.samples, plot, f"mix, open loop at {rate:g}/s")
    mix_text = ", ".join(f"{k}={v:.2f}" for k, v in shares.items())
    md = "\n".join(
        [
            f"## Mix: {mix_text}",
            "",
            context,
            f"{duration:g} s each: open loop (latency from the intended send time) and closed "
            "loop (capacity; its latencies omit queueing before the send).",
            "",
            markdown_table(rows, (("run", "run"), *LOAD_COLUMNS)),
            "",
            *error_notes(rows),
            f"plot: {plot}",
        ]
    )
    return rows, md


def _overall(result: RunResult) -> dict[str, Any]:
    mine = [s for s in result.samples if s.kind != FLOOR]
    ok = [s for s in mine if s.code == "OK"]
    floor = [s for s in result.samples if s.kind == FLOOR and s.code == "OK"]
    floor_latency = summarize(s.latency for s in floor).as_dict()
    return {
        "offered_rps": round(len(mine) / result.duration, 2) if result.mode == "open" else None,
        "achieved_rps": round(len(ok) / result.elapsed, 2),
        "requests": len(mine),
        "errors": total_errors(result),
        "latency": summarize(s.latency for s in ok).as_dict(),
        "floor_p50_ms": floor_latency["p50_ms"],
        "floor_p99_ms": floor_latency["p99_ms"],
    }


# -- reload -----------------------------------------------------------------------------


async def _sample_rss(
    server: ServerProcess, out: list[tuple[float, int]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        rss = await asyncio.to_thread(server.rss)
        out.append((time.perf_counter(), rss))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def _publisher(
    root: Path, first_at: float, interval: float, count: int, out: list[tuple[str, float]]
) -> None:
    await asyncio.sleep(first_at)
    for i in range(count):
        started = time.perf_counter()
        version = await asyncio.to_thread(publish_copy, root)
        out.append((version, time.perf_counter()))
        if i + 1 < count:
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))


def _mib(values: Sequence[int]) -> dict[str, float | None]:
    if not values:
        return {"mean_mib": None, "max_mib": None}
    return {
        "mean_mib": round(sum(values) / len(values) / 2**20, 1),
        "max_mib": round(max(values) / 2**20, 1),
    }


async def reload(
    artifacts: Path,
    load: LoadSettings,
    server_settings: ServerSettings,
    shares: dict[str, float],
    rate: float = 50.0,
    duration: float = 45.0,
    publishes: int = 5,
    first_at: float = 5.0,
    interval: float = 6.0,
) -> tuple[list[dict[str, Any]], str]:
    """Publish ``publishes`` new versions (copies of the served one) while open-loop load runs."""
    source = _newest(artifacts)
    root = DATA / "reload-work"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / source.name).symlink_to(source.resolve(), target_is_directory=True)
    ids = ArtifactIds.load(source)
    published: list[tuple[str, float]] = []
    rss: list[tuple[float, int]] = []
    try:
        with server_settings.running(root, "reload") as server:
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample_rss(server, rss, stop))
            publisher = asyncio.create_task(
                _publisher(root, first_at, interval, publishes, published)
            )
            result = await run_open(server, ids, shares, rate, duration, load, 3)
            await publisher
            stop.set()
            await sampler
            context = _context(server, ids, load)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    windows = swap_windows(result.samples, published)
    end = result.finished
    ours = [s for s in result.samples if s.kind != FLOOR and s.code == "OK"]
    floor = [s for s in result.samples if s.kind == FLOOR and s.code == "OK"]

    def split(samples: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        inside = [s.latency for s in samples if in_windows(s.intended, windows, end)]
        outside = [s.latency for s in samples if not in_windows(s.intended, windows, end)]
        return summarize(inside).as_dict(), summarize(outside).as_dict()

    ours_in, ours_out = split(ours)
    floor_in, floor_out = split(floor)
    rss_in = [b for t, b in rss if in_windows(t, windows, end)]
    rss_out = [b for t, b in rss if not in_windows(t, windows, end)]
    versions = channel_versions(result.samples)
    errors = total_errors(result)
    rows: list[dict[str, Any]] = [
        {
            "failed_requests": sum(errors.values()),
            "errors": errors,
            "requests": len(result.samples),
            "publishes": len(published),
            "windows": [
                {
                    "version": w.version,
                    "seconds": None if w.seconds is None else round(w.seconds, 3),
                }
                for w in windows
            ],
            "latency_in_windows": ours_in,
            "latency_steady": ours_out,
            "floor_in_windows": floor_in,
            "floor_steady": floor_out,
            "rss_in_windows": _mib(rss_in),
            "rss_steady": _mib(rss_out),
            "channels": [
                {
                    "channel": v.channel,
                    "versions": v.sequence,
                    "regressions": v.regressions,
                    "forward_only": v.forward_only,
                }
                for v in versions
            ],
        }
    ]
    plot = RESULTS / "load_reload.png"
    plot_reload(result.samples, windows, rss, result.started, plot)
    figures = [
        {"what": "requests in swap windows", **ours_in, **_floor_cols(floor_in)},
        {"what": "requests in steady state", **ours_out, **_floor_cols(floor_out)},
    ]
    window_text = ", ".join(
        "not served" if w.seconds is None else f"{w.seconds:.2f}" for w in windows
    )
    all_forward = all(v.forward_only for v in versions)
    md = "\n".join(
        [
            f"## Reload under load: {len(published)} publishes during {duration:g} s at {rate:g}/s",
            "",
            context,
            "",
            f"- failed requests: **{sum(errors.values())}** of {len(result.samples)} "
            f"{errors or ''}",
            f"- swap windows (publish -> every channel has a reply of the new version), s: "
            f"{window_text}",
            f"- server RSS (process tree, MiB): steady mean {_mib(rss_out)['mean_mib']} max "
            f"{_mib(rss_out)['max_mib']}; in swap windows max {_mib(rss_in)['max_mib']}",
            f"- versions per channel move forward only: **{all_forward}** "
            f"({sum(len(v.sequence) for v in versions)} versions seen over "
            f"{len(versions)} channels)",
            "",
            markdown_table(
                figures,
                (
                    ("", "what"),
                    ("count", "count"),
                    ("p50 ms", "p50_ms"),
                    ("p90 ms", "p90_ms"),
                    ("p99 ms", "p99_ms"),
                    ("p99.9 ms", "p99.9_ms"),
                    ("max ms", "max_ms"),
                    ("floor p50", "floor_p50_ms"),
                    ("floor p99", "floor_p99_ms"),
                ),
            ),
            "",
            "| channel | versions seen (in send order) | forward only |",
            "|---|---|---|",
            *(
                f"| {v.channel} | {' -> '.join(x[-8:] for x in v.sequence)} | {v.forward_only} |"
                for v in versions
            ),
            "",
            f"plot: {plot}",
        ]
    )
    return rows, md


def _floor_cols(latency: dict[str, Any]) -> dict[str, Any]:
    return {"floor_p50_ms": latency.get("p50_ms"), "floor_p99_ms": latency.get("p99_ms")}


# -- scale ------------------------------------------------------------------------------

DEFAULT_SIZES: tuple[int, ...] = (30_000, 300_000, 1_000_000)


def scale_artifact(spec: ScaleSpec) -> tuple[Path, float | None]:
    """The synthetic artifact for ``spec`` under bench/data/scale/, built when missing or
    of an older format; returns it and the build seconds (None when reused)."""
    name = f"books{spec.books}-users{spec.users}-f{spec.factors}-s{spec.seed}"
    if spec.pipeline != DEFAULT_PIPELINE:
        name += f"-{spec.pipeline.replace('+', '-')}"
    root = DATA / "scale" / name
    found = newest_valid(root, check_hashes=False)
    if found is not None:
        return found[0], None
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    path = build(root, spec)
    return path, time.perf_counter() - start


async def scale(
    load: LoadSettings,
    server_settings: ServerSettings,
    sizes: Sequence[int] = DEFAULT_SIZES,
    users: int = 100_000,
    factors: int = 64,
    rpcs: Sequence[str] = ("recommend", "similar", "cold_start"),
    rate: float = 10.0,
    duration: float = 5.0,
) -> tuple[list[dict[str, Any]], str]:
    """The same RPCs at a low fixed rate on catalogues of growing size (cache off)."""
    rows: list[dict[str, Any]] = []
    builds: list[dict[str, Any]] = []
    context = ""
    for books in sizes:
        spec = ScaleSpec(books=books, users=users, factors=factors, seed=load.seed)
        path, built = await asyncio.to_thread(scale_artifact, spec)
        ids = ArtifactIds.load(path)
        start = time.perf_counter()
        no_cache = dataclasses.replace(server_settings, cache_size=0)
        with no_cache.running(path.parent, f"scale-{books}") as server:
            ready = time.perf_counter() - start
            for i, rpc in enumerate(rpcs):
                result = await run_open(server, ids, {rpc: 1.0}, rate, duration, load, i)
                row = with_floor(kind_rows(result))[0]
                rows.append({"books": books, **row})
            rss = server.rss()
            context = _context(server, ids, load)
        builds.append(
            {
                "books": books,
                "users": users,
                "factors": factors,
                "build_s": None if built is None else round(built, 1),
                "ready_s": round(ready, 1),
                "server_rss_mib": round(rss / 2**20, 1),
            }
        )
    plot = RESULTS / "load_scale.png"
    plot_scale(rows, plot)
    md = "\n".join(
        [
            f"## Scale: synthetic artifacts, {users} users, {factors} factors, "
            f"open loop {rate:g}/s",
            "",
            context,
            f"Recommend cache off; {duration:g} s per RPC; bench/scale_artifact.py builds the "
            "artifacts (reused when present).",
            "",
            markdown_table(
                builds,
                (
                    ("books", "books"),
                    ("build s", "build_s"),
                    ("server ready s", "ready_s"),
                    ("server RSS MiB", "server_rss_mib"),
                ),
            ),
            "",
            markdown_table(rows, (("books", "books"), *LOAD_COLUMNS)),
            "",
            *error_notes(rows),
            f"plot: {plot}",
        ]
    )
    out = [{"section": "build", **b} for b in builds] + [{"section": "load", **r} for r in rows]
    return out, md


def save(name: str, rows: list[dict[str, Any]], markdown: str) -> None:
    write_results(f"load_{name}", rows, markdown)


# -- overload ---------------------------------------------------------------------------


def _overload_row(label: str, rpc: str, result: RunResult) -> dict[str, Any]:
    """Accepted and refused calls of ``rpc`` apart: latency from the intended send for the
    accepted ones (what a user sees), and from the actual send for the refused ones (how
    fast the server says no, without the client's own lag)."""
    mine = [s for s in result.samples if s.kind == rpc]
    ok = [s for s in mine if s.code == "OK"]
    refused = [s for s in mine if s.code == "RESOURCE_EXHAUSTED"]
    other = sorted({s.code for s in mine} - {"OK", "RESOURCE_EXHAUSTED"})
    accepted = summarize(s.latency for s in ok).as_dict()
    fast_no = summarize(s.done - s.sent for s in refused).as_dict()
    return {
        "run": label,
        "offered_rps": round(len(mine) / result.duration, 1),
        "ok_rps": round(len(ok) / result.elapsed, 1),
        "refused": len(refused),
        "refused_share": round(len(refused) / len(mine), 3) if mine else None,
        "other_codes": {c: sum(s.code == c for s in mine) for c in other},
        "accepted_p50_ms": accepted["p50_ms"],
        "accepted_p99_ms": accepted["p99_ms"],
        "refused_p50_ms": fast_no["p50_ms"],
        "refused_p99_ms": fast_no["p99_ms"],
        "send_lag_p99_ms": summarize(s.sent - s.intended for s in mine).as_dict()["p99_ms"],
    }


async def overload(
    artifacts: Path,
    load: LoadSettings,
    server_settings: ServerSettings,
    rpc: str = "recommend",
    duration: float = 5.0,
    concurrency: int = 32,
) -> tuple[list[dict[str, Any]], str]:
    """Admission control at work: capacity measured closed loop, then open loop at 50%
    and at 2x of it. The claim (issue 11): at 2x the accepted calls' p99 stays within 2x
    of its value at 50%, and refused calls are refused fast (p99 under 5 ms)."""
    ids = ArtifactIds.load(_newest(artifacts))
    rows: list[dict[str, Any]] = []
    with server_settings.running(artifacts, "overload") as server:
        closed = await run_closed(server, ids, {rpc: 1.0}, concurrency, duration, load, 1)
        capacity = sum(s.kind == rpc and s.code == "OK" for s in closed.samples) / closed.elapsed
        rows.append({**_overload_row(f"closed c={concurrency}", rpc, closed), "offered_rps": None})
        for share, salt in ((0.5, 2), (2.0, 3)):
            # The floor's share rides on top: offered rate of the RPC itself = share x capacity.
            rate = share * capacity / (1.0 - load.floor_share)
            result = await run_open(server, ids, {rpc: 1.0}, rate, duration, load, salt)
            rows.append(_overload_row(f"open {share:g}x capacity", rpc, result))
        context = _context(server, ids, load)
    half, double = rows[1], rows[2]
    ratio = (
        double["accepted_p99_ms"] / half["accepted_p99_ms"]
        if half["accepted_p99_ms"] and double["accepted_p99_ms"]
        else None
    )
    md = "\n".join(
        [
            f"## Overload: {rpc} at 50% and 2x of its measured capacity ({capacity:.0f}/s)",
            "",
            context,
            f"{duration:g} s each. Capacity: OK calls/s closed loop at concurrency "
            f"{concurrency}. Accepted latency from the intended send time; refused latency "
            "(RESOURCE_EXHAUSTED) from the actual send.",
            "",
            markdown_table(
                rows,
                (
                    ("run", "run"),
                    ("offered/s", "offered_rps"),
                    ("OK/s", "ok_rps"),
                    ("refused", "refused"),
                    ("refused share", "refused_share"),
                    ("other codes", "other_codes"),
                    ("accepted p50 ms", "accepted_p50_ms"),
                    ("accepted p99 ms", "accepted_p99_ms"),
                    ("refused p50 ms", "refused_p50_ms"),
                    ("refused p99 ms", "refused_p99_ms"),
                    ("send lag p99 ms", "send_lag_p99_ms"),
                ),
            ),
            "",
            f"accepted p99 at 2x / at 50%: {ratio:.2f}" if ratio else "accepted p99 ratio: -",
        ]
    )
    return rows, md
