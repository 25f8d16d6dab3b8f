"""Overload with h2load as the bulk load and a Python probe that reads status codes.

`python -m bench.overload --artifacts ROOT [--port P] [-- server flags]`

The Python load client cannot offer 2x a two-worker server's capacity on the
same two cores without itself becoming the queue. h2load (C) can, open loop
(``--rps`` per connection, many streams allowed, so it does not turn into a
closed loop), but it cannot read gRPC trailers: a refused call is HTTP 200 too.
So h2load sends the bulk (the same Recommend body over and over; the server runs
with its result cache off, so each one is computed) and a Python probe sends a
small open-loop share alongside, recording each call's status code and latency
from its intended send time. The probe's figures are the accepted and refused
latencies; h2load's give the offered and completed rates.

Steps: capacity = OK replies/s (counted in the server's access log: h2load
counts a refusal as done) under h2load closed loop (``--connections`` x
``--streams``), or ``--capacity`` (to offer several server settings the same
rates); then open loop at 50%, 1x and 2x of it (``--shares``). Each open step
also reads the server's access log (counts by status, the server's own time per
call, so the time a call spends before Python takes it shows as the difference)
and the server processes' CPU time (utime + stime per call handled). The claim
(issue 11): at 2x the accepted calls' p99 stays within 2x of its value at 50%,
and refused calls are refused fast (p99 under 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench import h2load
from bench.common import ROOT
from bench.serverproc import cpu_seconds, process_tree
from bench.stats import summarize
from bench.workload import PATHS
from bookrec.artifact import complete_versions, load_strings, read_manifest
from bookrec.v1 import recommender_pb2
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub

PATH = PATHS["recommend"]


@dataclass(frozen=True)
class Probe:
    code: str
    latency: float  # seconds from the intended send


def start_server(
    artifacts: Path, port: int, flags: Sequence[str], log: Path
) -> subprocess.Popen[bytes]:
    """Two workers, result cache off (h2load repeats one request), on ``port``."""
    cmd = [
        sys.executable, "-m", "server", "--artifacts", str(artifacts), "--port", str(port),
        "--workers", "2", "--cache-size", "0", "--feedback-log", str(log.parent / "ratings.jsonl"),
        *flags,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=out)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        raise RuntimeError(f"server did not start: {line!r}; see {log}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc


def _server_side(log: Path, start: int, end: int) -> dict[str, Any]:
    """The access log lines of one step (bytes ``start``..``end`` of ``log``): counts by
    status and the server's own time per call (interceptor entry to reply)."""
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read(end - start).splitlines()
    by_code: dict[str, list[float]] = {}
    for line in lines:
        if b'"event":"rpc"' not in line:
            continue
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            by_code.setdefault(rec["code"], []).append(rec["duration_ms"] / 1000)
    ok = summarize(by_code.get("OK", [])).as_dict()
    refused = summarize(by_code.get("RESOURCE_EXHAUSTED", [])).as_dict()
    return {
        "server_codes": {code: len(v) for code, v in sorted(by_code.items())},
        "server_ok_p50_ms": ok["p50_ms"],
        "server_ok_p99_ms": ok["p99_ms"],
        "server_refused_p50_ms": refused["p50_ms"],
        "server_refused_p99_ms": refused["p99_ms"],
    }


async def probe(target: str, users: list[str], rate: float, seconds: float) -> list[Probe]:
    """Open loop at ``rate``/s over 2 connections: each call's code and latency."""
    opts = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=opts) for _ in range(2)]
    stubs = [RecommenderServiceStub(ch) for ch in channels]
    out: list[Probe] = []
    rng = random.Random(1)

    async def one(i: int, intended: float) -> None:
        request = recommender_pb2.RecommendRequest(user_id=rng.choice(users))
        try:
            await stubs[i % 2].Recommend(request, timeout=5)
            code = "OK"
        except grpc.aio.AioRpcError as e:
            code = e.code().name
        out.append(Probe(code, time.monotonic() - intended))

    start, tasks = time.monotonic(), []
    for i in range(int(rate * seconds)):
        intended = start + i / rate
        await asyncio.sleep(max(intended - time.monotonic(), 0))
        tasks.append(asyncio.create_task(one(i, intended)))
    await asyncio.gather(*tasks)
    for ch in channels:
        await ch.close()
    return out


def _row(label: str, bulk_rps: float, probes: list[Probe], offered: float) -> dict[str, Any]:
    ok = [p.latency for p in probes if p.code == "OK"]
    refused = [p.latency for p in probes if p.code == "RESOURCE_EXHAUSTED"]
    other: dict[str, int] = {}
    for p in probes:
        if p.code not in ("OK", "RESOURCE_EXHAUSTED"):
            other[p.code] = other.get(p.code, 0) + 1
    a, r = summarize(ok).as_dict(), summarize(refused).as_dict()
    return {
        "run": label,
        "offered_rps": round(offered, 1),
        "h2load_done_rps": round(bulk_rps, 1),
        "probe_calls": len(probes),
        "refused_share": round(len(refused) / len(probes), 3) if probes else None,
        "other_codes": other,
        "accepted_p50_ms": a["p50_ms"],
        "accepted_p99_ms": a["p99_ms"],
        "refused_p50_ms": r["p50_ms"],
        "refused_p99_ms": r["p99_ms"],
    }


def open_loop(target: str, body: bytes, connections: int, streams: int, rps: int,
              duration: float) -> float:  # fmt: skip
    """h2load at ``rps`` requests/s per connection (at most ``streams`` open on each);
    the completed requests/s."""
    binary = h2load.available()
    if binary is None:
        raise FileNotFoundError("h2load not found (apt-get install nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        path = Path(tmp) / "body.bin"
        path.write_bytes(h2load.grpc_frame(body))
        cmd = [
            binary, "-c", str(connections), "-m", str(streams), "-t", "1",
            "--rps", str(rps), "-D", str(max(round(duration), 1)),
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            "-d", str(path), f"http://{target}{PATH}",
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    return float(m.group(3)) if m else float("nan")


async def _open(target: str, body: bytes, users: list[str], rate: float,
                args: argparse.Namespace) -> tuple[float, list[Probe]]:  # fmt: skip
    per_conn = max(round(rate * (1 - args.probe_share) / args.connections), 1)
    bulk_task = asyncio.to_thread(
        open_loop, target, body, args.connections, args.open_streams, per_conn, args.duration
    )
    probes_task = probe(target, users, max(rate * args.probe_share, 5.0), args.duration)
    bulk, probes = await asyncio.gather(bulk_task, probes_task)
    return bulk, probes


async def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    artifact = complete_versions(args.artifacts)[-1]
    users = load_strings(artifact, read_manifest(artifact), "user_ids").to_list()
    body = recommender_pb2.RecommendRequest(user_id=users[0]).SerializeToString()
    target = f"127.0.0.1:{args.port}"
    log = Path(args.workdir) / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = start_server(args.artifacts, args.port, args.server_flags, log)
    rows = []
    try:
        await asyncio.sleep(1.0)
        capacity = args.capacity
        if not capacity:
            # OK replies/s from the access log: h2load counts a refusal as done too.
            at, began = log.stat().st_size, time.monotonic()
            closed = h2load.run(target, PATH, body, args.connections, args.streams, args.duration)
            seconds = time.monotonic() - began
            await asyncio.sleep(0.5)
            codes = _server_side(log, at, log.stat().st_size)["server_codes"]
            capacity = codes.get("OK", 0) / seconds
            rows.append({"run": f"h2load closed c={args.connections} m={args.streams}",
                         "capacity_ok_rps": round(capacity, 1),
                         "h2load_done_rps": round(closed.rps, 1), "server_codes": codes,
                         "h2load_p99_ms": closed.latency["p99_ms"]})  # fmt: skip
        for share in args.shares:
            at, cpu = log.stat().st_size, cpu_seconds(process_tree(server.pid))
            bulk, probes = await _open(target, body, users, share * capacity, args)
            await asyncio.sleep(0.5)  # the last access log lines
            cpu = cpu_seconds(process_tree(server.pid)) - cpu
            row = _row(f"open {share:g}x", bulk, probes, share * capacity)
            row.update(_server_side(log, at, log.stat().st_size))
            calls = sum(row["server_codes"].values())
            row["server_cpu_ms_per_call"] = round(cpu * 1000 / calls, 3) if calls else None
            rows.append(row)
    finally:
        server.terminate()
        server.wait(30)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--artifacts", type=Path, required=True)
    p.add_argument("--port", type=int, default=52520)
    p.add_argument("--workdir", default="bench/results/server-overload-h2load")
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--streams", type=int, default=4, help="per connection, closed loop")
    p.add_argument("--open-streams", type=int, default=256, help="per connection, open loop")
    p.add_argument("--probe-share", type=float, default=0.1)
    p.add_argument("--label", default="")
    p.add_argument("--capacity", type=float, default=0.0,
                   help="OK calls/s to take as capacity (0: measure it, closed loop)")  # fmt: skip
    p.add_argument("--shares", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                   help="open-loop steps, as shares of the measured capacity")  # fmt: skip
    p.add_argument("server_flags", nargs="*", help="after --: flags for python -m server")
    args = p.parse_args(argv)
    rows = asyncio.run(measure(args))
    for r in rows:
        print(json.dumps({"label": args.label, **r}))


if __name__ == "__main__":
    main()
