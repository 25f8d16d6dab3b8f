"""A call whose deadline passes, or whose client cancels it, stops computing: against a
real server on loopback with the test hook BOOKREC_TEST_STEP_DELAY_MS (each compute
step sleeps first and logs "test hook: slow step"), the server logs "call abandoned"
at a step before the last, and no step of that call runs after it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bookrec.v1 import catalog_pb2, recommender_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, running_server

STEP_DELAY_S = 0.4
# Six distinct one-letter words (none inside another): "filters", six word steps, "order".
QUERY = "a e i o n r"
STEPS = 8


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    hook = {"BOOKREC_TEST_STEP_DELAY_MS": str(int(STEP_DELAY_S * 1000))}
    with (
        mock.patch.dict(os.environ, hook),
        running_server(tiny_artifact.parent, tmp_path_factory.mktemp("deadlines")) as srv,
    ):
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        yield srv


def events(server: ServerProcess, event: str, rpc: str) -> list[dict[str, Any]]:
    """The server's JSON log lines of ``event`` for ``rpc``, in order."""
    out = []
    for line in server.log.read_text().splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc.get("event") == event and doc.get("rpc") == rpc:
                out.append(doc)
    return out


def wait_for(server: ServerProcess, event: str, rpc: str, count: int) -> list[dict[str, Any]]:
    """Poll the log until it holds ``count`` lines of ``event`` for ``rpc`` (at most 60 s)."""
    give_up = time.monotonic() + 60
    while len(found := events(server, event, rpc)) < count:
        assert time.monotonic() < give_up, f"no {event!r} for {rpc} in the log"
        time.sleep(0.05)
    return found


def assert_no_step_after(server: ServerProcess, rpc: str, steps: int) -> None:
    """Over three more step delays, no step of the abandoned call started: it stopped
    (a call still computing logs its next step one delay later)."""
    time.sleep(3 * STEP_DELAY_S)
    assert len(events(server, "test hook: slow step", rpc)) == steps


def test_a_search_past_its_deadline_stops_mid_compute(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = CatalogServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.SearchBooks(catalog_pb2.SearchBooksRequest(query=QUERY), timeout=1.0)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (abandoned,) = wait_for(server, "call abandoned", "SearchBooks", 1)
    assert abandoned["reason"] == "deadline"
    steps = [e["step"] for e in events(server, "test hook: slow step", "SearchBooks")]
    assert steps[-1] == abandoned["step"] != "order"
    assert len(steps) < STEPS
    assert_no_step_after(server, "SearchBooks", len(steps))
    record_fault(
        "SearchBooks with a 1 s deadline whose steps take 0.4 s each (test hook)",
        f"stopped before {abandoned['step']} of {STEPS} steps ('call abandoned', "
        "reason deadline, bookrec_calls_abandoned); client: DEADLINE_EXCEEDED",
    )


def test_a_cancelled_search_stops_mid_compute(server: ServerProcess) -> None:
    before = len(events(server, "test hook: slow step", "SearchBooks"))
    with grpc.insecure_channel(server.target) as channel:
        stub = CatalogServiceStub(channel)
        call = stub.SearchBooks.future(catalog_pb2.SearchBooksRequest(query=QUERY))
        wait_for(server, "test hook: slow step", "SearchBooks", before + 1)  # computing
        call.cancel()
        abandoned = wait_for(server, "call abandoned", "SearchBooks", 2)[-1]
    assert abandoned["reason"] == "cancelled"
    steps = [e["step"] for e in events(server, "test hook: slow step", "SearchBooks")][before:]
    assert steps[-1] == abandoned["step"] != "order"
    assert len(steps) < STEPS
    assert_no_step_after(server, "SearchBooks", before + len(steps))
    record_fault(
        "SearchBooks cancelled by its client mid-compute (test hook: 0.4 s steps)",
        f"stopped before {abandoned['step']} ('call abandoned', reason cancelled)",
    )


def test_a_pipeline_past_its_deadline_is_not_computed(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = RecommenderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ColdStart(recommender_pb2.ColdStartRequest(k=5), timeout=0.2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (abandoned,) = wait_for(server, "call abandoned", "ColdStart", 1)
    assert (abandoned["step"], abandoned["reason"]) == ("start", "deadline")
    assert_no_step_after(server, "ColdStart", 1)
    record_fault(
        "ColdStart whose 0.2 s deadline passes before its pipeline starts (test hook)",
        "pipeline not computed ('call abandoned' at start, reason deadline); "
        "client: DEADLINE_EXCEEDED",
    )
