"""The rating log's engine stops and comes back (issue 13, part A).

A NATS server of the test's own (a port in 52200-52299, JetStream on a temp
directory), so the shared one is never stopped. While it is down a replica keeps
serving reads, RateBook answers UNAVAILABLE (never OK with the rating lost) and
so do pins; once it is back everything recovers by itself. A replica started
while the engine is down loads its model but does not report ready until it
has read the log, and then it already holds every earlier rating.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from bookrec.artifact import complete_versions
from bookrec.ratinglog import Rating
from bookrec.ratinglog.jetstream import JetStreamRatingLog
from bookrec.ratinglog.natslink import NatsLink
from bookrec.v1 import admin_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from tests.broken import wait_for_log
from tests.serverproc import own_connection
from tests.test_fleet_replicas import (
    AUTH,
    NOT_SERVING,
    SERVING,
    eventually,
    health,
    rate,
    recommended,
    replica,
    some_books,
    status,
)

NATS_SERVER = "/usr/sbin/nats-server"
PORTS = range(52200, 52300)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 52200-52299")


class NatsServer:
    """A JetStream server of this test's own; ``stop`` and ``start`` keep its store."""

    def __init__(self, port: int, store: Path) -> None:
        self.port, self.store = port, store
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.proc.poll() is None, "nats-server exited"
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None


@contextmanager
def nats_server(port: int, store: Path) -> Iterator[NatsServer]:
    server = NatsServer(port, store)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def logged(url: str) -> list[Rating]:
    servers = url.rsplit("/", 1)[0]
    link = NatsLink(servers)
    try:
        return [r for _, r in JetStreamRatingLog(url, link).read_from(0)]
    finally:
        link.close()


def rate_code(target: str, user: str, book: str) -> tuple[grpc.StatusCode, str]:
    try:
        rate(target, user, book, 7)
    except grpc.RpcError as e:
        return e.code(), str(e.details())
    return grpc.StatusCode.OK, ""


@pytest.mark.timeout(240)
def test_engine_down_reads_serve_ratebook_unavailable_then_recovers(
    artifact_root: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}/engine-stop-{uuid.uuid4().hex[:8]}"
    store = tmp_path / "nats"
    user = f"outage-{uuid.uuid4().hex[:8]}"
    with (
        nats_server(port, store) as engine,
        replica(artifact_root, tmp_path / "a", url, "A") as a,
    ):
        a.wait_health(SERVING)
        books = some_books(a.target, 3)
        assert rate(a.target, user, books[0], 9).accepted
        engine.stop()

        _, details = eventually(
            lambda: rate_code(a.target, user, books[1]),
            lambda c: c[0] == grpc.StatusCode.UNAVAILABLE,
        )
        assert "not stored" in details or "may not be stored" in details
        assert recommended(a.target, user)  # reads keep working
        assert health(a.target, "") == SERVING
        assert eventually(lambda: health(a.target, "bookrec.ratinglog"), lambda s: s != SERVING)
        version = complete_versions(artifact_root)[0].name
        with pytest.raises(grpc.RpcError) as pin, own_connection(a.target) as ch:
            AdminServiceStub(ch).PinVersion(
                admin_pb2.PinVersionRequest(version=version), metadata=AUTH, timeout=30
            )
        assert pin.value.code() == grpc.StatusCode.UNAVAILABLE
        assert status(a.target).pinned_version == ""

        engine.start()  # back, with its stored stream
        eventually(lambda: rate_code(a.target, user, books[2]), lambda c: c[0].name == "OK")
        assert eventually(lambda: health(a.target, "bookrec.ratinglog"), lambda s: s == SERVING)
        # The tail resubscribed: the rating sent after the restart is folded in.
        eventually(lambda: recommended(a.target, user), lambda ids: books[2] not in ids)
        kept = [(r.user_id, r.book_id) for r in logged(url)]
        assert (user, books[0]) in kept and (user, books[2]) in kept


@pytest.mark.timeout(240)
def test_a_replica_started_while_the_engine_is_down_is_ready_only_after_catching_up(
    artifact_root: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}/catch-up-{uuid.uuid4().hex[:8]}"
    store = tmp_path / "nats"
    user = f"earlier-{uuid.uuid4().hex[:8]}"
    with (
        nats_server(port, store),
        replica(artifact_root, tmp_path / "first", url, "first") as first,
    ):
        first.wait_health(SERVING)
        before = recommended(first.target, user)
        for book in before[:3]:
            assert rate(first.target, user, book, 10).accepted
    version = complete_versions(artifact_root)[0].name
    with replica(artifact_root, tmp_path / "late", url, "late") as late:
        wait_for_log(late.log, "model available", version=version)
        assert eventually(lambda: health(late.target, "bookrec.live"), lambda s: s == SERVING)
        # A model, but the log cannot be read: not ready.
        for name in ("", "bookrec.ready"):
            assert health(late.target, name) == NOT_SERVING
        with nats_server(port, store):
            late.wait_health(SERVING)
            # Ready means caught up: the earlier ratings are already folded in.
            assert not set(before[:3]) & set(recommended(late.target, user))
