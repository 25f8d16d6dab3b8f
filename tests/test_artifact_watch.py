"""The artifact watcher survives a poll that raises: a real two-worker server whose
artifact root becomes unreadable logs the failure, counts it in
``bookrec_background_errors_total{task="artifact_watch"}`` (summed over the workers),
answers readiness NOT_SERVING on every worker after ``--watch-failures-unready``
failed polls in a row while liveness and the loaded model go on, and follows new
versions again once the root is readable.

The root is unreadable for root too: the server runs without CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH (``setpriv``, util-linux), so mode bits bind it like anyone."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.publish import publish_copy
from bookrec.artifact import complete_versions
from bookrec.v1 import admin_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.broken import wait_for_log
from tests.fault_table import record_fault
from tests.serverproc import own_connection, running_server
from tests.test_fleet_replicas import eventually
from tests.test_metrics_endpoint import free_port, scrape, value

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNREADY_AFTER = 3


def without_dac() -> tuple[str, ...]:
    """A command prefix that takes root's power to ignore file modes (none for others)."""
    if os.geteuid() != 0:
        return ()
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--")


def by_worker(target: str, service: str = "") -> dict[int, tuple[int, str, str]]:
    """Each worker reached on a fresh connection: (health of ``service``, its model
    version, its own fleet entry's state), asked on one connection so one worker."""
    seen: dict[int, tuple[int, str, str]] = {}
    for _ in range(16):
        with own_connection(target) as ch:
            stub: Any = health_pb2_grpc.HealthStub(ch)
            status = AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
            health = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            reply = RecommenderServiceStub(ch).ColdStart(
                recommender_pb2.ColdStartRequest(), timeout=5
            )
        own = [r.state for r in status.fleet if r.worker_pid == status.worker_pid]
        seen[status.worker_pid] = (health.status, reply.model_version, own[0] if own else "")
    return seen


def every_worker(want: Callable[[tuple[int, str, str]], bool]) -> Callable[[Any], bool]:
    return lambda seen: len(seen) == 2 and all(want(w) for w in seen.values())


@pytest.mark.timeout(240)
def test_an_unreadable_root_is_logged_counted_unready_and_recovered(
    artifact_root: Path, tmp_path: Path
) -> None:
    old = complete_versions(artifact_root)[0].name
    port = free_port()
    args = (
        *("--poll-seconds", "0.2", "--watch-failures-unready", str(UNREADY_AFTER)),
        *("--metrics-port", str(port), "--no-compile-reranker"),
    )
    work = tmp_path / "work"
    with running_server(artifact_root, work, 2, extra_args=args, prefix=without_dac()) as srv:
        eventually(lambda: by_worker(srv.target), every_worker(lambda w: w[0] == SERVING))
        artifact_root.chmod(0)
        try:
            # Not ready on either worker; each still answers with the loaded model.
            seen = eventually(
                lambda: by_worker(srv.target),
                every_worker(lambda w: w == (NOT_SERVING, old, "watch-failing")),
            )
            live = by_worker(srv.target, "bookrec.live")
            assert all(w[0] == SERVING for w in live.values()), "liveness stays sane"
            failed = wait_for_log(srv.log, "artifact_watch failed: will retry")
            assert failed["level"] == "warning" and "Permission denied" in failed["error"]
            wait_for_log(srv.log, "artifact_watch failing: readiness NOT_SERVING until it succeeds")
            # Both workers' failures, summed by the supervisor's endpoint.
            counted = value(scrape(port), "bookrec_background_errors_total", task="artifact_watch")
            assert counted >= len(seen) * UNREADY_AFTER, counted
        finally:
            artifact_root.chmod(0o755)
        # The fault cleared: ready again, and a new version is followed by both workers.
        new = publish_copy(artifact_root)
        eventually(
            lambda: by_worker(srv.target),
            every_worker(lambda w: w == (SERVING, new, "ready")),
            timeout=60,
        )
        wait_for_log(srv.log, "artifact_watch recovered")
        assert srv.stop() == 0
    record_fault(
        "The artifact root unreadable to the server (mode 0, the server without root's "
        "DAC override): every artifact poll raises PermissionError",
        "each worker's watcher goes on: a warning names the error, "
        "bookrec_background_errors_total{task=artifact_watch} counts every failed poll "
        f"(summed over workers); after {UNREADY_AFTER} in a row readiness is NOT_SERVING "
        "(liveness SERVING, the loaded model answers); readable again, it is ready and "
        "loads the next version",
    )


def test_a_watcher_without_a_limit_stays_ready() -> None:
    """``--watch-failures-unready 0`` never turns readiness off."""
    from server.polls import PollGuard

    guard = PollGuard("artifact_watch", 0)
    for _ in range(10):
        guard.failed(OSError("no"))
    assert guard.healthy and guard.failures == 10
    limited = PollGuard("artifact_watch", 2)
    limited.failed(OSError("no"))
    assert limited.healthy
    limited.failed(OSError("no"))
    assert not limited.healthy
    limited.succeeded()
    assert limited.healthy and limited.failures == 0
