"""Several server processes on one port (SO_REUSEPORT), so a 2-core machine uses both cores.

The supervisor holds the port (a bound, non-listening SO_REUSEPORT socket, so
``--port 0`` still yields one port all workers share), starts ``--workers``
copies of ``python -m server --workers 1`` on it, announces the address once
every worker listens, restarts a worker that dies, and passes SIGTERM/SIGINT
on so each worker drains its own calls. Each worker maps the same artifact
files (the page cache holds one copy) and runs its own watcher. The kernel
balances whole connections, so clients should open several channels.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from bookrec.log import kv
from server.config import ServerConfig

log = logging.getLogger("server.workers")

# A worker that dies this soon after starting is broken, not unlucky: stop.
MIN_UPTIME_SECONDS = 10.0


def worker_count(cfg: ServerConfig) -> int:
    return cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)


def _hold_port(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


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


class _Worker:
    def __init__(self, argv: list[str], relay: bool) -> None:
        self.relay = relay
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()

    def drain(self) -> None:
        """Keep reading so a chatty worker never blocks on a full pipe; worker 0 speaks."""
        threading.Thread(target=self._drain, args=(self.relay,), daemon=True).start()

    def _drain(self, relay: bool) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if relay:
                print(line, end="", flush=True)


def supervise(cfg: ServerConfig, argv: Sequence[str]) -> int:
    n = worker_count(cfg)
    held = _hold_port(cfg.host, cfg.port)
    port = held.getsockname()[1]
    worker_argv = _worker_argv(argv, port)
    stopping = threading.Event()
    workers: list[_Worker] = []  # the signal handler may run before they all start

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()
        for w in workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(n):
        workers.append(_Worker(worker_argv, relay=i == 0))
    if not all("listening on" in w.first_line for w in workers):
        log.error("a worker failed to start; see its log above")
        on_signal(signal.SIGTERM, None)
        return 1
    held.close()  # the workers hold the port now
    print(f"bookrec listening on {cfg.host}:{port} ({n} workers)", flush=True)
    for w in workers:
        w.drain()
    log.info("workers started", extra=kv(workers=n, port=port, pids=[w.proc.pid for w in workers]))
    while not stopping.is_set():
        time.sleep(0.5)
        for i, w in enumerate(workers):
            code = w.proc.poll()
            if code is None or stopping.is_set():
                continue
            uptime = time.monotonic() - w.started
            log.error("worker exited", extra=kv(index=i, pid=w.proc.pid, code=code, uptime=uptime))
            if uptime < MIN_UPTIME_SECONDS:
                on_signal(signal.SIGTERM, None)
                break
            workers[i] = _Worker(worker_argv, relay=i == 0)
            workers[i].drain()
    codes = [w.proc.wait() for w in workers]
    log.info("workers stopped", extra=kv(codes=codes))
    return 0 if all(c == 0 for c in codes) else 1
