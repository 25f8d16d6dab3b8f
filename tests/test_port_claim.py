"""One server per port: a second `python -m server` on a port another process holds
(a running bookrec server's gRPC or web port, or any other socket, SO_REUSEPORT or
not) exits with one line and never serves (issue 20, item 1). Real servers on
loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bookrec.v1 import catalog_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from tests.fault_table import record_fault
from tests.keyfile import make_keys
from tests.serverproc import ROOT, ServerProcess, own_connection, running_server

SERVING = health_pb2.HealthCheckResponse.SERVING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Holder:
    server: ServerProcess
    grpc_port: int
    web_port: int
    metrics_port: int


@pytest.fixture(scope="module")
def holder(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Holder]:
    """A two-worker server with API keys, as `make run` starts it, on its gRPC, web
    and metrics ports."""
    work = tmp_path_factory.mktemp("holder")
    make_keys(work / "keys.jsonl", {"reader": {"scopes": ["read"]}})
    web, metrics = free_port(), free_port()
    args = (
        "--keys-file",
        str(work / "keys.jsonl"),
        "--web-port",
        str(web),
        "--metrics-port",
        str(metrics),
    )
    with running_server(tiny_artifact.parent, work, workers=2, extra_args=args) as srv:
        srv.wait_health(SERVING)
        yield Holder(srv, int(srv.target.rsplit(":", 1)[1]), web, metrics)


@dataclass
class Attempt:
    code: int
    first_line: str
    stderr: str


def start(args: list[str], workdir: Path) -> subprocess.Popen[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--feedback-log",
            str(workdir / "fb.jsonl"),
            "--grace-seconds",
            "1",
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcomes(procs: list[subprocess.Popen[str]]) -> list[Attempt]:
    """Each one's first stdout line (a server that serves announces itself there; one
    that exits closes stdout), read from all before any is stopped; then their exits."""
    firsts = []
    for proc in procs:
        assert proc.stdout is not None
        firsts.append(proc.stdout.readline())
    attempts = []
    for proc, first in zip(procs, firsts, strict=True):
        assert proc.stderr is not None
        if proc.poll() is None and "listening on" in first:
            proc.terminate()
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        attempts.append(Attempt(code, first, proc.stderr.read()))
        proc.stdout.close()  # type: ignore[union-attr]  # read above
        proc.stderr.close()
    return attempts


def kill_if_running(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def outcome(proc: subprocess.Popen[str]) -> Attempt:
    return outcomes([proc])[0]


def assert_refused(attempt: Attempt, port: int, web: bool = False) -> None:
    assert "listening on" not in attempt.first_line, attempt
    assert attempt.code != 0
    lines = [line for line in attempt.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, attempt.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert ("--web-port N" if web else "--port N") in lines[0]
    assert "Traceback" not in attempt.stderr


def key_less_calls_all_refused(target: str, n: int = 40) -> None:
    """n fresh connections without a key: every one reaches the keyed server."""
    codes = []
    for _ in range(n):
        with own_connection(target) as channel:
            stub = CatalogServiceStub(channel)
            try:
                stub.SearchBooks(catalog_pb2.SearchBooksRequest(page_size=1), timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
    assert set(codes) == {grpc.StatusCode.UNAUTHENTICATED}, codes


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_on_a_bookrec_servers_port_refuses(
    holder: Holder, tiny_artifact: Path, tmp_path: Path, workers: str
) -> None:
    args = ["--port", str(holder.grpc_port), "--workers", workers]
    attempt = outcome(start([*args, "--artifacts", str(tiny_artifact.parent)], tmp_path))
    assert_refused(attempt, holder.grpc_port)
    key_less_calls_all_refused(holder.server.target)
    record_fault(
        f"a second server (--workers {workers}, no keys file) on a running server's gRPC port",
        "refused to start: one line naming the port and the fix, exit 1; every key-less "
        "connection still reaches the keyed server (UNAUTHENTICATED)",
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_on_a_bookrec_servers_web_port_refuses(
    holder: Holder, tiny_artifact: Path, tmp_path: Path, workers: str
) -> None:
    args = ["--port", "0", "--web-port", str(holder.web_port), "--workers", workers]
    attempt = outcome(start([*args, "--artifacts", str(tiny_artifact.parent)], tmp_path))
    assert_refused(attempt, holder.web_port, web=True)
    record_fault(
        f"a second server (--workers {workers}) on a running server's --web-port",
        "refused to start: one line naming the web port and the fix, exit 1",
    )


def test_a_second_server_on_a_bookrec_servers_metrics_port_refuses(
    holder: Holder, tiny_artifact: Path, tmp_path: Path
) -> None:
    args = ["--port", "0", "--metrics-port", str(holder.metrics_port), "--workers", "2"]
    attempt = outcome(start([*args, "--artifacts", str(tiny_artifact.parent)], tmp_path))
    assert "listening on" not in attempt.first_line and attempt.code != 0
    lines = [line for line in attempt.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and f"--metrics-port {holder.metrics_port}" in lines[0]
    record_fault(
        "a second server on a running server's --metrics-port",
        "refused to start: one line naming the metrics port, exit 1",
    )


def reuseport_listener() -> socket.socket:
    """A socket of another program that asks for SO_REUSEPORT itself."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("which", ["grpc", "web"])
def test_a_port_held_by_another_programs_reuseport_socket_is_refused(
    tmp_path: Path, workers: str, which: str
) -> None:
    with reuseport_listener() as held:
        port = held.getsockname()[1]
        flag = (
            ["--port", str(port)] if which == "grpc" else ["--port", "0", "--web-port", str(port)]
        )
        attempt = outcome(
            start([*flag, "--workers", workers, "--artifacts", str(tmp_path)], tmp_path)
        )
    assert_refused(attempt, port, web=which == "web")
    record_fault(
        f"{which} port held by another program's SO_REUSEPORT socket (--workers {workers})",
        "refused to start: one line naming the port and the fix, exit 1; never shares it",
    )


def test_two_servers_started_at_once_on_one_port_one_serves(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    port = str(free_port())
    args = ["--port", port, "--workers", "2", "--artifacts", str(tiny_artifact.parent)]
    with ExitStack() as stack:
        procs = [start(args, tmp_path / str(i)) for i in range(2)]
        for proc in procs:
            stack.callback(kill_if_running, proc)
        attempts = outcomes(procs)
    served = [a for a in attempts if "listening on" in a.first_line]
    refused = [a for a in attempts if "listening on" not in a.first_line]
    assert len(served) == 1 and len(refused) == 1, attempts
    assert_refused(refused[0], int(port))
    record_fault(
        "two servers started at the same moment on one port",
        "one serves; the other refuses to start with one line, exit 1",
    )
