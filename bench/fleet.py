"""The replica fleet on one machine: what serving past one process costs.

``python -m bench.load fleet`` starts the shared services (the rating log's engine
and an S3 server for artifacts) and then 1, 2 and 3 replicas (``python -m server
--workers 1`` each, its own port and artifact folder, configured as docs/fleet.md
says), all on loopback, and measures:

- throughput: the closed-loop mix spread over every replica's port, for 1, 2, 3
  replicas. The machine has 2 cores, so more replicas add no capacity: the figure
  is the cost of the fleet (more processes, the shared log) over one replica;
- rating-visibility delay: RateBook on one replica, then Recommend on the next one
  until the rated book has left the list (a rated book is never recommended); the
  delay is from the acknowledgement to the first reply without it. With
  ``--rating-gaps S`` each rating waits a random 0..S s first, so the replicas'
  tails go idle between ratings as in a quiet fleet;
- version propagation: a new version uploaded to the bucket, then GetStatus on every
  replica until all serve it; the time is from the end of the upload.

Everything runs on this machine's loopback: the figures contain no network, only
the software path. tests/test_fleet_hosts.py checks behaviour across namespaces.
``--fleet-parts visibility`` runs the visibility figure alone (long runs with gaps),
``--fleet-port-base`` moves the ports so two runs can go side by side.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.analysis import kind_rows
from bench.client import ChannelPool, Stubs
from bench.common import ROOT
from bench.loadgen import closed_loop
from bench.publish import publish_copy
from bench.report import markdown_table
from bench.runs import LoadSettings
from bench.serverproc import running_server
from bench.stats import summarize
from bench.workload import FLOOR, ArtifactIds, RequestFactory, with_floor
from bookrec.artifact import complete_versions
from bookrec.objectstore import make_client
from bookrec.v1 import admin_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from trainer.publish.bucket import publish_to_bucket

# Ports of this benchmark (loopback), from a base: the engine, the S3 server, then
# one per replica from base + 10.
PORT_BASE = 52610
PARTS = ("throughput", "visibility", "propagation")
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"
POLL_SECONDS = 1.0  # each replica's bucket poll
BUCKET = "bench-fleet"
BUCKET_URL = f"s3://{BUCKET}/models"
AWS_ENV = {  # moto takes any pair
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class FleetPlan:
    """What a fleet run measures and where it listens."""

    visibility_samples: int = 200
    # Each rating first waits a uniformly random 0..rating_gaps seconds (0: none).
    rating_gaps: float = 0.0
    parts: tuple[str, ...] = PARTS
    port_base: int = PORT_BASE
    publish_rounds: int = 5

    def __post_init__(self) -> None:
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown:
            raise ValueError(f"fleet parts {unknown}: expected some of {', '.join(PARTS)}")
        if self.rating_gaps < 0:
            raise ValueError(f"rating gaps must be >= 0 seconds, got {self.rating_gaps}")


@dataclass
class Proc:
    """A service or replica process of the benchmark, its log in the run's folder."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def _spawn(name: str, argv: Sequence[str], work: Path, env: dict[str, str] | None = None) -> Proc:
    log = work / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Proc(name, popen, log)


def _wait(what: str, check: Any, proc: Proc, timeout: float = 120.0) -> float:
    start = time.monotonic()
    while not check():
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} after {timeout:.0f} s; {proc.name} log:\n{proc.tail()}")
        time.sleep(0.05)
    return time.monotonic() - start


@dataclass
class Services:
    """The engine and the object store every replica shares."""

    work: Path
    engine: Proc
    s3: Proc
    port_base: int = PORT_BASE
    bucket_url: str = BUCKET_URL

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port_base + 1}"

    def replica_port(self, n: int) -> int:
        return self.port_base + 10 + n - 1

    def replica_args(self, n: int) -> list[str]:
        """How a replica reaches them (docs/fleet.md)."""
        return [
            "--rating-log",
            f"nats://127.0.0.1:{self.port_base}/bench-ratings",
            "--replica-id",
            f"r{n}",
            "--artifact-bucket",
            self.bucket_url,
            "--s3-endpoint",
            self.s3_endpoint,
            "--bucket-poll-seconds",
            str(POLL_SECONDS),
        ]

    def upload(self, directory: Path) -> float:
        """The trainer's upload of one version; returns its seconds."""
        start = time.perf_counter()
        publish_to_bucket(directory, self.bucket_url, self.s3_endpoint)
        return time.perf_counter() - start


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def services(work: Path, port_base: int = PORT_BASE) -> Iterator[Services]:
    """nats-server (JetStream, file storage) and moto's S3 server, with the bucket."""
    os.environ.update(AWS_ENV)  # this process uploads; the replicas inherit them
    store = work / "engine-store"
    store.mkdir(parents=True, exist_ok=True)
    argv = [NATS, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port_base)]
    engine = _spawn("engine", argv, work)
    s3_port = port_base + 1
    s3 = _spawn(
        "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)], work
    )
    try:
        _wait("nats-server ready", lambda: "Server is ready" in engine.tail(100_000), engine)
        _wait("the S3 server listening", lambda: _listening(s3_port), s3)
        svc = Services(work, engine, s3, port_base)
        make_client(svc.s3_endpoint).create_bucket(Bucket=BUCKET)
        yield svc
    finally:
        s3.stop()
        engine.stop()


@dataclass
class Replica:
    n: int
    proc: Proc
    artifacts: Path
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def _healthy(target: str) -> bool:
    with grpc.insecure_channel(target) as ch:
        stub: Any = health_pb2_grpc.HealthStub(ch)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@contextmanager
def replicas(svc: Services, count: int) -> Iterator[list[Replica]]:
    """``count`` ready replicas, each downloading the bucket's versions into its own folder."""
    out: list[Replica] = []
    try:
        for n in range(1, count + 1):
            folder = svc.work / f"r{n}" / "artifacts"  # filled from the bucket
            shutil.rmtree(folder.parent, ignore_errors=True)
            folder.mkdir(parents=True)
            argv = [
                sys.executable,
                "-m",
                "server",
                "--workers",
                "1",
                "--port",
                str(svc.replica_port(n)),
                "--artifacts",
                str(folder),
                "--feedback-log",
                str(folder.parent / "feedback" / "ratings.jsonl"),
                "--poll-seconds",
                str(POLL_SECONDS),
                "--log-level",
                "WARNING",
                *svc.replica_args(n),
            ]
            env = {"PYTHONPATH": str(ROOT)}
            proc = _spawn(f"replica{n}", argv, svc.work, env)
            out.append(Replica(n, proc, folder, svc.replica_port(n)))
        for r in out:
            _wait(f"replica {r.n} ready", lambda r=r: _healthy(r.target), r.proc)
        yield out
    finally:
        for r in out:
            r.proc.stop()


def _pool(targets: list[str], channels: int) -> ChannelPool:
    """``channels`` connections spread evenly over the replicas' ports."""
    pool = ChannelPool(targets[0], 1)
    pool.stubs = [Stubs.dial(targets[i % len(targets)]) for i in range(channels)]
    return pool


async def throughput(
    targets: list[str],
    ids: ArtifactIds,
    mix: dict[str, float],
    load: LoadSettings,
    concurrency: int,
    duration: float,
) -> dict[str, Any]:
    """The closed-loop mix over every target; one row: all RPCs but the floor."""
    rng = np.random.default_rng([load.seed, len(targets)])
    factory = RequestFactory(ids, with_floor(mix, load.floor_share), rng, zipf_s=load.zipf_s)
    channels = max(load.channels, len(targets))
    pool = _pool(targets, channels)
    async with pool:
        for s in pool.stubs:
            await s.channel.channel_ready()
        if load.warmup_seconds > 0:
            await closed_loop(pool, factory, concurrency, load.warmup_seconds)
        result = await closed_loop(pool, factory, concurrency, duration, load.rpc_timeout)
    mine = [s for s in result.samples if s.kind != FLOOR]
    ok = [s for s in mine if s.code == "OK"]
    latency = summarize(s.latency for s in ok).as_dict()
    by_kind = {r["rpc"]: r["achieved_rps"] for r in kind_rows(result) if r["rpc"] != FLOOR}
    return {
        "concurrency": concurrency,
        "channels": channels,
        "requests": len(mine),
        "errors": len(mine) - len(ok),
        "achieved_rps": round(len(ok) / result.elapsed, 1),
        "p50_ms": latency.get("p50_ms"),
        "p99_ms": latency.get("p99_ms"),
        "by_rpc": by_kind,
    }


@dataclass
class Seen:
    """What one visibility sample measured (seconds)."""

    delay: float = 0.0
    ack: float = 0.0
    polls: list[float] = field(default_factory=list)
    error: str = ""
    # When the last Recommend that still missed the rating was sent: it was surely not
    # visible until then. Unlike ``delay``, one call stalled by a busy machine adds
    # nothing to it, so it tells a late rating from a slow reply.
    hidden: float = 0.0
    at: str = ""  # UTC time of the acknowledgement, to match with the replicas' logs


def _one_rating(
    writer: tuple[RecommenderServiceStub, FeedbackServiceStub],
    reader: tuple[RecommenderServiceStub, FeedbackServiceStub],
    user: str,
) -> Seen | None:
    """RateBook the reader's top book on the writer, then Recommend on the reader until
    it is gone; None when the user has no list."""
    top = reader[0].Recommend(recommender_pb2.RecommendRequest(user_id=user, k=10), timeout=10)
    if not top.items:
        return None
    book = top.items[0].book.book_id
    rate = feedback_pb2.RateBookRequest(user_id=user, book_id=book, rating=8)
    sent = time.perf_counter()
    try:
        writer[1].RateBook(rate, timeout=10)
    except grpc.RpcError as e:  # counted, not fatal: the run goes on
        return Seen(error=str(e.code()))
    acked = time.perf_counter()
    seen = Seen(ack=acked - sent, at=time.strftime("%H:%M:%S", time.gmtime()))
    req = recommender_pb2.RecommendRequest(user_id=user, k=100)
    while time.perf_counter() - acked <= 30:
        start = time.perf_counter()
        reply = reader[0].Recommend(req, timeout=10)
        seen.polls.append(time.perf_counter() - start)
        if book not in {x.book.book_id for x in reply.items}:
            seen.delay = time.perf_counter() - acked
            return seen
        seen.hidden = start - acked
    seen.error = "not seen within 30 s"
    return seen


def visibility(
    reps: list[Replica], ids: ArtifactIds, samples: int, gaps: float = 0.0
) -> dict[str, Any]:
    """RateBook on replica i, Recommend on replica i+1 until the book has left the list;
    before each rating a random pause of 0..``gaps`` s (the fleet idle)."""
    chans = [grpc.insecure_channel(r.target) for r in reps]
    stubs = [(RecommenderServiceStub(ch), FeedbackServiceStub(ch)) for ch in chans]
    got: list[Seen] = []
    users = ids.user_ids[: max(samples, 1)]
    pause = random.Random(samples)
    try:
        for i in range(samples):
            if gaps > 0:
                time.sleep(pause.uniform(0.0, gaps))
            one = _one_rating(
                stubs[i % len(reps)], stubs[(i + 1) % len(reps)], users[i % len(users)]
            )
            if one is not None:
                got.append(one)
    finally:
        for ch in chans:
            ch.close()
    ok = [g for g in got if not g.error]
    delays = [g.delay for g in ok]
    s = summarize(delays).as_dict()
    hidden = summarize(g.hidden for g in ok).as_dict()
    return {
        "samples": len(delays),
        "gaps_s": gaps,
        "errors": sorted({g.error for g in got if g.error}),
        "not_seen_or_failed": len(got) - len(ok),
        "p50_ms": s.get("p50_ms"),
        "p99_ms": s.get("p99_ms"),
        "p99.9_ms": s.get("p99.9_ms"),
        "max_ms": round(max(delays) * 1000, 1) if delays else None,
        "over_200ms": sum(1 for d in delays if d > 0.2),
        "hidden_p99_ms": hidden.get("p99_ms"),
        "hidden_p99.9_ms": hidden.get("p99.9_ms"),
        "hidden_max_ms": hidden.get("max_ms"),
        "hidden_over_200ms": sum(1 for g in ok if g.hidden > 0.2),
        "ack_p99_ms": summarize(g.ack for g in ok).as_dict().get("p99_ms"),
        "polls_p50": float(np.median([len(g.polls) for g in ok])) if ok else None,
        "poll_p50_ms": summarize(p for g in ok for p in g.polls).as_dict().get("p50_ms"),
        # The slowest, to tell a late delivery (few polls, each quick) from a slow machine.
        "slowest": [
            {
                "ms": round(g.delay * 1000, 1),
                "hidden_ms": round(g.hidden * 1000, 1),
                "at": g.at,
                "ack_ms": round(g.ack * 1000, 1),
                "polls": len(g.polls),
                "poll_max_ms": round(max(g.polls) * 1000, 1),
            }
            for g in sorted(ok, key=lambda g: -g.delay)[:5]
        ],
    }


def tail_interruptions(reps: list[Replica]) -> list[str]:
    """The replicas' 'rating tail interrupted' warnings (each a resubscribe): their errors."""
    out = []
    for r in reps:
        for line in r.proc.tail(10_000_000).splitlines():
            if "rating tail interrupted" in line:
                with suppress(ValueError):
                    doc = json.loads(line)
                    out.append(f"{doc.get('ts', '')} r{r.n} {doc.get('error', '')}")
    return out


def _serving(target: str) -> str:
    with grpc.insecure_channel(target) as ch:
        try:
            return (
                AdminServiceStub(ch)
                .GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
                .serving_version
            )
        except grpc.RpcError:
            return ""


def propagation(svc: Services, reps: list[Replica], source: Path, rounds: int) -> dict[str, Any]:
    """Publish ``rounds`` new versions; seconds from each publish to all replicas serving it."""
    times: list[float] = []
    publisher = svc.work / "publisher"
    publisher.mkdir(exist_ok=True)
    if not (publisher / source.name).exists():
        shutil.copytree(source, publisher / source.name)
    uploads: list[float] = []
    for _ in range(rounds):
        version = publish_copy(publisher)
        uploads.append(svc.upload(publisher / version))
        published = time.perf_counter()
        pending = {r.target for r in reps}
        while pending:
            pending = {t for t in pending if _serving(t) != version}
            if time.perf_counter() - published > 120:
                raise TimeoutError(f"{version} not served by {sorted(pending)} after 120 s")
            time.sleep(0.02)
        times.append(time.perf_counter() - published)
    return {
        "rounds": len(times),
        "poll_seconds": POLL_SECONDS,
        "median_s": round(float(np.median(times)), 2),
        "max_s": round(max(times), 2),
        "each_s": [round(t, 2) for t in times],
        "upload_median_s": round(float(np.median(uploads)), 2),
    }


async def fleet(
    artifacts: Path,
    load: LoadSettings,
    mix: dict[str, float],
    concurrency: int,
    duration: float,
    plan: FleetPlan | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The figures of the fleet ``plan`` asks for; rows for the JSON file and the report."""
    plan = plan or FleetPlan()
    versions = complete_versions(artifacts)
    if not versions:
        raise FileNotFoundError(f"no complete artifact in {artifacts}")
    source = versions[-1]
    ids = ArtifactIds.load(source)
    rows: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    measure = "throughput" in plan.parts
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        if measure:
            with running_server(artifacts, work / "single", workers=2) as single:
                row = await throughput([single.target], ids, mix, load, concurrency, duration)
                rows.append({"setup": "one server, --workers 2, local log (no fleet)", **row})
        with services(work, plan.port_base) as svc:
            svc.upload(source)
            for count in (1, 2, 3) if measure else (3,):
                with replicas(svc, count) as reps:
                    targets = [r.target for r in reps]
                    if measure:
                        row = await throughput(targets, ids, mix, load, concurrency, duration)
                        rows.append({"setup": f"{count} replica(s), --workers 1 each", **row})
                    if count == 3 and "visibility" in plan.parts:
                        vis = visibility(reps, ids, plan.visibility_samples, plan.rating_gaps)
                        vis["tail_interruptions"] = tail_interruptions(reps)
                        extra.append({"visibility": vis})
                    if count == 3 and "propagation" in plan.parts:
                        prop = propagation(svc, reps, source, plan.publish_rounds)
                        extra.append({"propagation": prop})
    heading = "1, 2 and 3 replicas" if measure else "3 replicas"
    md = [f"## Fleet: {heading} on one machine", ""]
    if measure:
        md += _throughput_md(rows, ids, load, mix, concurrency, duration)
    for part in extra:
        if "visibility" in part:
            md += ["", _visibility_md(part["visibility"])]
        if "propagation" in part:
            md += ["", _propagation_md(part["propagation"])]
    return [*rows, *extra], "\n".join(md)


def _throughput_md(
    rows: list[dict[str, Any]],
    ids: ArtifactIds,
    load: LoadSettings,
    mix: dict[str, float],
    concurrency: int,
    duration: float,
) -> list[str]:
    mix_text = ", ".join(f"{k}={v:.2f}" for k, v in mix.items())
    return [
        f"Model {ids.model_version} ({len(ids.book_ids)} books, {len(ids.user_ids)} users);"
        f" {os.cpu_count()} cores; loopback; replicas share a NATS JetStream rating log "
        f"and an S3 bucket (moto). Closed loop, concurrency {concurrency}, {duration:g} s "
        f"each, mix {mix_text} (+{load.floor_share:.0%} health checks, not counted), "
        f"{load.channels} connections spread evenly over the ports.",
        "",
        markdown_table(
            rows,
            (
                ("setup", "setup"),
                ("requests", "requests"),
                ("errors", "errors"),
                ("achieved rps", "achieved_rps"),
                ("p50 ms", "p50_ms"),
                ("p99 ms", "p99_ms"),
            ),
        ),
    ]


def _visibility_md(vis: dict[str, Any]) -> str:
    gaps = f"a random 0-{vis['gaps_s']:g} s pause before each" if vis["gaps_s"] else "no pause"
    return (
        f"Rating visibility (3 replicas; RateBook on one, then Recommend on the next until "
        f"the rated book leaves the list; {vis['samples']} ratings, one at a time, {gaps}): "
        f"p50 {vis['p50_ms']} ms, p99 {vis['p99_ms']} ms, p99.9 {vis['p99.9_ms']} ms, "
        f"max {vis['max_ms']} ms, over 200 ms: {vis['over_200ms']}, RateBook p99 "
        f"{vis['ack_p99_ms']} ms; surely not visible yet (the last Recommend that missed "
        f"it sent that long after the acknowledgement): p99 {vis['hidden_p99_ms']} ms, "
        f"p99.9 {vis['hidden_p99.9_ms']} ms, max {vis['hidden_max_ms']} ms, over 200 ms: "
        f"{vis['hidden_over_200ms']} "
        f"(median {vis['polls_p50']} Recommend calls to see it, one call taking "
        f"{vis['poll_p50_ms']} ms at p50: a delay of one call means seen by the first "
        f"call); failed or not seen within 30 s: {vis['not_seen_or_failed']} "
        f"{vis['errors']}; tail resubscribes: {vis.get('tail_interruptions')}; slowest: "
        f"{vis['slowest']}."
    )


def _propagation_md(prop: dict[str, Any]) -> str:
    return (
        f"New version to every replica (3 replicas, bucket poll every {POLL_SECONDS:g} s, "
        f"{prop['rounds']} publishes; from the end of the upload, itself "
        f"{prop['upload_median_s']} s median, to GetStatus showing it on all three): "
        f"median {prop['median_s']} s, max {prop['max_s']} s (each: {prop['each_s']})."
    )
