"""Hot reload on a real two-worker server: no request fails while versions change, each
client moves from the old version to the new one exactly once, and operators can pin
and roll back every worker through AdminService."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bench.publish import publish_copy
from bookrec.artifact import complete_versions
from bookrec.v1 import admin_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine.bundle import Bundle
from tests.serverproc import ServerProcess, own_connection, running_server

TOKEN = "s3cret"
CLIENTS = 6


@pytest.fixture
def server(artifact_root: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(artifact_root, tmp_path / "work", workers=2, admin_token=TOKEN) as srv:
        yield srv
        assert srv.stop() == 0


class Client(threading.Thread):
    """Calls all three RPCs in a loop, recording each reply's version or error code."""

    def __init__(self, target: str, user: str, book: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.target, self.user, self.book, self.stop = target, user, book, stop
        self.versions: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with own_connection(self.target) as ch:
            stub = RecommenderServiceStub(ch)
            while not self.stop.is_set():
                try:
                    for reply in (
                        stub.Recommend(
                            recommender_pb2.RecommendRequest(user_id=self.user), timeout=5
                        ),
                        stub.Similar(recommender_pb2.SimilarRequest(book_id=self.book), timeout=5),
                        stub.ColdStart(recommender_pb2.ColdStartRequest(), timeout=5),
                    ):
                        self.versions.append(reply.model_version)
                except grpc.RpcError as e:
                    self.errors.append(str(e.code()))

    def changes(self) -> list[str]:
        return [v for i, v in enumerate(self.versions) if i == 0 or v != self.versions[i - 1]]


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_publishing_under_load_fails_no_request(artifact_root: Path, server: ServerProcess) -> None:
    bundle = Bundle.open(complete_versions(artifact_root)[0])
    user, book = sorted(bundle.user_row)[0], bundle.book_ids[0]
    old = bundle.version
    stop = threading.Event()
    clients = [Client(server.target, user, book, stop) for _ in range(CLIENTS)]
    for c in clients:
        c.start()
    wait_until(lambda: all(len(c.versions) > 10 for c in clients))
    new = publish_copy(artifact_root)
    wait_until(lambda: all(c.versions[-1] == new for c in clients))
    time.sleep(0.3)
    stop.set()
    for c in clients:
        c.join(10)
    for c in clients:
        assert c.errors == []
        assert c.changes() == [old, new], "each client moves from old to new exactly once"
    with own_connection(server.target) as ch:
        pids = {AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest()).worker_pid}
    for _ in range(20):  # every worker swapped, whichever answers
        with own_connection(server.target) as ch:
            status = AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest())
        assert status.serving_version == new
        pids.add(status.worker_pid)
    assert len(pids) == 2


def serving_versions(target: str) -> set[str]:
    out = set()
    for _ in range(12):
        with own_connection(target) as ch:
            out.add(
                RecommenderServiceStub(ch)
                .ColdStart(recommender_pb2.ColdStartRequest())
                .model_version
            )
    return out


@pytest.mark.timeout(180)
def test_admin_rollback_pin_and_unpin_reach_every_worker(
    artifact_root: Path, server: ServerProcess
) -> None:
    old = complete_versions(artifact_root)[0].name
    new = publish_copy(artifact_root)
    wait_until(lambda: serving_versions(server.target) == {new})
    with own_connection(server.target) as ch:
        admin = AdminServiceStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            admin.Rollback(admin_pb2.RollbackRequest())
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            admin.Rollback(admin_pb2.RollbackRequest(), metadata=(("authorization", "Bearer no"),))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED  # a wrong key is no key
        auth: tuple[tuple[str, str | bytes], ...] = (("authorization", f"Bearer {TOKEN}"),)
        assert admin.Rollback(admin_pb2.RollbackRequest(), metadata=auth).pinned_version == old
        wait_until(lambda: serving_versions(server.target) == {old})
        status = admin.GetStatus(admin_pb2.GetStatusRequest())
        assert status.pinned_version == old and status.serving_version == old
        newest = publish_copy(artifact_root)
        time.sleep(1.0)
        assert serving_versions(server.target) == {old}, "pinned: new versions wait"
        with pytest.raises(grpc.RpcError) as e:
            admin.PinVersion(admin_pb2.PinVersionRequest(version="nope"), metadata=auth)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        admin.Unpin(admin_pb2.UnpinRequest(), metadata=auth)
        wait_until(lambda: serving_versions(server.target) == {newest})
        assert (
            admin.PinVersion(admin_pb2.PinVersionRequest(version=new), metadata=auth).pinned_version
            == new
        )
        wait_until(lambda: serving_versions(server.target) == {new})


@pytest.mark.timeout(120)
def test_a_worker_that_dies_is_replaced(server: ServerProcess) -> None:
    def pids() -> set[int]:
        seen = set()
        for _ in range(16):
            with own_connection(server.target) as ch:
                try:
                    status = AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest())
                except grpc.RpcError:  # a connection queued on the killed worker's socket
                    continue
                seen.add(status.worker_pid)
        return seen

    first = pids()
    assert len(first) == 2
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(pids() - {victim}) == 2, timeout=60)
    assert server.proc.poll() is None


def fleet_pids(target: str) -> dict[int, set[int]]:
    """For each worker that answers GetStatus: the worker pids its fleet view lists."""
    seen: dict[int, set[int]] = {}
    for _ in range(16):
        with own_connection(target) as ch:
            try:
                status = AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
            except grpc.RpcError:  # a connection queued on a killed worker's socket
                continue
        assert all(r.state == "ready" and r.ready and r.serving_version for r in status.fleet)
        seen[status.worker_pid] = {r.worker_pid for r in status.fleet}
    return seen


@pytest.mark.timeout(120)
def test_get_status_lists_every_worker_of_the_server(server: ServerProcess) -> None:
    # Each worker's GetStatus lists both workers (heartbeats in <artifacts>/.fleet/).
    wait_until(lambda: len(fleet_pids(server.target)) == 2)
    views = fleet_pids(server.target)
    workers = set(views)
    assert len(workers) == 2 and all(view == workers for view in views.values()), views
    # A worker killed with SIGKILL leaves the view; the one the supervisor starts joins.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        views = fleet_pids(server.target)
        return (
            len(views) == 2
            and victim not in views
            and all(view == set(views) for view in views.values())
        )

    wait_until(replaced)
    assert server.proc.poll() is None
