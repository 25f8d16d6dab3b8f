"""The supervisor restarts crashed workers with backoff, forever, and never stops the
healthy ones (issue 11: two deaths within 10 s used to stop the whole server)."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bookrec.v1 import admin_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from server.workers import Backoff, exit_reason, without_pin
from tests.broken import log_lines, wait_for_log
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, own_connection, running_server


def test_backoff_doubles_to_its_cap_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(first=0.5, cap=30.0, stable=60.0)
    delays = [backoff.after_exit(uptime=1.0) for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.after_exit(uptime=61.0) == 0.5, "a worker that stayed up resets it"
    assert backoff.after_exit(uptime=0.1) == 1.0


def test_exit_reasons_name_the_signal_or_the_code() -> None:
    assert exit_reason(-signal.SIGKILL) == {"signal": "SIGKILL"}
    assert exit_reason(3) == {"code": 3}
    assert exit_reason(0) == {"code": 0}


class Prober(threading.Thread):
    """GetStatus on a fresh connection, over and over: which pid answered, and when."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.stop = threading.Event()
        self.answers: list[tuple[float, int]] = []
        self.errors = 0

    def run(self) -> None:
        while not self.stop.is_set():
            with own_connection(self.target) as ch:
                try:
                    reply = AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest(), timeout=2)
                except grpc.RpcError:  # a connection queued on a killed worker's socket
                    self.errors += 1
                    continue
            self.answers.append((time.monotonic(), reply.worker_pid))
            time.sleep(0.02)

    def pids_since(self, since: float) -> set[int]:
        return {pid for t, pid in list(self.answers) if t >= since}


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def server(artifact_root: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    args = ("--no-compile-reranker",)
    with running_server(artifact_root, tmp_path / "work", workers=2, extra_args=args) as srv:
        yield srv


@pytest.mark.timeout(180)
def test_a_worker_killed_twice_in_a_row_is_restarted_and_the_other_serves_on(
    server: ServerProcess,
) -> None:
    prober = Prober(server.target)
    prober.start()
    try:
        start = time.monotonic()
        wait_until(lambda: len(prober.pids_since(start)) == 2)
        first = prober.pids_since(start)
        victim = min(first)
        (healthy,) = first - {victim}
        index = log_lines(server.log, "workers started")[0]["pids"].index(victim)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        replacement = wait_for_log(server.log, "worker started", index=index)["pid"]
        time.sleep(max(0.0, killed + 2.5 - time.monotonic()))  # the 2.6 s
        os.kill(replacement, signal.SIGKILL)
        second = time.monotonic()
        wait_for_log(server.log, "worker exited", pid=replacement)
        wait_until(lambda: len(prober.pids_since(second) - {healthy}) == 1)
        (newest,) = prober.pids_since(second) - {healthy}
        assert newest not in (victim, replacement)
        assert healthy in prober.pids_since(second), "the healthy worker answered throughout"
        times = [t for t, _ in prober.answers if t >= start]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps, default=0.0) < 5.0, "no stretch without an answer"
        assert server.proc.poll() is None
    finally:
        prober.stop.set()
        prober.join(10)
    exits = {x["pid"]: x for x in log_lines(server.log, "worker exited")}
    assert exits[victim]["signal"] == "SIGKILL" and exits[replacement]["signal"] == "SIGKILL"
    assert exits[victim]["restart_in"] == 0.5
    assert exits[replacement]["restart_in"] == 1.0, "a death in a row waits twice as long"
    assert server.stop() == 0
    record_fault(
        "kill -9 of a worker, then of its replacement 2.5 s later (2 workers)",
        "each restarted (after 0.5 s, then 1 s); the other worker answered throughout; "
        "'worker exited' logged with signal SIGKILL; clean exit on SIGTERM after",
        "calls in flight on the killed worker's connections (UNAVAILABLE, retried); "
        "no call on the other worker",
    )


def test_restarted_workers_do_not_apply_the_startup_pin_again() -> None:
    argv = ["python", "-m", "server", "--pin", "v1", "--workers", "1", "--pin=v2", "--port", "0"]
    assert without_pin(argv) == ["python", "-m", "server", "--workers", "1", "--port", "0"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) no longer serves.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.timeout(120)
def test_workers_drain_and_exit_when_the_supervisor_is_killed(server: ServerProcess) -> None:
    pids = log_lines(server.log, "workers started")[0]["pids"]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    wait_until(lambda: not any(_alive(p) for p in pids))
    stopping = log_lines(server.log, "stopping: draining in-flight calls")
    assert len(stopping) == 2, "each orphaned worker drained on SIGTERM, not killed outright"
    record_fault(
        "kill -9 of the supervisor (2 workers)",
        "each worker gets SIGTERM from the kernel (PR_SET_PDEATHSIG), drains and exits; "
        "no orphan keeps answering on the shared port",
        "calls after the drain began (UNAVAILABLE)",
    )
