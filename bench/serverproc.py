"""Run the real server as a subprocess for a benchmark, and measure its memory.

The server is started exactly as a user would (``python -m server``), with
``--workers`` when this build has it (SO_REUSEPORT processes sharing the port),
and is ready when its health service says SERVING on fresh connections.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import ROOT
from bookrec.v1 import admin_pb2, admin_pb2_grpc

DEFAULT_WORKERS = 2


@cache
def _server_help() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout


def supports(flag: str) -> bool:
    """Whether ``python -m server`` takes ``flag`` (e.g. ``--workers``: multi-process serving)."""
    return re.search(rf"{re.escape(flag)}\b", _server_help()) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name (fields 3.. of proc(5)); None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields follow the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc (children of children included)."""
    parent_of: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is not None:
            parent_of[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent_of.items() if ppid in frontier]
        tree += frontier
    return tree


def status_kb(pid: int, field: str) -> int:
    """One ``FIELD:  N kB`` line of /proc/PID/status (VmRSS, VmHWM...); 0 once gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS over ``pids``; processes that are gone count 0."""
    return sum(status_kb(pid, "VmRSS") for pid in pids) * 1024


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    target: str
    workers: int | None  # None when the server has no --workers flag (one process)
    log: Path

    def tree(self) -> list[int]:
        return process_tree(self.proc.pid)

    def rss(self) -> int:
        return rss_bytes(self.tree())

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Seconds until health is SERVING on several fresh connections in a row and
        every worker has answered one: a worker listens only once its model is loaded,
        and connections opened before that would all land on the others."""
        start = time.monotonic()
        deadline = start + timeout
        in_a_row = 0
        need = 2 * (self.workers or 1)
        seen: set[int] = set()
        # pid 0: a server that cannot say which worker answered; health alone decides
        while in_a_row < need or (0 not in seen and len(seen) < (self.workers or 1)):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; log:\n{self.log_tail()}"
                )
            if "model load failed" in self.log_tail(20_000):
                raise RuntimeError(f"the server refused the artifact; log:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"server not SERVING on {self.workers or 1} worker(s) after {timeout} s "
                    f"(answered: {len(seen)}); log:\n{self.log_tail()}"
                )
            pid = _serving_worker(self.target)
            in_a_row = in_a_row + 1 if pid is not None else 0
            if pid is not None:
                seen.add(pid)
            else:
                time.sleep(0.2)
        return time.monotonic() - start

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        pids = self.tree()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in pids[1:]:  # workers that outlived their parent: ours, by id
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _serving_worker(target: str) -> int | None:
    """On a fresh connection: the pid of the worker that answered SERVING (0 from a
    server without AdminService), or None."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options=options) as ch:
        stub: Any = health_pb2_grpc.HealthStub(ch)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.RpcError:
            return None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return None
        try:
            status = admin_pb2_grpc.AdminServiceStub(ch).GetStatus(
                admin_pb2.GetStatusRequest(), timeout=2
            )
        except grpc.RpcError:
            return 0
        return int(status.worker_pid)


@contextmanager
def running_server(
    artifacts: Path,
    workdir: Path,
    workers: int = DEFAULT_WORKERS,
    timeout: float = 300.0,
    cache_size: int | None = None,
    extra_args: Sequence[str] = (),
    log_level: str = "INFO",
    root: Path = ROOT,
) -> Iterator[ServerProcess]:
    """A ready server on a free loopback port; its log and feedback go to ``workdir``.

    ``cache_size`` (the per-worker result cache) is passed when the server
    has the flag; None keeps the server's default. ``extra_args`` go on the
    command line as they are (flags of the current server only). ``root``: the
    source tree whose server runs (another checkout: the "before" of a comparison)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "server",
        "--artifacts",
        str(artifacts),
        "--port",
        str(port),
        "--feedback-log",
        str(workdir / "feedback" / "ratings.jsonl"),
        "--log-level",
        log_level,
        *extra_args,
    ]
    used_workers = workers if supports("--workers") else None
    if used_workers is not None:
        cmd += ["--workers", str(used_workers)]
    if cache_size is not None and supports("--cache-size"):
        cmd += ["--cache-size", str(cache_size)]
    log = workdir / "server.log"
    env = {**os.environ, "PYTHONPATH": str(root)}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, f"127.0.0.1:{port}", used_workers, log)
    try:
        server.wait_ready(timeout)
        yield server
    finally:
        server.stop()


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` (from /proc/PID/stat); a process that is gone counts 0."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / _TICK
