"""A burst: many Recommend calls sent at once to one server worker (issue 20, item 3).

`python -m bench.burst --artifacts ROOT [--calls 3000] [--channels 8] [--runs 3] [-- server flags]`

The hostile tester's case: 3,000 calls at once on 8 connections, 10 s deadline, one
worker at its default settings. Every call must end OK, RESOURCE_EXHAUSTED with
``retry-after-ms``, or DEADLINE_EXCEEDED, and at least 90% of the OK calls within 2 s.
Each run starts a fresh server and prints one JSON row: status codes, refusals without
the hint, the OK calls' latency at the (Python) client from each call's own start and
the share within 2 s; how long the client took to start all its calls; when the server
sent its OK replies (access log, after the first call's start: what a client sending
all at once and reading replies at no cost would see); the Recommend lines in the access
log (calls the application took); the worker's peak RSS before and after (what gRPC
core's backlog of calls not yet taken costs).

`--h2load`: h2load (C) sends the burst instead (one request body, so run the server
with `--cache-size 0`); it cannot read gRPC status, so codes come from the access log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from bench import h2load
from bench.serverproc import running_server, status_kb
from bench.stats import summarize
from bench.workload import PATHS
from bookrec.artifact import complete_versions, load_strings, read_manifest
from bookrec.v1 import recommender_pb2
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub

RETRY_AFTER = "retry-after-ms"


@dataclass(frozen=True)
class Call:
    code: str
    started: float  # time.time() at the call's start
    seconds: float
    hinted: bool  # a refusal that carried retry-after-ms


async def burst(
    target: str, users: list[str], calls: int, channels: int, deadline: float
) -> list[Call]:
    """``calls`` Recommend calls at once over ``channels`` connections (Python client)."""
    opts = [("grpc.use_local_subchannel_pool", 1)]
    chans = [grpc.aio.insecure_channel(target, options=opts) for _ in range(channels)]
    for ch in chans:
        await ch.channel_ready()
    stubs = [RecommenderServiceStub(ch) for ch in chans]

    async def one(i: int) -> Call:
        request = recommender_pb2.RecommendRequest(user_id=users[i % len(users)], k=20)
        wall, start = time.time(), time.monotonic()
        try:
            await stubs[i % channels].Recommend(request, timeout=deadline)
        except grpc.aio.AioRpcError as e:
            hinted = RETRY_AFTER in dict(e.trailing_metadata() or ())
            return Call(e.code().name, wall, time.monotonic() - start, hinted)
        return Call("OK", wall, time.monotonic() - start, False)

    try:
        return await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        for ch in chans:
            await ch.close()


def h2load_burst(target: str, user: str, calls: int, channels: int, deadline: float) -> float:
    """The same burst from h2load; the time.time() of its first send."""
    body = recommender_pb2.RecommendRequest(user_id=user, k=20).SerializeToString()
    streams = -(-calls // channels)
    timeout = ("-H", f"grpc-timeout: {max(round(deadline), 1)}S")
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        frame, log = Path(tmp) / "body.bin", Path(tmp) / "requests.tsv"
        frame.write_bytes(h2load.grpc_frame(body))
        cmd = [
            "h2load", "-n", str(calls), "-c", str(channels), "-m", str(streams), "-t", "1",
            *h2load.GRPC_HEADERS, *timeout, "-d", str(frame), f"--log-file={log}",
            f"http://{target}{PATHS['recommend']}",
        ]  # fmt: skip
        subprocess.run(cmd, capture_output=True, check=True)
        return min(int(line.split("\t")[0]) for line in log.read_text().splitlines()) / 1e6


def access_lines(log: Path) -> list[dict[str, Any]]:
    """The server's access lines for Recommend."""
    out = []
    for line in log.read_bytes().splitlines():
        if b'"event":"rpc"' in line and b"RecommenderService/Recommend" in line:
            out.append(json.loads(line))
    return out


def _share_within(seconds: list[float], limit: float = 2.0) -> float | None:
    return round(sum(s <= limit for s in seconds) / len(seconds), 3) if seconds else None


def _server_side(lines: list[dict[str, Any]], first_send: float) -> dict[str, Any]:
    ok = [
        datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp() - first_send
        for r in lines
        if r["code"] == "OK"
    ]
    return {
        "server_codes": dict(Counter(r["code"] for r in lines)),
        "server_ok_reply_p90_ms": summarize(ok).as_dict()["p90_ms"],
        "server_ok_reply_within_2s": _share_within(ok),
    }


def _client_side(calls: list[Call]) -> dict[str, Any]:
    ok = [c.seconds for c in calls if c.code == "OK"]
    latency = summarize(ok).as_dict()
    starts = [c.started for c in calls]
    return {
        "codes": dict(Counter(c.code for c in calls)),
        "refused_without_hint": sum(c.code == "RESOURCE_EXHAUSTED" and not c.hinted for c in calls),
        "client_start_spread_s": round(max(starts) - min(starts), 3),
        "ok_p50_ms": latency["p50_ms"],
        "ok_p90_ms": latency["p90_ms"],
        "ok_within_2s": _share_within(ok),
    }


async def one_run(args: argparse.Namespace, users: list[str], workdir: Path) -> dict[str, Any]:
    flags = ["--workers", "1", *args.server_flags]
    with running_server(args.artifacts, workdir, workers=1, extra_args=flags) as srv:
        pid = srv.tree()[-1]
        before = status_kb(pid, "VmHWM")
        row: dict[str, Any] = {}
        if args.h2load:
            first = await asyncio.to_thread(
                h2load_burst, srv.target, users[0], args.calls, args.channels, args.deadline
            )
        else:
            calls = await burst(srv.target, users, args.calls, args.channels, args.deadline)
            first, row = min(c.started for c in calls), _client_side(calls)
        await asyncio.sleep(0.5)  # the last access lines
        row["worker_hwm_mb"] = [round(before / 1024, 1), round(status_kb(pid, "VmHWM") / 1024, 1)]
        lines = access_lines(srv.log)
    return {**row, "access_lines": len(lines), **_server_side(lines, first)}


async def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    artifact = complete_versions(args.artifacts)[-1]
    users = load_strings(artifact, read_manifest(artifact), "user_ids").to_list()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        for run in range(args.runs):
            row = await one_run(args, users, Path(args.workdir or tmp) / f"run{run + 1}")
            client = "h2load" if args.h2load else "python"
            rows.append({"run": run + 1, "client": client, "calls": args.calls, **row})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.burst",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--artifacts", type=Path, required=True)
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--deadline", type=float, default=10.0, help="seconds, per call")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--h2load", action="store_true", help="h2load sends the burst")
    p.add_argument("--label", default="")
    p.add_argument("--workdir", default="", help="keep each run's server log here")
    p.add_argument("server_flags", nargs="*", help="after --: flags for python -m server")
    args = p.parse_args(argv)
    if args.h2load and h2load.available() is None:
        raise SystemExit("h2load not found (apt-get install nghttp2-client)")
    for row in asyncio.run(measure(args)):
        print(json.dumps({"label": args.label, **row}))


if __name__ == "__main__":
    main()
