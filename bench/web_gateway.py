"""The web page's path vs direct gRPC, side by side: `python -m bench.web_gateway`.

The same RPCs (SearchBooks, Similar, Recommend), with the same requests, go to one
server both ways: straight to its gRPC port (HTTP/2), and as binary gRPC-Web over
HTTP/1.1 to its ``--web-port``, where server/web/gateway.py relays the bytes over a
grpc.aio channel to that same port. The web path therefore costs the gateway's own
work on top of the full gRPC call; this says how much, in latency (p50/p99 per call)
and in server CPU per call (utime + stime of every server process / calls).

Each round runs every (RPC, path) pair once in turn, and the rounds repeat, so slow
drift of a shared machine falls on both paths alike. Clients: Python (grpc.aio and
aiohttp, requests drawn Zipf-style from the artifact's ids, closed loop at
``--concurrency``) and, when installed, h2load (one fixed request per RPC, h2c for
gRPC and ``--h1`` for gRPC-Web) so that the client's own speed is not the figure.
Writes bench/results/web_gateway.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np

from bench import h2load
from bench.client import CHANNEL_OPTIONS
from bench.common import write_results
from bench.h2load import grpc_frame
from bench.serverproc import ServerProcess, cpu_seconds, free_port, running_server
from bench.stats import summarize
from bench.workload import PATHS as RPC_PATHS
from bench.workload import ArtifactIds, RequestFactory
from bookrec.artifact import newest_valid

RPCS: dict[str, str] = {rpc: RPC_PATHS[rpc] for rpc in ("search", "similar", "recommend")}
PATHS = ("grpc", "web")
WEB_CTYPE = "application/grpc-web+proto"


@contextmanager
def web_server(
    artifacts: Path, workdir: Path, workers: int, cache_size: int | None = None
) -> Iterator[tuple[ServerProcess, int]]:
    """``python -m server`` with ``--web-port`` on free loopback ports, no API keys."""
    web_port = free_port()
    args = ("--web-port", str(web_port))
    with running_server(
        artifacts, workdir, workers, cache_size=cache_size, extra_args=args, log_level="WARNING"
    ) as server:
        yield server, web_port


class GrpcError(RuntimeError):
    """A call on either path ended with a status other than OK."""


def _web_status(body: bytes) -> tuple[int, str]:
    """grpc-status and grpc-message of a gRPC-Web reply (its trailer frame)."""
    at = 0
    while at + 5 <= len(body):
        flag, length = body[at], int.from_bytes(body[at + 1 : at + 5], "big")
        if flag & 0x80:
            text = body[at + 5 : at + 5 + length].decode()
            status = re.search(r"grpc-status: (\d+)", text)
            message = re.search(r"grpc-message: ([^\r]*)", text)
            return (int(status.group(1)) if status else -1, message.group(1) if message else "")
        at += 5 + length
    return -1, "no trailer frame"


Call = Callable[[str, bytes], Awaitable[None]]


@dataclass
class Clients:
    """One closed-loop caller per path; ``grpc`` spreads over several connections."""

    channels: list[grpc.aio.Channel]
    session: aiohttp.ClientSession
    web_base: str

    @staticmethod
    def open(target: str, web_port: int, connections: int) -> Clients:
        channels = [
            grpc.aio.insecure_channel(target, options=list(CHANNEL_OPTIONS))
            for _ in range(connections)
        ]
        connector = aiohttp.TCPConnector(limit=connections, force_close=False)
        session = aiohttp.ClientSession(connector=connector)
        return Clients(channels, session, f"http://127.0.0.1:{web_port}")

    async def close(self) -> None:
        await self.session.close()
        for ch in self.channels:
            await ch.close()

    def call(self, path: str, worker: int) -> Call:
        if path == "grpc":
            channel = self.channels[worker % len(self.channels)]

            async def direct(method: str, message: bytes) -> None:
                relay: Any = channel.unary_unary(method)
                try:
                    await relay(message, timeout=30)
                except grpc.aio.AioRpcError as e:
                    raise GrpcError(f"{method}: {e.code().name} {e.details()}") from None

            return direct

        async def web(method: str, message: bytes) -> None:
            async with self.session.post(
                self.web_base + method,
                data=grpc_frame(message),
                headers={"content-type": WEB_CTYPE, "x-grpc-web": "1"},
            ) as reply:
                body = await reply.read()
            code, details = _web_status(body)
            if reply.status != 200 or code != 0:
                raise GrpcError(f"{method}: HTTP {reply.status}, grpc-status {code} {details}")

        return web


async def closed_loop(
    call_of: Callable[[int], Call], method: str, bodies: list[bytes], c: int
) -> list[float]:
    """Sends ``bodies`` with ``c`` callers, each waiting for its reply; latencies (s)."""
    latencies: list[float] = []
    queue = iter(bodies)

    async def worker(i: int) -> None:
        call = call_of(i)
        for body in queue:
            start = time.perf_counter()
            await call(method, body)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(i) for i in range(c)))
    return latencies


@dataclass(frozen=True)
class Sample:
    rpc: str
    path: str
    client: str
    concurrency: int
    calls: int
    seconds: float
    server_cpu_s: float
    latencies: list[float]


async def python_rounds(
    server: ServerProcess,
    web_port: int,
    requests: dict[str, list[bytes]],
    concurrency: int,
    rounds: int,
) -> list[Sample]:
    """``rounds`` x every (RPC, path), each a closed loop over that RPC's requests."""
    clients = Clients.open(server.target, web_port, concurrency)
    samples: list[Sample] = []
    try:
        for rpc, bodies in requests.items():  # warm both paths (connections, caches)
            for path in PATHS:
                await closed_loop(partial(clients.call, path), RPCS[rpc], bodies[:50], concurrency)
        for _ in range(rounds):
            for rpc, bodies in requests.items():
                for path in PATHS:
                    pids = server.tree()
                    cpu0, t0 = cpu_seconds(pids), time.perf_counter()
                    lat = await closed_loop(
                        partial(clients.call, path), RPCS[rpc], bodies, concurrency
                    )
                    seconds = time.perf_counter() - t0
                    cpu = cpu_seconds(pids) - cpu0
                    samples.append(
                        Sample(rpc, path, "python", concurrency, len(lat), seconds, cpu, lat)
                    )
    finally:
        await clients.close()
    return samples


def h2load_run(
    server: ServerProcess, web_port: int, rpc: str, path: str, message: bytes, n: int, c: int
) -> Sample:
    """``n`` calls of one fixed request by h2load with ``c`` connections (one stream each)."""
    if path == "grpc":
        url, headers = f"http://{server.target}{RPCS[rpc]}", h2load.GRPC_HEADERS
    else:
        url = f"http://127.0.0.1:{web_port}{RPCS[rpc]}"
        headers = ("--h1", "-H", f"content-type: {WEB_CTYPE}", "-H", "x-grpc-web: 1")
    pids = server.tree()
    cpu0, t0 = cpu_seconds(pids), time.perf_counter()
    options = ["-n", str(n), "-c", str(c), "-m", "1", "-t", "1"]
    figures, lat = h2load.invoke(url, message, options, headers)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds(pids) - cpu0
    if figures.get("succeeded") != n or figures.get("failed"):
        raise GrpcError(f"h2load {path} {rpc}: not {n} succeeded, 0 failed: {figures}")
    return Sample(rpc, path, "h2load", c, n, seconds, cpu, lat)


def check_replies(server: ServerProcess, web_port: int, messages: dict[str, bytes]) -> None:
    """h2load cannot read trailers: first make sure each fixed request is answered OK."""

    async def probe() -> None:
        clients = Clients.open(server.target, web_port, 1)
        try:
            for rpc, message in messages.items():
                for path in PATHS:
                    await clients.call(path, 0)(RPCS[rpc], message)
        finally:
            await clients.close()

    asyncio.run(probe())


def summarize_samples(samples: list[Sample]) -> list[dict[str, Any]]:
    """One row per (client, concurrency, RPC, path): its rounds pooled, CPU per call in µs."""
    rows: list[dict[str, Any]] = []
    keys = sorted(
        {(s.client, s.concurrency, s.rpc, s.path) for s in samples},
        key=lambda k: (k[0], k[1], list(RPCS).index(k[2]), k[3]),
    )
    for client, c, rpc, path in keys:
        group = [
            s for s in samples if (s.client, s.concurrency, s.rpc, s.path) == (client, c, rpc, path)
        ]
        calls = sum(s.calls for s in group)
        lat = summarize(x for s in group for x in s.latencies)
        per_round = [s.server_cpu_s / s.calls * 1e6 for s in group]
        rows.append(
            {
                "client": client,
                "concurrency": c,
                "rpc": rpc,
                "path": path,
                "calls": calls,
                "rounds": len(group),
                "calls_per_s": round(calls / sum(s.seconds for s in group), 1),
                "p50_ms": lat.p50,
                "p99_ms": lat.p99,
                "server_cpu_us_per_call": round(
                    sum(s.server_cpu_s for s in group) / calls * 1e6, 1
                ),
                "server_cpu_us_per_call_rounds": [round(x, 1) for x in per_round],
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "## Web gateway (gRPC-Web over HTTP/1.1, relayed) vs direct gRPC",
        "",
        ", ".join(f"{k} {v}" for k, v in meta.items()),
        "",
        "| client | callers | RPC | path | calls | calls/s | p50 ms | p99 ms "
        "| server CPU µs/call | web vs gRPC CPU |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    direct = {(r["client"], r["concurrency"], r["rpc"]): r for r in rows if r["path"] == "grpc"}
    for r in rows:
        base = direct.get((r["client"], r["concurrency"], r["rpc"]))
        ratio = ""
        if base and r["path"] == "web" and base["server_cpu_us_per_call"]:
            added = r["server_cpu_us_per_call"] - base["server_cpu_us_per_call"]
            times = r["server_cpu_us_per_call"] / base["server_cpu_us_per_call"]
            ratio = f"{added:+.0f} µs ({times:.2f}x)"
        lines.append(
            f"| {r['client']} | {r['concurrency']} | {r['rpc']} | {r['path']} "
            f"| {r['calls']} | {r['calls_per_s']} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['server_cpu_us_per_call']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def _requests(ids: ArtifactIds, n: int, seed: int, zipf: float) -> dict[str, list[bytes]]:
    factory = RequestFactory(ids, {"search": 1.0}, np.random.default_rng(seed), zipf_s=zipf)
    return {rpc: [factory.build(rpc).SerializeToString() for _ in range(n)] for rpc in RPCS}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.web_gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--artifacts", type=Path, help="artifact root (default: the demo artifacts)")
    p.add_argument("--scale", default="small", help="demo data scale (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default %(default)s)")
    p.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 4], help="callers (default 1 4)"
    )
    p.add_argument(
        "--calls", type=int, default=1000, help="per RPC, path and round (default %(default)s)"
    )
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds of every pair (default %(default)s)"
    )
    p.add_argument(
        "--zipf", type=float, default=1.0, help="Zipf exponent of ids (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-size", type=int, help="server's result cache (default: its default)")
    p.add_argument("--no-h2load", action="store_true", help="Python clients only")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.artifacts is None:
        from bench.load import DEFAULT_GRID, demo_artifacts

        args.artifacts = demo_artifacts(args.scale, DEFAULT_GRID)
    newest = newest_valid(args.artifacts, check_hashes=False)
    if newest is None:
        raise SystemExit(f"no valid artifact under {args.artifacts}")
    found = newest[0]
    ids = ArtifactIds.load(found)
    requests = _requests(ids, args.calls, args.seed, args.zipf)
    use_h2load = not args.no_h2load and h2load.available() is not None
    with (
        tempfile.TemporaryDirectory(prefix="bench-web-") as tmp,
        web_server(args.artifacts, Path(tmp), args.workers, args.cache_size) as (server, web_port),
    ):
        samples: list[Sample] = []
        for c in args.concurrency:
            samples += asyncio.run(python_rounds(server, web_port, requests, c, args.rounds))
        if use_h2load:
            fixed = {rpc: bodies[0] for rpc, bodies in requests.items()}
            check_replies(server, web_port, fixed)
            for c, _ in itertools.product(args.concurrency, range(args.rounds)):
                for rpc, message in fixed.items():
                    for path in PATHS:
                        samples.append(
                            h2load_run(
                                server,
                                web_port,
                                rpc,
                                path,
                                message,
                                args.calls,
                                c,
                            )
                        )
    rows = summarize_samples(samples)
    meta = {
        "artifact": found.name,
        "books": len(ids.book_ids),
        "workers": args.workers,
        "cache size": "default" if args.cache_size is None else args.cache_size,
        "callers": " ".join(map(str, args.concurrency)),
        "calls per pair and round": args.calls,
        "rounds": args.rounds,
        "cores": os.cpu_count(),
    }
    write_results("web_gateway", [{"meta": meta}, *rows], markdown(rows, meta))


if __name__ == "__main__":
    main()
