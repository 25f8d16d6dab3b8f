"""Server configuration: one typed place, defaults < environment (BOOKREC_*) < flags."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "BOOKREC_"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    artifacts_dir: Path = Path("artifacts")
    # Ratings sent through RateBook; the trainer's next run reads them.
    feedback_log: Path = Path("data/feedback/ratings.jsonl")
    # Seconds in-flight calls get to finish after SIGTERM.
    grace_seconds: float = 10.0
    log_level: str = "INFO"
    # Worker processes sharing the port (SO_REUSEPORT); 0 means one per core.
    workers: int = 0
    # Seconds between artifact-root polls, the fallback when file events are missed.
    poll_seconds: float = 10.0
    # Bearer token for AdminService's pin/unpin/rollback; empty turns them off.
    admin_token: str = ""
    # Calls in progress per worker beyond which new ones get RESOURCE_EXHAUSTED (load
    # shedding: a fast refusal beats a timeout); 0 = no limit.
    max_concurrent_rpcs: int = 512
    # Finished Recommend, Similar and ColdStart lists kept per worker (keyed by model
    # version and request); 0 disables.
    cache_size: int = 10_000
    # Seconds after which a client connection is asked to reconnect (GOAWAY; calls in
    # flight finish): the kernel places whole connections on workers, so this spreads
    # long-lived clients again after a worker restarts. 0 = never.
    max_connection_age_seconds: float = 300.0
    # Compile the reranker's trees to native code (gcc; ~4x faster than LightGBM's
    # predict, checked equal at load; LightGBM answers when it cannot be done).
    compile_reranker: bool = True
    # Pin at startup: written to the control file every worker reads.
    pin: str = ""

    @staticmethod
    def from_env(environ: dict[str, str] | None = None) -> ServerConfig:
        env = os.environ if environ is None else environ
        base = ServerConfig()
        updates: dict[str, Any] = {}
        for f in fields(ServerConfig):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kind = type(getattr(base, f.name))
            try:
                updates[f.name] = _parse(kind, raw)
            except ValueError as e:
                raise SystemExit(
                    f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected {kind.__name__}"
                ) from e
        return replace(base, **updates)


def _parse(kind: type, raw: str) -> Any:
    if kind is bool:
        if raw.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            raise ValueError(raw)
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return Path(raw) if kind is Path else kind(raw)


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    base = ServerConfig.from_env()
    p = argparse.ArgumentParser(prog="server", description="bookrec gRPC server")
    p.add_argument("--host", help=f"listen address (default {base.host})")
    p.add_argument("--port", type=int, help=f"listen port, 0 = any free (default {base.port})")
    p.add_argument("--artifacts", dest="artifacts_dir", type=Path, help="artifact root")
    p.add_argument("--feedback-log", dest="feedback_log", type=Path)
    p.add_argument("--grace-seconds", dest="grace_seconds", type=float)
    p.add_argument("--log-level", dest="log_level")
    p.add_argument("--cache-size", dest="cache_size", type=int)
    p.add_argument("--max-concurrent-rpcs", dest="max_concurrent_rpcs", type=int)
    p.add_argument("--workers", type=int, help="processes on the port, 0 = one per core")
    p.add_argument("--poll-seconds", dest="poll_seconds", type=float)
    p.add_argument(
        "--compile-reranker",
        dest="compile_reranker",
        action=argparse.BooleanOptionalAction,
        help="compile the reranker's trees with gcc (default on)",
    )
    p.add_argument("--max-connection-age-seconds", dest="max_connection_age_seconds", type=float)
    p.add_argument(
        "--pin",
        dest="pin",
        help="serve exactly this version (all workers; persists until AdminService.Unpin)",
    )
    args = vars(p.parse_args(argv))
    return replace(base, **{k: v for k, v in args.items() if v is not None})
