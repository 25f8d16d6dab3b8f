"""Which engine carries the shared rating log: append latency, throughput, visibility.

For each engine (the local file, NATS JetStream, Redis Streams, MariaDB) this
appends ``--n`` ratings one after another (append latency: the call until the
engine acknowledged), then ``--n`` more from ``--threads`` threads at once
(throughput), while a follower on its own connection tails the log
(visibility: from the start of an append until the follower holds it, which
is what a second replica sees). Prints one table; docs/fleet.md records a run.

    flock /tmp/bench.lock .venv/bin/python -m bench.rating_log --n 2000

With ``--replicas ARTIFACT_ROOT`` it measures the end-to-end figure instead: two
real servers (each its own copy of the artifacts, its own port) share a
JetStream log; a new user's RateBook goes to A, and B is asked Recommend
until the rated book has left the list. Delay: from sending RateBook to B's
changed reply.

    flock /tmp/bench.lock .venv/bin/python -m bench.rating_log --replicas artifacts --n 300

What each acknowledgement means differs (docs/fleet.md, "What the engine
promises"): the file fsyncs; JetStream has stored the message (file storage,
flushed by the server, fsynced every sync_interval unless configured always);
Redis here keeps nothing on disk; MariaDB commits with InnoDB's redo log fsync
(innodb_flush_log_at_trx_commit=1). MariaDB and the file are tailed by
polling (``--poll-ms``); JetStream and Redis push or block.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.stats import percentile
from bookrec.ratinglog import FileRatingLog, Rating
from bookrec.ratinglog.jetstream import JetStreamRatingLog
from bookrec.ratinglog.natslink import NatsLink


class Probe:
    """Send times by key and the follower's arrival times."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def arrived(self, key: str) -> None:
        now = time.perf_counter()
        with self.lock:
            self.seen.setdefault(key, now)

    def delays_ms(self) -> list[float]:
        return sorted((self.seen[k] - t) * 1000 for k, t in self.sent.items() if k in self.seen)


class Engine:
    name = ""
    acknowledges = ""

    def setup(self, probe: Probe) -> None: ...
    def append(self, key: str) -> None: ...
    def teardown(self) -> None: ...


class FileEngine(Engine):
    name = "file (fsync)"

    def __init__(self, poll_ms: float) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.log = FileRatingLog(Path(self.dir.name) / "ratings.jsonl")
        self.poll_s = poll_ms / 1000
        self.stop = threading.Event()

    def setup(self, probe: Probe) -> None:
        follower = FileRatingLog(self.log.path)
        follower.follow(lambda _o, r: probe.arrived(r.user_id))

        def loop() -> None:
            while not self.stop.is_set():
                follower.poll()
                time.sleep(self.poll_s)

        threading.Thread(target=loop, daemon=True).start()

    def append(self, key: str) -> None:
        self.log.append(Rating(key, "b", 5))

    def teardown(self) -> None:
        self.stop.set()
        self.dir.cleanup()


class NatsEngine(Engine):
    name = "nats jetstream (file, R1)"

    def __init__(self, servers: str) -> None:
        self.stream = f"bench-{uuid.uuid4().hex[:8]}"
        self.url = f"{servers}/{self.stream}"
        self.writer_link = NatsLink(servers)
        self.writer_link.wait_connected(5)
        self.log = JetStreamRatingLog(self.url, self.writer_link)

    def setup(self, probe: Probe) -> None:
        self.reader_link = NatsLink(self.log.servers)  # its own connection, like replica B
        self.reader_link.wait_connected(5)
        reader = JetStreamRatingLog(self.url, self.reader_link)
        reader.follow(lambda _o, r: probe.arrived(r.user_id))
        self.reader = reader

    def append(self, key: str) -> None:
        self.log.append(Rating(key, "b", 5))

    def teardown(self) -> None:
        self.reader.close()
        self.writer_link.call(self.writer_link.js.delete_stream(self.stream), 5)
        self.reader_link.close()
        self.writer_link.close()


class RedisEngine(Engine):
    name = "redis streams (no persistence here)"

    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis
        self.url = url
        self.key = f"bench:{uuid.uuid4().hex}"
        self.pool = redis.ConnectionPool.from_url(url)
        self.stop = threading.Event()

    def setup(self, probe: Probe) -> None:
        reader = self.redis.Redis.from_url(self.url)

        def loop() -> None:
            last = "0-0"
            while not self.stop.is_set():
                out: Any = reader.xread({self.key: last}, block=500, count=512)
                for _key, entries in out or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        probe.arrived(fields[b"u"].decode())

        threading.Thread(target=loop, daemon=True).start()

    def append(self, key: str) -> None:
        self.redis.Redis(connection_pool=self.pool).xadd(self.key, {"u": key, "r": b"5"})

    def teardown(self) -> None:
        self.stop.set()
        time.sleep(0.6)
        self.redis.Redis(connection_pool=self.pool).delete(self.key)


class MariaEngine(Engine):
    name = "mariadb (InnoDB, autocommit)"

    def __init__(self, host: str, poll_ms: float, threads: int) -> None:
        self.host = host
        self.table = f"bench_ratings_{uuid.uuid4().hex[:8]}"
        self.poll_s = poll_ms / 1000
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.stop = False
        self.pool: Any = self.call(self._pool(threads + 1))
        self.call(
            self._exec(
                f"CREATE TABLE {self.table} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, "
                "user_id VARCHAR(64), book_id VARCHAR(64), rating INT) ENGINE=InnoDB"
            )
        )

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _pool(self, size: int) -> Any:
        import asyncmy

        return await asyncmy.create_pool(
            host=self.host,
            port=3306,
            user="root",
            password="",
            db="test",
            autocommit=True,
            minsize=1,
            maxsize=size,
        )

    async def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            return await cur.fetchall()

    def setup(self, probe: Probe) -> None:
        async def tail() -> None:
            last = 0
            while not self.stop:
                rows = await self._exec(
                    f"SELECT seq, user_id FROM {self.table} WHERE seq > %s ORDER BY seq", (last,)
                )
                for seq, user in rows:
                    last = seq
                    probe.arrived(user)
                await asyncio.sleep(self.poll_s)

        asyncio.run_coroutine_threadsafe(tail(), self.loop)

    def append(self, key: str) -> None:
        self.call(
            self._exec(
                f"INSERT INTO {self.table} (user_id, book_id, rating) VALUES (%s, 'b', 5)", (key,)
            )
        )

    def teardown(self) -> None:
        self.stop = True
        time.sleep(self.poll_s + 0.1)
        self.call(self._exec(f"DROP TABLE {self.table}"))
        self.pool.close()


def measure(engine: Engine, n: int, threads: int) -> dict[str, float]:
    probe = Probe()
    engine.setup(probe)
    time.sleep(0.5)
    lat: list[float] = []

    def one(key: str) -> float:
        probe.sent[key] = start = time.perf_counter()
        engine.append(key)
        return (time.perf_counter() - start) * 1000

    for i in range(n):
        lat.append(one(f"s{i}"))
        time.sleep(0.001)  # a paced stream: visibility without a backlog
    keys = [f"c{i}" for i in range(n)]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, keys))
    rate = n / (time.perf_counter() - start)
    deadline = time.monotonic() + 10
    while len(probe.seen) < 2 * n and time.monotonic() < deadline:
        time.sleep(0.05)
    lat.sort()
    seq_delays = sorted(
        (probe.seen[k] - probe.sent[k]) * 1000
        for k in probe.sent
        if k.startswith("s") and k in probe.seen
    )
    engine.teardown()
    return {
        "append_p50": percentile(lat, 50),
        "append_p99": percentile(lat, 99),
        "per_s": rate,
        "vis_p50": percentile(seq_delays, 50),
        "vis_p99": percentile(seq_delays, 99),
        "seen": len(probe.seen) / (2 * n),
    }


def replicas(artifacts: Path, n: int, servers: str, ports: tuple[int, int]) -> None:
    """RateBook on A -> Recommend on B changed: the delay, over ``n`` new users."""
    import shutil
    import subprocess
    import sys

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from bench.common import ROOT
    from bookrec.v1 import feedback_pb2, recommender_pb2
    from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
    from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub

    stream = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    url = f"{servers}/{stream}"
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    procs = []
    try:
        for name, port in zip("AB", ports, strict=True):
            root = work / name
            shutil.copytree(artifacts, root)
            cmd = [sys.executable, "-m", "server", "--port", str(port), "--artifacts", str(root)]
            cmd += ["--feedback-log", str(work / f"{name}.jsonl"), "--workers", "1"]
            cmd += ["--rating-log", url, "--replica-id", name, "--no-compile-reranker"]
            log = (work / f"{name}.log").open("w")
            procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log))
        chans = [grpc.insecure_channel(f"127.0.0.1:{p}") for p in ports]
        for ch in chans:
            stub: Any = health_pb2_grpc.HealthStub(ch)
            deadline = time.monotonic() + 120
            while True:
                try:
                    check = health_pb2.HealthCheckRequest(service="")
                    if (
                        stub.Check(check, timeout=2).status
                        == health_pb2.HealthCheckResponse.SERVING
                    ):
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"a replica did not become ready; logs in {work}")
                time.sleep(0.2)
        rate_a = FeedbackServiceStub(chans[0])
        rec_b = RecommenderServiceStub(chans[1])
        ack: list[float] = []
        delay: list[float] = []
        for i in range(n):
            user = f"bench-{stream}-{i}"
            req = recommender_pb2.RecommendRequest(user_id=user, k=10)
            book = rec_b.Recommend(req, timeout=10).items[0].book.book_id
            start = time.perf_counter()
            rate_a.RateBook(
                feedback_pb2.RateBookRequest(user_id=user, book_id=book, rating=10), timeout=10
            )
            ack.append((time.perf_counter() - start) * 1000)
            while book in [r.book.book_id for r in rec_b.Recommend(req, timeout=10).items]:
                pass
            delay.append((time.perf_counter() - start) * 1000)
        ack.sort()
        delay.sort()
        print(f"replicas A -> B over {servers}, n={n} new users, milliseconds")
        print(
            f"RateBook on A (acknowledged)     p50 {percentile(ack, 50):8.3f}  "
            f"p99 {percentile(ack, 99):8.3f}  max {ack[-1]:8.3f}"
        )
        print(
            f"Recommend on B changed (A->B)    p50 {percentile(delay, 50):8.3f}  "
            f"p99 {percentile(delay, 99):8.3f}  max {delay[-1]:8.3f}"
        )
        for ch in chans:
            ch.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        link = NatsLink(servers)
        if link.wait_connected(5):
            for name in (stream, f"KV_{stream}-control", f"KV_{stream}-replicas"):
                try:
                    link.call(link.js.delete_stream(name), 5)
                except Exception as e:
                    print(f"could not delete {name}: {e}")
        link.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="bench.rating_log")
    p.add_argument("--n", type=int, default=2000, help="ratings per phase")
    p.add_argument("--threads", type=int, default=8, help="appenders in the throughput phase")
    p.add_argument("--poll-ms", type=float, default=10.0, help="poll period of polled tails")
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--mariadb", default="127.0.0.1")
    p.add_argument("--only", default="", help="comma list: file,nats,redis,mariadb")
    p.add_argument("--replicas", type=Path, help="artifact root: measure A -> B end to end")
    p.add_argument("--ports", default="52250,52251", help="the two replicas' ports")
    a = p.parse_args()
    if a.replicas:
        first, second = (int(x) for x in a.ports.split(","))
        replicas(a.replicas, a.n, a.nats, (first, second))
        return
    makers: dict[str, Callable[[], Engine]] = {
        "file": lambda: FileEngine(a.poll_ms),
        "nats": lambda: NatsEngine(a.nats),
        "redis": lambda: RedisEngine(a.redis),
        "mariadb": lambda: MariaEngine(a.mariadb, a.poll_ms, a.threads),
    }
    chosen = [k for k in makers if not a.only or k in a.only.split(",")]
    print(
        f"n={a.n} per phase, {a.threads} threads for throughput, polled tails every "
        f"{a.poll_ms} ms; milliseconds"
    )
    print(
        f"{'engine':38} {'append p50':>10} {'p99':>8} {'ratings/s':>10} "
        f"{'visible p50':>11} {'p99':>8} {'seen':>6}"
    )
    for key in chosen:
        engine = makers[key]()
        r = measure(engine, a.n, a.threads)
        print(
            f"{engine.name:38} {r['append_p50']:10.3f} {r['append_p99']:8.3f} "
            f"{r['per_s']:10.0f} {r['vis_p50']:11.3f} {r['vis_p99']:8.3f} {r['seen']:6.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
