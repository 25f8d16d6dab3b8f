"""Malformed requests to a real server (issue 20, items 5 and 13): bytes that are not
the method's protobuf message (over gRPC and through the web gateway) answer
INVALID_ARGUMENT and log one line; an over-long header and a client that leaves
mid-body on the web port log one warning line, no traceback, and never echo the
header's value (an API key) in the log or the reply."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from server.web import grpcweb
from tests.fault_table import record_fault
from tests.keyfile import make_keys
from tests.serverproc import ServerProcess, running_server

GARBAGE = b"\xff\xff\xff\xff"  # wire type 7: no protobuf message parses from it
SEARCH = "/bookrec.v1.CatalogService/SearchBooks"
RATE = "/bookrec.v1.FeedbackService/RateBook"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, int, str]]:
    """A keyed one-worker server with its web gateway: (server, web port, read key)."""
    work = tmp_path_factory.mktemp("malformed")
    key = make_keys(work / "keys.jsonl", {"reader": {"scopes": ["read"]}})["reader"]
    web = free_port()
    args = ("--keys-file", str(work / "keys.jsonl"), "--web-port", str(web))
    with ExitStack() as stack:
        srv = stack.enter_context(running_server(tiny_artifact.parent, work, extra_args=args))
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        yield srv, web, key


def log_lines(srv: ServerProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in srv.log.read_text().splitlines() if line.startswith("{")]


def wait_for_line(
    srv: ServerProcess, match: Callable[[dict[str, object]], bool]
) -> dict[str, object]:
    """The first log line ``match`` accepts, once the server has written it."""
    deadline = time.monotonic() + 30
    while True:
        found = [line for line in log_lines(srv) if match(line)]
        if found or time.monotonic() > deadline:
            assert found, srv.log.read_text()[-3000:]
            return found[0]
        time.sleep(0.05)


def assert_no_traceback(srv: ServerProcess) -> None:
    text = srv.log.read_text()
    assert "Traceback" not in text and "DecodeError" not in text, text[-3000:]
    assert all(line.startswith("{") for line in text.splitlines()), text[-3000:]


def lines_of(srv: ServerProcess, request_id: str) -> list[dict[str, object]]:
    return [line for line in log_lines(srv) if line.get("request_id") == request_id]


@pytest.mark.parametrize("method", [SEARCH, RATE])
@pytest.mark.parametrize("with_key", [True, False])
def test_undecodable_bytes_over_grpc_are_invalid_argument(
    served: tuple[ServerProcess, int, str], method: str, with_key: bool
) -> None:
    srv, _, key = served
    metadata = (("authorization", f"Bearer {key}"),) if with_key else ()
    with grpc.insecure_channel(srv.target) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as caught:
            call(GARBAGE, metadata=metadata, timeout=10)
    error: grpc.Call = caught.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "not a valid" in (error.details() or "") and "Unexpected" not in (error.details() or "")
    rid = str(dict(error.trailing_metadata() or ())["x-request-id"])
    line = wait_for_line(srv, lambda entry: entry.get("request_id") == rid)
    assert line["code"] == "INVALID_ARGUMENT" and len(lines_of(srv, rid)) == 1
    assert_no_traceback(srv)
    record_fault(
        f"bytes that are not a protobuf message sent to {method.rsplit('/', 1)[1]} over gRPC "
        f"({'with' if with_key else 'without'} a key)",
        "INVALID_ARGUMENT naming the method; one access log line, no traceback",
    )


def test_undecodable_bytes_through_the_web_gateway_are_invalid_argument(
    served: tuple[ServerProcess, int, str],
) -> None:
    srv, web, key = served
    conn = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
    headers = {"content-type": grpcweb.CONTENT_TYPES[1], "authorization": f"Bearer {key}"}
    try:
        conn.request("POST", SEARCH, body=grpcweb.frame(grpcweb.DATA, GARBAGE), headers=headers)
        reply = conn.getresponse()
        status, body = reply.status, reply.read()
    finally:
        conn.close()
    trailer = body[grpcweb.HEADER.size :].decode()
    fields = dict(line.split(": ", 1) for line in trailer.split("\r\n") if line)
    assert status == 200 and fields["grpc-status"] == "3", trailer  # INVALID_ARGUMENT
    assert "Unexpected" not in fields["grpc-message"]
    line = wait_for_line(srv, lambda entry: entry.get("request_id") == fields["x-request-id"])
    assert line["code"] == "INVALID_ARGUMENT"
    assert_no_traceback(srv)
    record_fault(
        "bytes that are not a protobuf message in a gRPC-Web call (web gateway)",
        "grpc-status 3 (INVALID_ARGUMENT) in the trailer; one access log line, no traceback",
    )


def test_an_over_long_authorization_header_is_neither_echoed_nor_a_traceback(
    served: tuple[ServerProcess, int, str],
) -> None:
    srv, web, _ = served
    secret = "bkr_" + secrets.token_hex(8000)  # 16 KB: past aiohttp's 8190-byte field limit
    conn = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
    headers = {"content-type": grpcweb.CONTENT_TYPES[1], "authorization": f"Bearer {secret}"}
    try:
        conn.request("POST", SEARCH, body=grpcweb.frame(grpcweb.DATA, b""), headers=headers)
        reply = conn.getresponse()
        status, body = reply.status, reply.read().decode()
    finally:
        conn.close()
    assert status == 400 and "longer than this server accepts" in body, body
    line = wait_for_line(srv, lambda entry: entry.get("error") == "LineTooLong")
    assert line["level"] == "warning" and line["event"] == "bad http request refused"
    log = srv.log.read_text()
    for text in (body, log):
        assert secret[:12] not in text and "Bearer" not in text
    assert_no_traceback(srv)
    record_fault(
        "a 16 KB authorization header on the web port",
        "400 with a fixed text; one warning line naming the error class; the key is "
        "echoed neither in the reply nor in the log; no traceback",
    )


def test_a_web_client_that_leaves_mid_body_is_one_warning_line(
    served: tuple[ServerProcess, int, str],
) -> None:
    srv, web, key = served
    head = (
        f"POST {SEARCH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"content-type: {grpcweb.CONTENT_TYPES[1]}\r\nauthorization: Bearer {key}\r\n"
        "content-length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", web), timeout=10) as client:
        client.sendall(head.encode() + b"\x00" * 100)  # then close: 99,900 bytes short
    line = wait_for_line(srv, lambda entry: entry.get("event") == "web client left mid-request")
    assert line["level"] == "warning" and line["path"] == SEARCH
    assert key not in srv.log.read_text()
    assert_no_traceback(srv)
    record_fault(
        "a web client that closes its connection after 100 of 100,000 body bytes",
        "one warning line (web client left mid-request), no traceback; no call made",
    )
