"""`python -m server`: serve the newest artifact over gRPC (one process per core by default)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

# One thread per process for BLAS/OpenMP: concurrency comes from requests and
# processes, not from threads fighting over two cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# gRPC core writes its own lines to stderr, around the JSON log: off unless asked for
# (GRPC_VERBOSITY=ERROR shows them); its Python loggers go through the JSON handler.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
os.environ.setdefault("GRPC_TRACE", "")

from bookrec import log as logsetup  # noqa: E402
from server.app import serve  # noqa: E402
from server.auth import key_store  # noqa: E402
from server.config import ServerConfig, parse_args  # noqa: E402
from server.metrics import supervised  # noqa: E402
from server.tls import server_credentials  # noqa: E402
from server.workers import follow_supervisor, supervise, worker_count  # noqa: E402


async def _serve_until_signalled(cfg: ServerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    follow_supervisor()
    await serve(cfg, stop)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["keys"]:
        from server.keys_cli import main as keys_main

        return keys_main(args[1:])
    cfg = parse_args(args)
    logsetup.configure(cfg.log_level)
    # Unreadable keys or TLS files stop the supervisor here, not each worker in a loop.
    key_store(cfg)
    server_credentials(cfg)
    if worker_count(cfg) > 1:
        with supervised(cfg.host, cfg.metrics_port):  # set up before any worker starts
            return supervise(cfg, args)
    # A bundle load holds the GIL in stretches (building id maps); switching more often
    # keeps those stretches out of request latency.
    sys.setswitchinterval(0.001)
    asyncio.run(_serve_until_signalled(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
