"""The Python clients' retries are gRPC's own (the channel's service config, gRFC A6),
against real servers on loopback: UNAVAILABLE then OK is retried; every other status
is not; the caller's deadline is the whole call's, every attempt included; and retry
throttling stops retries once most attempts fail. Attempts are counted where they
arrive: the server's access log (one line per call it answers) or the proxy in front
of it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.client import (
    NO_RETRY,
    AsyncBookrecClient,
    BookrecClient,
    DeadlineExceeded,
    InvalidArgument,
    RetryPolicy,
    Unavailable,
)
from tests.fault_table import record_fault
from tests.h2drop import dropping_replies
from tests.serverproc import ServerProcess, ready_server, running_server

SEARCH = "bookrec.v1.CatalogService/SearchBooks"
COLD_START = "bookrec.v1.RecommenderService/ColdStart"


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with ready_server(tiny_artifact.parent, tmp_path_factory.mktemp("retry")) as srv:
        yield srv


@pytest.fixture(scope="module")
def no_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server with no model: every catalogue call is UNAVAILABLE."""
    base = tmp_path_factory.mktemp("no-model")
    (base / "artifacts").mkdir()
    with running_server(base / "artifacts", base / "work") as srv:
        deadline = time.monotonic() + 30
        while arrived(srv, SEARCH) == 0:
            assert time.monotonic() < deadline, srv.log.read_text()[-2000:]
            with (
                BookrecClient(srv.target, api_key="", retry=NO_RETRY) as c,
                contextlib.suppress(Unavailable, DeadlineExceeded),
            ):
                c.search_books("x", timeout=2)
            time.sleep(0.1)
        yield srv


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKREC_API_KEY", raising=False)


def arrived(srv: ServerProcess, method: str) -> int:
    """Calls of ``method`` the server answered so far (its JSON access lines)."""
    n = 0
    for line in srv.log.read_text().splitlines():
        if line.startswith("{") and f'"{method}"' in line:
            doc = json.loads(line)
            n += doc.get("event") == "rpc" and doc.get("method") == method
    return n


def calls_between(srv: ServerProcess, method: str, before: int, timeout: float = 10.0) -> int:
    """Access lines of ``method`` since ``before``, once the log stops growing."""
    last, deadline = -1, time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = arrived(srv, method)
        if now == last:
            return now - before
        last = now
        time.sleep(0.3)
    return last - before


def test_unavailable_then_ok_is_retried(server: ServerProcess) -> None:
    """The first reply is lost (the connection cut before its headers): UNAVAILABLE;
    gRPC retries on a new connection and the call returns OK."""
    with (
        dropping_replies(server.target, drop=1) as proxy,
        BookrecClient(proxy.target, timeout=10, api_key="") as client,
    ):
        page = client.search_books("", page_size=3)
    assert len(page.books) == 3
    assert proxy.dropped == 1 and proxy.connections == 2, "one lost reply, one retry"
    with (
        dropping_replies(server.target, drop=1) as proxy,
        BookrecClient(proxy.target, timeout=10, api_key="", retry=NO_RETRY) as client,
        pytest.raises(Unavailable),
    ):
        client.search_books("", page_size=3)
    record_fault(
        "a client call whose reply is lost (connection cut): UNAVAILABLE",
        "retried by gRPC's retryPolicy (same request and metadata) inside the call's "
        "deadline; the caller gets the OK reply",
    )


async def test_the_async_client_retries_the_same_way(server: ServerProcess) -> None:
    with dropping_replies(server.target, drop=1) as proxy:
        async with AsyncBookrecClient(proxy.target, timeout=10, api_key="") as client:
            page = await client.search_books("", page_size=2)
        assert len(page.books) == 2 and proxy.dropped == 1 and proxy.connections == 2


def test_other_statuses_are_not_retried(server: ServerProcess) -> None:
    before = arrived(server, COLD_START)
    with BookrecClient(server.target, api_key="") as client, pytest.raises(InvalidArgument):
        client.cold_start(["no such subject at all"])
    assert calls_between(server, COLD_START, before) == 1


def test_the_deadline_is_the_whole_calls(server: ServerProcess) -> None:
    """Every reply is held 1.5 s and then lost, so each attempt ends UNAVAILABLE
    after 1.5 s. With a 2 s deadline the call ends at the deadline, on its second
    attempt: DEADLINE_EXCEEDED, never 3 attempts of 1.5 s each plus pauses (4.5 s and
    more, as when each attempt got its own deadline)."""
    hold, deadline, slack = 1.5, 2.0, 1.0
    with (
        dropping_replies(server.target, drop=100, hold=hold) as proxy,
        BookrecClient(proxy.target, timeout=deadline, api_key="") as client,
    ):
        began = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.search_books("", page_size=3)
        took = time.monotonic() - began
        assert proxy.dropped == 2, "the first attempt failed and the retry was cut short"
    assert took <= deadline + slack, f"a {deadline} s call took {took:.1f} s"
    record_fault(
        "every attempt of a call fails UNAVAILABLE slowly (reply held, then lost)",
        "the retries stay inside the caller's deadline: DEADLINE_EXCEEDED at the deadline",
    )


def test_throttling_stops_retries_after_many_failures(no_model: ServerProcess) -> None:
    """Ten calls to a server that answers every one UNAVAILABLE: without throttling
    each is tried 3 times (30 attempts); with the default bucket (10 tokens, one per
    failed attempt, retries only above 5) the first two calls use the retries and the
    rest go out once."""
    calls = 10
    unthrottled = RetryPolicy(max_tokens=1000)
    for policy, most in ((unthrottled, 3 * calls), (RetryPolicy(), 13)):
        before = arrived(no_model, SEARCH)
        with BookrecClient(no_model.target, api_key="", retry=policy) as client:
            for _ in range(calls):
                with pytest.raises(Unavailable):
                    client.search_books("x", timeout=10)
        attempts = calls_between(no_model, SEARCH, before)
        if policy is unthrottled:
            assert attempts == most, "every call tried 3 times"
        else:
            assert calls < attempts <= most, f"throttled: {attempts} attempts"
    record_fault(
        "a server that answers every call UNAVAILABLE (no model), called again and again",
        "retry throttling: after about five failed attempts the client stops retrying "
        "(13 attempts for 10 calls instead of 30)",
    )


def test_the_policy_is_a_service_config() -> None:
    config = RetryPolicy().service_config()
    retry = config["methodConfig"][0]["retryPolicy"]
    assert retry["maxAttempts"] == 3 and retry["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert config["retryThrottling"] == {"maxTokens": 10, "tokenRatio": 0.1}
    assert NO_RETRY.service_config() == {}
    assert ("grpc.enable_retries", 0) in NO_RETRY.channel_options()
    assert grpc.StatusCode.UNAVAILABLE.name in json.dumps(config)
