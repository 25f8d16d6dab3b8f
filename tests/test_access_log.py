"""The access log of a real server on loopback: one JSON line per call with its request
id, method, status, duration and model version; the caller's x-request-id echoed in the
trailers (next to an error's own details) or a fresh one made; health checks unlogged;
nothing but JSON lines on stderr (gRPC core's own lines silenced)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bookrec.v1 import recommender_pb2
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.serverproc import ServerProcess, ready_server

REC = "bookrec.v1.RecommenderService/Recommend"
COLD = "bookrec.v1.RecommenderService/ColdStart"
FIELDS = {"request_id", "method", "code", "duration_ms", "model_version"}


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with ready_server(tiny_artifact.parent, tmp_path_factory.mktemp("access")) as srv:
        yield srv


def lines(srv: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in srv.log.read_text().splitlines() if line]


def access(srv: ServerProcess, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The access lines once there are ``want`` of them (an error's line is written just
    after its status is sent), and a moment more to see that no extra one comes."""
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in lines(srv) if d["logger"] == "server.access"]
        if len(found) >= want or time.monotonic() > deadline:
            time.sleep(0.2)
            return [d for d in lines(srv) if d["logger"] == "server.access"]
        time.sleep(0.05)


def trailer(metadata: Any, key: str) -> list[str | bytes]:
    return [v for k, v in metadata or () if k == key]


def test_one_line_per_call_with_the_request_id_echoed(
    server: ServerProcess, tiny_artifact: Path
) -> None:
    before = len(access(server, 0))
    with grpc.insecure_channel(server.target) as ch:
        rec = RecommenderServiceStub(ch)
        _, call = rec.ColdStart.with_call(
            recommender_pb2.ColdStartRequest(k=3), metadata=(("x-request-id", "given-id-1"),)
        )
        assert trailer(call.trailing_metadata(), "x-request-id") == ["given-id-1"]
        _, call = rec.ColdStart.with_call(recommender_pb2.ColdStartRequest(k=4))
        made = trailer(call.trailing_metadata(), "x-request-id")
        assert len(made) == 1 and re.fullmatch(r"[0-9a-f]{32}", str(made[0]))
        with pytest.raises(grpc.RpcError) as bad:
            rec.Recommend(
                recommender_pb2.RecommendRequest(user_id="u", k=1000),
                metadata=(("x-request-id", "given-id-2"),),
            )
        error: Any = bad.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert trailer(error.trailing_metadata(), "x-request-id") == ["given-id-2"]
        assert trailer(error.trailing_metadata(), "grpc-status-details-bin"), (
            "the error's own details survive beside the request id"
        )
        _, call = rec.ColdStart.with_call(  # not one to log as sent: replaced
            recommender_pb2.ColdStartRequest(k=5), metadata=(("x-request-id", "a b" * 100),)
        )
        replaced = trailer(call.trailing_metadata(), "x-request-id")
        assert len(replaced) == 1 and re.fullmatch(r"[0-9a-f]{32}", str(replaced[0]))
    server.wait_health(health_pb2.HealthCheckResponse.SERVING)  # a health check: no line

    got = access(server, before + 4)[before:]
    assert len(got) == 4, got
    for line in got:
        assert line.keys() >= FIELDS, line
        assert line["event"] == "rpc" and line["level"] == "info"
        assert line["model_version"] == tiny_artifact.name
        assert isinstance(line["duration_ms"], float) and 0 < line["duration_ms"] < 10_000
    assert [(d["request_id"], d["method"], d["code"]) for d in got] == [
        ("given-id-1", COLD, "OK"),
        (made[0], COLD, "OK"),
        ("given-id-2", REC, "INVALID_ARGUMENT"),
        (replaced[0], COLD, "OK"),
    ]


def test_stderr_holds_only_json_lines(server: ServerProcess) -> None:
    text = server.log.read_text()
    assert text.strip()
    for line in text.splitlines():
        doc = json.loads(line)  # raises on a gRPC core line or any other stray text
        assert {"ts", "level", "logger", "event"} <= doc.keys()
