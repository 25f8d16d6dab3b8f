"""The Prometheus endpoint of a real server on loopback: counts by method and status
(refusals by authentication included), latency histograms, the model version, reloads,
cache and fold-ins; and with two workers, the sums over both, a dead worker's
gauges dropped and its counts kept."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from bookrec.v1 import admin_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.config import ServerConfig, parse_args
from tests.keyfile import bearer, make_keys
from tests.serverproc import ServerProcess, own_connection, running_server

REC = "bookrec.v1.RecommenderService/Recommend"
COLD = "bookrec.v1.RecommenderService/ColdStart"
STATUS = "bookrec.v1.AdminService/GetStatus"

Samples = list[tuple[str, dict[str, str], float]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples carrying ``labels`` (0 when none)."""
    return sum(
        v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())
    )


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def warm_user(tiny_artifact: Path) -> str:
    """A user the model knows (the trainer's warm-up queries name some)."""
    return str(json.loads((tiny_artifact / "warmup.json").read_text())["user_ids"][0])


@pytest.fixture(scope="module")
def keyed(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, int, str]]:
    """One worker with authentication on, and its metrics port and read/write key."""
    work = tmp_path_factory.mktemp("metrics")
    keys = make_keys(work / "keys.jsonl", {"app": {"scopes": ["read", "write"]}})
    port = free_port()
    args = ("--keys-file", str(work / "keys.jsonl"), "--metrics-port", str(port))
    with running_server(tiny_artifact.parent, work, extra_args=args) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        yield srv, port, keys["app"]
        srv.stop()


def test_counts_by_method_and_code_latency_version_reloads_cache_and_fold_ins(
    keyed: tuple[ServerProcess, int, str], tiny_artifact: Path, warm_user: str
) -> None:
    srv, port, key = keyed
    with grpc.insecure_channel(srv.target) as ch:
        rec = RecommenderServiceStub(ch)
        for _ in range(3):  # the same question: one miss, then two cache hits
            first = rec.Recommend(
                recommender_pb2.RecommendRequest(user_id=warm_user, k=5), metadata=bearer(key)
            )
        for _ in range(2):
            rec.ColdStart(recommender_pb2.ColdStartRequest(k=5), metadata=bearer(key))
        with pytest.raises(grpc.RpcError) as bad:
            rec.ColdStart(
                recommender_pb2.ColdStartRequest(favourite_subjects=["no such subject"]),
                metadata=bearer(key),
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as anonymous:
            rec.Recommend(recommender_pb2.RecommendRequest(user_id=warm_user, k=5))
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A rating the model has not seen, then a Recommend: its vector is re-solved.
        FeedbackServiceStub(ch).RateBook(
            feedback_pb2.RateBookRequest(
                user_id=warm_user, book_id=first.items[0].book.book_id, rating=10
            ),
            metadata=bearer(key),
        )
        rec.Recommend(
            recommender_pb2.RecommendRequest(user_id=warm_user, k=5), metadata=bearer(key)
        )

    samples = scrape(port)
    handled = "bookrec_rpc_handled_total"
    assert value(samples, handled, method=REC, code="OK") == 4
    assert value(samples, handled, method=REC, code="UNAUTHENTICATED") == 1
    assert value(samples, handled, method=COLD, code="OK") == 2
    assert value(samples, handled, method=COLD, code="INVALID_ARGUMENT") == 1
    latency = "bookrec_rpc_duration_seconds"
    assert value(samples, f"{latency}_count", method=REC, code="OK") == 4
    assert value(samples, f"{latency}_bucket", method=REC, code="OK", le="+Inf") == 4
    assert 0 < value(samples, f"{latency}_sum", method=REC, code="OK") < 10
    assert value(samples, f"{latency}_bucket", method=COLD, code="OK", le="10.0") == 2

    assert value(samples, "bookrec_model_version_info", version=tiny_artifact.name) == 1
    assert value(samples, "bookrec_model_reloads_total", result="success") == 1
    assert value(samples, "bookrec_model_reloads_total", result="failure") == 0
    assert value(samples, "bookrec_model_load_seconds_count") == 1
    assert value(samples, "bookrec_model_load_seconds_sum") > 0

    cache = "bookrec_cache_lookups_total"
    assert value(samples, cache, cache="results", result="hit") == 2 + 1  # Recommend, ColdStart
    # Recommend's first, ColdStart's first and the bad one (names resolve past the
    # cache), and Recommend after the new rating (a new key).
    assert value(samples, cache, cache="results", result="miss") == 4
    assert value(samples, "bookrec_fold_ins_total", kind="new_ratings") == 1
    assert value(samples, "bookrec_shed_total") == 0


@pytest.fixture
def two_workers(artifact_root: Path, tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    port = free_port()
    args = ("--metrics-port", str(port))
    with running_server(artifact_root, tmp_path, workers=2, extra_args=args) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        yield srv, port
        srv.stop()


def test_two_workers_are_summed_and_a_dead_workers_counts_stay(
    two_workers: tuple[ServerProcess, int], warm_user: str, artifact_root: Path
) -> None:
    srv, port = two_workers
    pids: set[int] = set()
    calls = 24
    for _ in range(calls):  # a connection each, so the kernel spreads them over both
        with own_connection(srv.target) as ch:
            RecommenderServiceStub(ch).Recommend(
                recommender_pb2.RecommendRequest(user_id=warm_user, k=5)
            )
            pids.add(AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest()).worker_pid)
    assert len(pids) == 2, "both workers answered"

    samples = scrape(port)
    assert value(samples, "bookrec_rpc_handled_total", method=REC, code="OK") == calls
    assert value(samples, "bookrec_rpc_handled_total", method=STATUS, code="OK") == calls
    assert value(samples, "bookrec_rpc_duration_seconds_count", method=REC) == calls
    # Gauges are per worker (a pid label): each serves the one version.
    version = next(p.name for p in artifact_root.iterdir() if not p.name.startswith("."))
    serving = {
        lab["pid"]
        for n, lab, v in samples
        if n == "bookrec_model_version_info" and lab["version"] == version and v == 1
    }
    assert serving == {str(p) for p in pids}
    assert value(samples, "bookrec_model_reloads_total", result="success") == 2

    dead = min(pids)
    os.kill(dead, signal.SIGKILL)

    def replaced() -> bool:
        now = {lab["pid"] for n, lab, _ in scrape(port) if n == "bookrec_model_version_info"}
        return str(dead) not in now and len(now) == 2

    wait_until(replaced)
    after = scrape(port)
    assert value(after, "bookrec_rpc_handled_total", method=REC, code="OK") == calls
    assert value(after, "bookrec_model_reloads_total", result="success") == 3


def test_metrics_port_is_off_by_default_and_set_by_environment_or_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ServerConfig.from_env({}).metrics_port == 0
    assert ServerConfig.from_env({"BOOKREC_METRICS_PORT": "9100"}).metrics_port == 9100
    monkeypatch.setenv("BOOKREC_METRICS_PORT", "9100")
    assert parse_args(["--metrics-port", "9101"]).metrics_port == 9101
