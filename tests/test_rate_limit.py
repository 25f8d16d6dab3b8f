"""Per-key token buckets: the bucket itself on a fake clock, then the real server
(no model needed: GetStatus answers without one)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from bookrec.v1 import admin_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from server.ratelimit import RateLimiter
from tests.fault_table import record_fault
from tests.keyfile import bearer, make_keys, wait_answering
from tests.serverproc import ServerProcess, running_server

RATE, BURST = 4.0, 3.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert [limiter.check("a", RATE, BURST) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.check("a", RATE, BURST)
    assert wait == pytest.approx(1 / RATE)
    assert limiter.check("b", RATE, BURST) == 0.0, "each key has its own bucket"
    clock.now += wait
    assert limiter.check("a", RATE, BURST) == 0.0
    assert limiter.check("a", RATE, BURST) > 0
    clock.now += 60  # refills up to the burst, never beyond
    assert sum(limiter.check("a", RATE, BURST) == 0.0 for _ in range(10)) == 3
    assert all(limiter.check("c", 0.0, 0.0) == 0.0 for _ in range(1000)), "0 = unlimited"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    work = tmp_path_factory.mktemp("ratelimit")
    (work / "artifacts").mkdir()
    keys = make_keys(
        work / "keys.jsonl",
        {
            "limited": {"scopes": ["read"]},
            "neighbour": {"scopes": ["read"]},
            "unlimited": {"scopes": ["read"], "rate": 0},
        },
    )
    args: tuple[str, ...] = ("--keys-file", str(work / "keys.jsonl"), "--rate-limit", str(RATE))
    args += ("--rate-burst", str(BURST))
    with running_server(work / "artifacts", work, extra_args=args) as srv:
        wait_answering(srv.target)
        yield srv, keys


def status(stub: AdminServiceStub, key: str) -> grpc.StatusCode:
    try:
        stub.GetStatus(admin_pb2.GetStatusRequest(), metadata=bearer(key))
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_over_the_rate_is_resource_exhausted_with_retry_after(
    server: tuple[ServerProcess, dict[str, str]],
) -> None:
    srv, keys = server
    with grpc.insecure_channel(srv.target) as ch:
        stub = AdminServiceStub(ch)
        codes = [status(stub, keys["limited"]) for _ in range(int(BURST))]
        assert codes == [grpc.StatusCode.OK] * int(BURST)
        with pytest.raises(grpc.RpcError) as e:
            stub.GetStatus(admin_pb2.GetStatusRequest(), metadata=bearer(keys["limited"]))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        raw: Any = e.value.trailing_metadata() or ()
        trailers = {str(k): str(v) for k, v in raw}
        retry_ms = int(trailers["retry-after-ms"])
        assert 1 <= retry_ms <= 1000 / RATE + 1
        assert "retry after" in (e.value.details() or "")
        # Another key is not slowed by this one; a key with rate 0 is never limited.
        assert status(stub, keys["neighbour"]) == grpc.StatusCode.OK
        assert all(status(stub, keys["unlimited"]) == grpc.StatusCode.OK for _ in range(20))
        time.sleep(retry_ms / 1000 + 0.05)
        assert status(stub, keys["limited"]) == grpc.StatusCode.OK, "the hint was honest"
    record_fault(
        f"one key calling faster than its rate ({RATE:g}/s, burst {BURST:g})",
        "RESOURCE_EXHAUSTED with retry-after-ms in the trailers; other keys unaffected",
    )


def test_an_unknown_key_is_refused_before_it_counts(
    server: tuple[ServerProcess, dict[str, str]],
) -> None:
    srv, keys = server
    with grpc.insecure_channel(srv.target) as ch:
        stub = AdminServiceStub(ch)
        codes = {status(stub, "bkr_guess") for _ in range(20)}
        assert codes == {grpc.StatusCode.UNAUTHENTICATED}
        assert status(stub, keys["neighbour"]) == grpc.StatusCode.OK
