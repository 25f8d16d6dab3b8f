"""Several server processes on one port (SO_REUSEPORT), so a 2-core machine uses both cores.

The supervisor claims the port and the web port (server/ports.py: refused while
any other process holds them, so only its own workers share them; ``--port 0``
still yields one port all workers share), starts ``--workers``
copies of ``python -m server --workers 1`` on it, announces the address once
every worker listens, and passes SIGTERM/SIGINT on so each worker drains its
own calls (server/app.py); a worker still running ``grace_seconds`` plus
``STOP_MARGIN_SECONDS`` after that is killed, so the supervisor exits in time.
Each worker maps the same artifact files (the page cache holds one copy) and
runs its own watcher. The kernel balances whole connections, so
clients should open several channels.

A worker that dies is restarted, forever, after a delay that doubles with each
death in a row (``Backoff``): a worker that crashes at once does not spin the
machine, and one that crashed after a long healthy run comes back at once. The
other workers are never stopped for it (stopping them turned two crashes into
an outage). Every exit is logged with its exit code or signal. Only a worker
that fails before the server first announces itself (bad flags, no port) stops
the start: that is a configuration error, not a crash.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bookrec.log import kv
from server import metrics
from server.config import ServerConfig, port_taken
from server.ports import Claim, claim_all
from server.web.gateway import web_port_taken

log = logging.getLogger("server.workers")

# How often the supervisor looks at its workers.
TICK_SECONDS = 0.1
# After SIGTERM, how long past the grace period a worker may take to exit (closing
# files, logging) before the supervisor kills it.
STOP_MARGIN_SECONDS = 2.0


@dataclass
class Backoff:
    """Delay before restarting a worker: ``first`` doubling per death in a row up to
    ``cap``; a worker that stayed up ``stable`` seconds starts the count again."""

    first: float = 0.5
    cap: float = 30.0
    stable: float = 60.0
    deaths: int = 0  # in a row, each within ``stable`` of its start

    def after_exit(self, uptime: float) -> float:
        """Seconds to wait before the next start, given how long the last one ran."""
        if uptime >= self.stable:
            self.deaths = 0
        delay = min(self.cap, self.first * 2.0**self.deaths)
        self.deaths += 1
        return delay


def exit_reason(code: int) -> dict[str, Any]:
    """How a worker ended, for the log: its exit code, or the signal that killed it."""
    if code < 0:
        try:
            return {"signal": signal.Signals(-code).name}
        except ValueError:
            return {"signal": -code}
    return {"code": code}


def worker_count(cfg: ServerConfig) -> int:
    return cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)


def _worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """The supervisor's own flags, with one worker and the held port."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--workers", "--port"):
            skip = True
            continue
        if arg.startswith(("--workers=", "--port=")):
            continue
        out.append(arg)
    return [sys.executable, "-m", "server", *out, "--workers", "1", "--port", str(port)]


def without_pin(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--pin`` flag and value."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--pin":
            skip = True
        elif not arg.startswith("--pin="):
            out.append(arg)
    return out


SUPERVISOR_ENV = "BOOKREC_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def follow_supervisor() -> None:
    """In a worker: SIGTERM (a drain) when the supervisor dies, even by kill -9.

    An orphaned worker would go on answering on the shared port (SO_REUSEPORT)
    with nobody to stop it or to tell it of pins; Linux only, a no-op elsewhere."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(supervisor):  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def supervised_worker() -> bool:
    """Whether this process is a worker its supervisor started (it shares the ports the
    supervisor claimed) rather than a server of its own (server/ports.py)."""
    return os.environ.get(SUPERVISOR_ENV) == str(os.getppid())


class _Worker:
    """One worker process. Its stdout is read by a thread, so a chatty worker never
    blocks on a full pipe and the supervisor never blocks on a worker; the first line
    ("listening on ...") is kept, and the relay worker's later lines are passed on
    once ``relay`` is set (after the supervisor's own "listening on" line, which
    callers read first)."""

    def __init__(
        self, argv: list[str], relay: threading.Event | None, env: dict[str, str] | None = None
    ) -> None:
        self.started = time.monotonic()
        env = {**(os.environ if env is None else env), SUPERVISOR_ENV: str(os.getpid())}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        self.first_line = ""
        self.announced = threading.Event()  # the first line came, or stdout closed
        threading.Thread(target=self._read, args=(relay,), daemon=True).start()

    def _read(self, relay: threading.Event | None) -> None:
        assert self.proc.stdout is not None
        try:
            self.first_line = self.proc.stdout.readline()
        finally:
            self.announced.set()
        for line in self.proc.stdout:
            if relay is not None:
                relay.wait()
                print(line, end="", flush=True)

    @property
    def listening(self) -> bool:
        return "listening on" in self.first_line


@dataclass
class _Slot:
    """A place for one worker: the process now in it (None while it waits to restart)."""

    index: int
    worker: _Worker | None
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float = 0.0


class _Supervisor:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.env: dict[str, str] | None = None  # None: the supervisor's own
        self.stopping = threading.Event()
        self.relay = threading.Event()  # set once the supervisor announced the address
        self.slots: list[_Slot] = []  # the signal handler may run before they all start

    def start(self, n: int) -> None:
        for i in range(n):
            self.slots.append(_Slot(i, None))
            self._spawn(self.slots[i])

    def _spawn(self, slot: _Slot) -> None:
        slot.worker = _Worker(self.argv, self.relay if slot.index == 0 else None, self.env)
        if self.stopping.is_set():  # a signal came while it started: it was not told
            slot.worker.proc.send_signal(signal.SIGTERM)

    def workers(self) -> list[_Worker]:
        return [s.worker for s in self.slots if s.worker is not None]

    def signal_all(self, signum: int) -> None:
        self.stopping.set()
        for w in self.workers():
            if w.proc.poll() is None:
                w.proc.send_signal(signum)

    def started(self) -> bool:
        """Wait until every worker listens (True) or one failed to (False)."""
        for w in self.workers():
            w.announced.wait()
        return all(w.listening for w in self.workers())

    def watch(self) -> None:
        """Restart workers that die, with backoff, until stopped."""
        while not self.stopping.is_set():
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            for slot in self.slots:
                if self.stopping.is_set():
                    break
                if slot.worker is None:
                    if now >= slot.restart_at:
                        self._restart(slot)
                    continue
                code = slot.worker.proc.poll()
                if code is not None:
                    self._exited(slot, code, now)

    def _exited(self, slot: _Slot, code: int, now: float) -> None:
        assert slot.worker is not None
        uptime = now - slot.worker.started
        delay = slot.backoff.after_exit(uptime)
        log.error(
            "worker exited",
            extra=kv(
                index=slot.index,
                pid=slot.worker.proc.pid,
                **exit_reason(code),
                uptime=round(uptime, 3),
                restart_in=delay,
                deaths_in_a_row=slot.backoff.deaths,
            ),
        )
        metrics.worker_exited(slot.worker.proc.pid)
        slot.worker, slot.restart_at = None, now + delay

    def _restart(self, slot: _Slot) -> None:
        try:
            self._spawn(slot)
        except OSError as e:  # no fork, no memory: try again later
            delay = slot.backoff.after_exit(0.0)
            slot.restart_at = time.monotonic() + delay
            log.error(
                "worker restart failed",
                extra=kv(index=slot.index, error=str(e), restart_in=delay),
            )
            return
        assert slot.worker is not None
        log.info("worker started", extra=kv(index=slot.index, pid=slot.worker.proc.pid))

    def wait(self, timeout: float | None = None) -> list[int]:
        """Exit codes of all workers. Past ``timeout`` s, a worker still running (stuck
        in its drain) is killed: the supervisor exits within its grace period plus a
        margin, as an orchestrator expects before it sends SIGKILL itself."""
        deadline = None if timeout is None else time.monotonic() + timeout
        codes = []
        for w in self.workers():
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                codes.append(w.proc.wait(left))
            except subprocess.TimeoutExpired:
                log.error(
                    "worker still draining past the grace period; killing it",
                    extra=kv(pid=w.proc.pid, grace=timeout),
                )
                w.proc.kill()
                codes.append(w.proc.wait())
        return codes


def supervise(cfg: ServerConfig, argv: Sequence[str]) -> int:
    ports = [(cfg.port, port_taken)]
    if cfg.web_port:
        ports.append((cfg.web_port, web_port_taken))
    claims = claim_all(cfg.host, ports)
    try:
        return _supervise(cfg, argv, claims)
    finally:
        for c in claims:  # the locks: held until every worker has stopped
            c.close()


def _supervise(cfg: ServerConfig, argv: Sequence[str], claims: list[Claim]) -> int:
    n = worker_count(cfg)
    port = claims[0].port
    box: list[_Supervisor] = []

    def on_signal(signum: int, _frame: object) -> None:
        if box:
            box[0].signal_all(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sup = _Supervisor(_worker_argv(argv, port))
    box.append(sup)
    sup.start(n)
    if not sup.started():
        log.error("a worker failed to start; see its log above")
        sup.signal_all(signal.SIGTERM)
        sup.wait()
        return 1
    for c in claims:
        c.release_probe()  # the workers listen on the ports now
    # The startup pin is in the control file now; a restarted worker that applied it
    # again would undo an operator's later Unpin or Rollback.
    sup.argv, sup.env = without_pin(sup.argv), {**os.environ, "BOOKREC_PIN": ""}
    print(f"bookrec listening on {cfg.host}:{port} ({n} workers)", flush=True)
    sup.relay.set()
    pids = [w.proc.pid for w in sup.workers()]
    log.info("workers started", extra=kv(workers=n, port=port, pids=pids))
    sup.watch()
    codes = sup.wait(cfg.grace_seconds + STOP_MARGIN_SECONDS)
    log.info("workers stopped", extra=kv(codes=codes))
    return 0 if all(c == 0 for c in codes) else 1
