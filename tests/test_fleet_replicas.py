"""Two replicas sharing the JetStream rating log and control store (issue 13, part A).

Real engine (NATS JetStream at 127.0.0.1:4222, a stream and buckets unique to
each test, deleted after), real servers on loopback, each with its own copy of
the artifacts and its own port: a rating sent to A changes Recommend on B;
acknowledged ratings survive kill -9 of A and reach the trainer; pin and
rollback on A are followed by B; GetStatus on either lists both; readiness
waits for the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.publish import publish_copy
from bookrec.artifact import complete_versions
from bookrec.v1 import admin_pb2, catalog_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.broken import log_lines, wait_for_log
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, own_connection, running_server
from tests.test_metrics_endpoint import free_port, scrape, value
from tests.trainerproc import ROOT, trainer_env

NATS = "nats://127.0.0.1:4222"
TOKEN = "fleet-s3cret"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
T = TypeVar("T")
TRAINER = (sys.executable, "-m", "trainer")


def eventually(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float = 30.0) -> T:
    """``fn()`` once ``ok`` holds for it; fails with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        time.sleep(0.05)


def health(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as ch:
        stub: Any = health_pb2_grpc.HealthStub(ch)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def drop_stream(servers: str, stream: str) -> None:
    """Delete the rating stream and its two key-value buckets."""

    async def go() -> None:
        nc = await nats.connect(servers, connect_timeout=2, max_reconnect_attempts=1)
        js = nc.jetstream()
        for name in (stream, f"KV_{stream}-control", f"KV_{stream}-replicas"):
            with contextlib.suppress(Exception):  # never created, or already gone
                await js.delete_stream(name)
        await nc.close()

    asyncio.run(go())


@contextmanager
def replica(
    artifacts: Path, work: Path, url: str, name: str, workers: int = 1, extra: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    args = ("--rating-log", url, "--replica-id", name, "--no-compile-reranker", *extra)
    with running_server(
        artifacts, work, workers=workers, admin_token=TOKEN, extra_args=args
    ) as srv:
        yield srv


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"test-fleet-{uuid.uuid4().hex[:10]}"
    yield name
    drop_stream(NATS, name)


@pytest.fixture
def fleet(artifact_root: Path, tmp_path: Path, stream: str) -> Iterator[list[ServerProcess]]:
    """Replicas A and B, each with its own artifact copy, both ready."""
    root_b = tmp_path / "artifacts-b"
    shutil.copytree(artifact_root, root_b)
    url = f"{NATS}/{stream}"
    with ExitStack() as stack:
        a = stack.enter_context(replica(artifact_root, tmp_path / "a", url, "A"))
        b = stack.enter_context(replica(root_b, tmp_path / "b", url, "B"))
        for srv in (a, b):
            srv.wait_health(SERVING)
        yield [a, b]


def recommended(target: str, user: str) -> list[str]:
    with own_connection(target) as ch:
        reply = RecommenderServiceStub(ch).Recommend(
            recommender_pb2.RecommendRequest(user_id=user, k=10), timeout=10
        )
        return [r.book.book_id for r in reply.items]


def some_books(target: str, n: int) -> list[str]:
    with own_connection(target) as ch:
        reply = CatalogServiceStub(ch).SearchBooks(
            catalog_pb2.SearchBooksRequest(page_size=n), timeout=10
        )
        return [b.book_id for b in reply.books]


def rate(target: str, user: str, book: str, rating: int) -> feedback_pb2.RateBookResponse:
    with own_connection(target) as ch:
        return FeedbackServiceStub(ch).RateBook(
            feedback_pb2.RateBookRequest(user_id=user, book_id=book, rating=rating), timeout=10
        )


def status(target: str) -> admin_pb2.GetStatusResponse:
    with own_connection(target) as ch:
        return AdminServiceStub(ch).GetStatus(
            admin_pb2.GetStatusRequest(), metadata=AUTH, timeout=10
        )


@pytest.mark.timeout(180)
def test_a_rating_sent_to_a_changes_recommend_on_b(fleet: list[ServerProcess]) -> None:
    a, b = fleet
    user = f"fleet-reader-{uuid.uuid4().hex[:8]}"
    before = recommended(b.target, user)
    assert before, "a new user gets a list before rating anything"
    # Rate what B recommends: a rated book leaves the user's list once B folds it in.
    for book in before[:3]:
        assert rate(a.target, user, book, 10).accepted
    # Each rating reaches B as soon as it is stored, so a first changed list may still
    # hold the later ones: wait until none of the three is left.
    rated = set(before[:3])
    after = eventually(lambda: recommended(b.target, user), lambda ids: not rated & set(ids))
    assert after != before


@pytest.mark.timeout(300)
def test_acknowledged_ratings_survive_kill_9_and_reach_the_trainer(
    fleet: list[ServerProcess], stream: str, tiny_data: Path, tmp_path: Path
) -> None:
    a, b = fleet
    user = f"fleet-kill-{uuid.uuid4().hex[:8]}"
    books = some_books(a.target, 12)
    sent = sorted((book, 1 + k % 10) for k, book in enumerate(books))
    for book, rating in sent:
        assert rate(a.target, user, book, rating).accepted
    a.proc.send_signal(signal.SIGKILL)  # right after the last acknowledgement
    assert a.proc.wait(timeout=10) == -signal.SIGKILL
    # Replica B still has every one (what it recommends excludes all twelve) ...
    eventually(lambda: recommended(b.target, user), lambda ids: not set(ids) & set(books))
    # ... and the trainer reads them from the shared log, not from a file.
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    assert not (data / "feedback").exists()
    store = tmp_path / "store.sqlite"
    env = {**trainer_env(), "BOOKREC_TRAIN_RATING_LOG": f"{NATS}/{stream}"}
    result = subprocess.run(
        [*TRAINER, "ingest", "--data", str(data), "--store", f"sqlite:///{store}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute(
            "SELECT w.work_id, i.rating FROM interactions i JOIN users u USING (user_idx) "
            "JOIN works w USING (item_idx) WHERE u.user_id = ?",
            (user,),
        ).fetchall()
    finally:
        conn.close()
    assert sorted((str(w), int(r)) for w, r in rows) == sent


@pytest.mark.timeout(240)
def test_pin_and_rollback_on_a_are_followed_by_b_and_status_shows_the_fleet(
    artifact_root: Path, tmp_path: Path, stream: str
) -> None:
    old = complete_versions(artifact_root)[0].name
    new = publish_copy(artifact_root)  # two versions; the newer serves
    root_b = tmp_path / "artifacts-b"
    shutil.copytree(artifact_root, root_b)
    url = f"{NATS}/{stream}"
    with (
        replica(artifact_root, tmp_path / "a", url, "A") as a,
        replica(root_b, tmp_path / "b", url, "B") as b,
    ):
        for srv in (a, b):
            srv.wait_health(SERVING)
        fleet = eventually(
            lambda: status(b.target).fleet, lambda f: [r.replica_id for r in f] == ["A", "B"]
        )
        assert all(r.serving_version == new and r.ready and r.state == "ready" for r in fleet)
        eventually(
            lambda: status(a.target).fleet, lambda f: [r.replica_id for r in f] == ["A", "B"]
        )

        with own_connection(a.target) as ch:
            AdminServiceStub(ch).PinVersion(
                admin_pb2.PinVersionRequest(version=old), metadata=AUTH, timeout=60
            )
        reply = eventually(lambda: status(b.target), lambda s: s.serving_version == old)
        assert reply.pinned_version == old
        eventually(
            lambda: status(a.target).fleet,
            lambda f: [(r.serving_version, r.pinned_version) for r in f] == [(old, old)] * 2,
        )

        with own_connection(a.target) as ch:
            AdminServiceStub(ch).Unpin(admin_pb2.UnpinRequest(), metadata=AUTH, timeout=60)
        eventually(lambda: status(b.target).serving_version, lambda v: v == new)

        with own_connection(a.target) as ch:
            target = AdminServiceStub(ch).Rollback(
                admin_pb2.RollbackRequest(), metadata=AUTH, timeout=60
            )
        assert target.pinned_version == old
        reply = eventually(lambda: status(b.target), lambda s: s.serving_version == old)
        assert reply.pinned_version == old
    # A replica started later honours the shared pin from its first load.
    with replica(root_b, tmp_path / "c", url, "C") as c:
        c.wait_health(SERVING)
        assert status(c.target).serving_version == old


@pytest.mark.timeout(180)
def test_not_ready_without_a_model_but_live(
    artifact_root: Path, tmp_path: Path, stream: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with replica(empty, tmp_path / "a", f"{NATS}/{stream}", "A") as a:
        assert eventually(lambda: health(a.target, "bookrec.live"), lambda s: s == SERVING)
        # Live but not ready: no model yet (the log is caught up: it is empty).
        for name in ("", "bookrec.ready", "bookrec.v1.RecommenderService"):
            assert health(a.target, name) == NOT_SERVING
        assert eventually(lambda: status(a.target).fleet, bool)[0].state == "loading"
        version = complete_versions(artifact_root)[0]
        publish_copy(empty, version)
        for name in ("", "bookrec.ready", "bookrec.v1.RecommenderService"):
            assert eventually(partial(health, a.target, name), lambda s: s == SERVING) == SERVING
        assert health(a.target, "bookrec.ratinglog") == SERVING


def put_pin_document(servers: str, stream: str, value: bytes) -> None:
    """Write the shared pin's key as an operator's tool or another build might."""

    async def go() -> None:
        nc = await nats.connect(servers, connect_timeout=2, max_reconnect_attempts=1)
        kv = await nc.jetstream().key_value(f"{stream}-control")
        await kv.put("pin", value)
        await nc.close()

    asyncio.run(go())


@pytest.mark.timeout(180)
def test_the_fleet_view_lists_every_worker_of_a_replica(
    artifact_root: Path, tmp_path: Path, stream: str
) -> None:
    with replica(artifact_root, tmp_path / "a", f"{NATS}/{stream}", "A", workers=2) as a:
        a.wait_health(SERVING)
        fleet = eventually(
            lambda: status(a.target).fleet, lambda f: len({r.worker_pid for r in f}) == 2
        )
        assert [r.replica_id for r in fleet] == ["A", "A"]
        assert all(r.ready and r.state == "ready" and r.worker_pid > 0 for r in fleet)


@pytest.mark.timeout(180)
def test_a_malformed_pin_document_is_logged_and_the_heartbeat_goes_on(
    artifact_root: Path, tmp_path: Path, stream: str
) -> None:
    old = complete_versions(artifact_root)[0].name
    new = publish_copy(artifact_root)
    port = free_port()
    extra = ("--metrics-port", str(port))
    with replica(artifact_root, tmp_path / "a", f"{NATS}/{stream}", "A", extra=extra) as a:
        a.wait_health(SERVING)
        eventually(lambda: status(a.target).fleet, bool)
        bad = (b"{not json", b'["a", "list"]', b'{"pin": 7}')
        for doc in bad:
            put_pin_document(NATS, stream, doc)
            written = time.time()

            def beat_since(fleet: Any, t: float = written) -> bool:
                return bool(fleet) and fleet[0].heartbeat_unix > t + 1.5

            # The heartbeat goes on (in the fleet view: beats sent after the document),
            # and the replica keeps serving what it served.
            fleet = eventually(lambda: status(a.target).fleet, beat_since)
            assert fleet[0].serving_version == new and fleet[0].ready, fleet
        assert status(a.target).serving_version == new
        warnings = [
            line
            for line in log_lines(a.log, "fleet_pin failed: will retry")
            if line["level"] == "warning" and "malformed pin document" in line["error"]
        ]
        assert len(warnings) == len(bad), "one warning per bad document, not per round"
        errors = value(scrape(port), "bookrec_background_errors_total", task="fleet_pin")
        assert errors >= len(bad), "every failed read is counted"
        # Pin sync goes on: a good document, as another replica writes it, is followed.
        good = {"pin": old, "by": "test", "at": time.time()}
        put_pin_document(NATS, stream, json.dumps(good).encode())
        reply = eventually(lambda: status(a.target), lambda s: s.serving_version == old)
        assert reply.pinned_version == old
        wait_for_log(a.log, "fleet_pin recovered")
    record_fault(
        "Malformed pin document in the fleet's JetStream KV (not JSON, not an object, "
        "a number for the version)",
        "warning once per document ('malformed pin document ... write a good one with "
        "PinVersion or Unpin'), counted in bookrec_background_errors_total{task=fleet_pin}; "
        "the last pin read stays in force, the heartbeat and fleet view go on, and the next "
        "good document is followed at once",
    )
