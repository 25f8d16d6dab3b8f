"""Start the real server as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    target: str
    feedback_log: Path
    log: Path
    started: float = field(default_factory=time.monotonic)

    def wait_health(self, want: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as ch:
            # The published stubs lack the RPC methods; Any keeps mypy honest elsewhere.
            stub: Any = health_pb2_grpc.HealthStub(ch)
            while True:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
                if status == want:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"health is {status}, wanted {want}")
                time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def own_connection(target: str) -> grpc.Channel:
    """A channel with a private subchannel pool, so it opens its own connection and the
    kernel may land it on any worker of a multi-process server."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


@contextmanager
def running_server(
    artifacts: Path,
    workdir: Path,
    workers: int = 1,
    admin_token: str = "",
    extra_args: tuple[str, ...] = (),
    prefix: tuple[str, ...] = (),
) -> Iterator[ServerProcess]:
    """The server's stderr goes to workdir/server.log, ratings to workdir/feedback/;
    ``prefix`` runs it inside a command (``setpriv ... --``, say)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOOKREC_ADMIN_TOKEN": admin_token}
    workdir.mkdir(parents=True, exist_ok=True)
    feedback_log = workdir / "feedback" / "ratings.jsonl"
    log = workdir / "server.log"
    stderr = log.open("w")
    proc = subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "server",
            "--port",
            "0",
            "--artifacts",
            str(artifacts),
            "--feedback-log",
            str(feedback_log),
            "--grace-seconds",
            "5",
            "--workers",
            str(workers),
            *extra_args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        assert m, f"server did not announce its address: {line!r} (exit {proc.poll()})"
        yield ServerProcess(proc, m.group(1), feedback_log, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        stderr.close()


@contextmanager
def ready_server(
    artifacts: Path, workdir: Path, extra_args: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    """A one-worker server on ``artifacts`` that answers health SERVING."""
    with running_server(artifacts, workdir, extra_args=extra_args) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        yield srv
