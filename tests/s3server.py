"""A real S3 API on loopback: moto's server mode as its own process.

Tests talk to it with the real boto3 client over HTTP, exactly as the trainer and
the server talk to AWS or MinIO; nothing in the client is mocked. Credentials are
any non-empty pair (moto accepts every key), set in the standard AWS variables so
subprocesses (trainer, server) pick them up as they would in production.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bookrec.objectstore import make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# This project's share of loopback ports for S3 test servers; the kernel picks
# within it the first that is free.
PORTS = range(52300, 52400)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bookrec-test",
    "AWS_SECRET_ACCESS_KEY": "bookrec-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    proc: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def client(self) -> S3Client:
        return make_client(self.endpoint)

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (fresh per test: moto keeps state per process)."""
        self.client().create_bucket(Bucket=name)
        return name


def _free_port(host: str) -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {PORTS.start}-{PORTS.stop - 1}")


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on {port}: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running_s3(
    workdir: Path, host: str = "127.0.0.1", command_prefix: tuple[str, ...] = ()
) -> Iterator[S3Server]:
    """moto's S3 API server on ``host``, the AWS variables set for it; stopped after.
    ``command_prefix`` runs it inside something (``ip netns exec NS``, for a fleet test)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port(host) if not command_prefix else PORTS.start
    log = workdir / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command_prefix, sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    try:
        if not command_prefix:  # inside a namespace, the caller knows how to reach it
            _wait_listening(host, port, proc, log)
        yield S3Server(proc, f"http://{host}:{port}", log)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
