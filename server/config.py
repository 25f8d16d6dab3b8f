"""Server configuration: one typed place, defaults < environment (BOOKREC_*) < flags.

The environment is read and every value checked by the loader the trainer uses too
(bookrec/settings.py): ports 1..65535 (0 where it means off or any free port), counts
and periods within their bounds; a bad value stops the server with one line naming
the variable or flag.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from bookrec import settings
from bookrec.settings import above, at_least, one_of

ENV_PREFIX = "BOOKREC_"
OFFLOAD_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = settings.port(50051, "any free port")
    artifacts_dir: Path = Path("artifacts")
    # Ratings sent through RateBook; the trainer's next run reads them.
    feedback_log: Path = Path("data/feedback/ratings.jsonl")
    # A fleet's shared rating log (docs/fleet.md): nats://HOST:PORT/STREAM[?replicas=N]
    # (JetStream); it also holds the shared pins and the fleet view. Empty: the local
    # feedback_log file and the artifact root's control file (one machine).
    rating_log: str = ""
    # This replica's name in the fleet view; empty: HOST:PORT/PID.
    replica_id: str = ""
    # Seconds in-flight calls get to finish after SIGTERM.
    grace_seconds: float = at_least(10.0, 0)
    log_level: str = "INFO"
    # Worker processes sharing the port (SO_REUSEPORT); 0 means one per core.
    workers: int = at_least(0, 1, zero_means="one per core")
    # Seconds between artifact-root polls, the fallback when file events are missed.
    poll_seconds: float = above(10.0, 0)
    # Artifact polls failing in a row (an unreadable root, a bug) before readiness says
    # NOT_SERVING: the model still answers, but new versions and pins are not followed.
    # 0: never (server/polls.py).
    watch_failures_unready: int = at_least(3, 0)
    # Deprecated (use an API key with the admin scope): a bearer token accepted as an
    # admin key. Alone it guards only AdminService's changes; other calls stay open.
    admin_token: str = field(default="", repr=False)
    # API keys (server/keys.py): a JSON-lines file of hashed keys, re-read when it
    # changes; and/or the same entries in BOOKREC_API_KEYS. Either one turns
    # authentication on for every call but health and reflection; neither: open.
    keys_file: str = ""
    api_keys: str = field(default="", repr=False)
    # Per-key token bucket, per worker (calls/s; burst 0 = one second's worth);
    # 0 = unlimited. A key's own "rate"/"burst" in the keys file wins.
    rate_limit: float = at_least(0.0, 0)
    rate_burst: float = at_least(0.0, 0)
    # TLS (PEM files): cert and key turn it on; a client CA also requires and checks
    # client certificates (mutual TLS).
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Admission control (server/admission.py), per worker: calls admitted at once (the
    # pipelines on the event loop take one at a time anyway; with batching, those
    # admitted together compute as one batch, so this is also the largest batch that can
    # form: 8 held batches to 4 calls on average, 32 to 11); 0 turns admission off.
    max_concurrent_rpcs: int = at_least(32, 1, zero_means="admission off")
    # Calls waiting for a turn beyond which new ones get RESOURCE_EXHAUSTED at once.
    max_queued_rpcs: int = at_least(256, 0)
    # The longest a call waits for a turn (less when its deadline is nearer): a call this
    # queue predicts would wait longer is refused at once (a fast refusal beats a timeout).
    # 1 s, not tens of ms: a model swap or a busy moment on a small machine holds the
    # loop for a few hundred ms, and refusing then failed requests while publishing.
    max_queue_wait_ms: float = at_least(1000.0, 0)
    # Calls gRPC core may hold for a worker before the application takes them (core's
    # grpc.server.max_pending_requests and its hard limit). Past it core drops calls as
    # CANCELLED with no detail; its own default (random drops from 1,000, all past 3,000)
    # did so to 643 of a 3,000-call burst. Admission takes them in and refuses the excess.
    # Each call held costs about 16 KB (12,000 held: +194 MB peak RSS).
    max_core_backlog: int = at_least(10_000, 1)
    # HTTP/2 streams one connection may hold open (grpc.max_concurrent_streams): a
    # client's excess waits at the client, so no single connection fills the backlog.
    max_streams_per_connection: int = at_least(1000, 1)
    # Where Recommend, Similar and ColdStart compute (docs/serving.md, "Admission
    # control"): auto = inline on the event loop when the call is the worker's only one,
    # else in the compute thread; always = the thread; never = the loop (the old way).
    pipeline_offload: str = one_of("auto", OFFLOAD_MODES)
    # Threads of that compute pool per worker.
    compute_threads: int = at_least(1, 1)
    # Dynamic batching (server/batcher.py, docs/serving.md "Batching"): a worker's
    # concurrent Recommend, Similar and ColdStart calls computed together, with the same
    # answers. A call alone in its worker never waits; with others in flight it waits at
    # most batch_wait_ms for more to join, and a batch holds at most max_batch calls.
    batching: bool = True
    batch_wait_ms: float = at_least(1.0, 0)
    max_batch: int = at_least(32, 1)
    # Test hook, off (0) by default: every compute step of a call sleeps this long first
    # (server/engine/deadline.py), so a test can see a call abandoned mid-compute.
    # Environment only (BOOKREC_TEST_STEP_DELAY_MS); never set it in production.
    test_step_delay_ms: float = at_least(0.0, 0)
    # Finished Recommend, Similar and ColdStart lists kept per worker (keyed by model
    # version and request); 0 disables.
    cache_size: int = at_least(10_000, 0)
    # Seconds after which a client connection is asked to reconnect (GOAWAY; calls in
    # flight finish): the kernel places whole connections on workers, so this spreads
    # long-lived clients again after a worker restarts. 0 = never.
    max_connection_age_seconds: float = at_least(300.0, 0)
    # Compile the reranker's trees to native code (gcc; ~4x faster than LightGBM's
    # predict, checked equal at load; LightGBM answers when it cannot be done).
    compile_reranker: bool = True
    # Pin at startup: written to the control file every worker reads.
    pin: str = ""
    # Prometheus metrics over HTTP on this port (all workers summed; docs/serving.md
    # "Observability"), on ``host``; 0 = off.
    metrics_port: int = settings.port(0, "off")
    # The web page (clients/web) and its gRPC-Web gateway on this port, on ``host``
    # (every worker, SO_REUSEPORT); 0 = off. docs/web.md.
    web_port: int = settings.port(0, "off")
    # Versions from an S3-compatible bucket (docs/fleet.md): s3://BUCKET/PREFIX, listed
    # every bucket_poll_seconds; a new complete version is downloaded and checked into
    # artifacts_dir, then loaded as a local one. Empty: the local folder alone.
    # Credentials: the standard AWS variables (AWS_ACCESS_KEY_ID, ...).
    artifact_bucket: str = ""
    # S3 API other than AWS (MinIO, moto): http://HOST:PORT; empty = AWS (or AWS_ENDPOINT_URL).
    s3_endpoint: str = ""
    bucket_poll_seconds: float = above(10.0, 0)
    # Local versions kept when serving from a bucket (plus the pinned and leased ones);
    # 0 = never delete.
    bucket_keep: int = at_least(3, 0)

    @staticmethod
    def from_env(environ: dict[str, str] | None = None) -> ServerConfig:
        """Defaults with the BOOKREC_* variables set; a bad one stops with one line."""
        env = os.environ if environ is None else environ
        try:
            return settings.from_env(ServerConfig, ENV_PREFIX, env)
        except settings.SettingError as e:
            raise SystemExit(f"server: {e}") from None


def port_taken(host: str, port: int, why: object) -> str:
    """The one line a server that cannot bind prints, with the fix."""
    return (
        f"server: cannot listen on {host}:{port} ({why}): another process holds the port; "
        f"stop it, or choose another port with --port N or BOOKREC_PORT=N "
        f"(make run: BOOKREC_PORT=N make run)"
    )


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    base = ServerConfig.from_env()
    p = argparse.ArgumentParser(prog="server", description="bookrec gRPC server")
    p.add_argument("--host", help=f"listen address (default {base.host})")
    p.add_argument("--port", type=int, help=f"listen port, 0 = any free (default {base.port})")
    p.add_argument("--artifacts", dest="artifacts_dir", type=Path, help="artifact root")
    p.add_argument("--feedback-log", dest="feedback_log", type=Path)
    p.add_argument(
        "--rating-log",
        dest="rating_log",
        help="shared rating log nats://HOST:PORT/STREAM (empty: the local --feedback-log)",
    )
    p.add_argument("--replica-id", dest="replica_id", help="name in the fleet view")
    p.add_argument("--grace-seconds", dest="grace_seconds", type=float)
    p.add_argument("--log-level", dest="log_level")
    p.add_argument("--cache-size", dest="cache_size", type=int)
    p.add_argument("--max-concurrent-rpcs", dest="max_concurrent_rpcs", type=int)
    p.add_argument("--max-queued-rpcs", dest="max_queued_rpcs", type=int)
    p.add_argument("--max-queue-wait-ms", dest="max_queue_wait_ms", type=float)
    p.add_argument(
        "--max-core-backlog",
        dest="max_core_backlog",
        type=int,
        help=f"calls gRPC core holds before admission takes them (default {base.max_core_backlog})",
    )
    p.add_argument(
        "--max-streams-per-connection",
        dest="max_streams_per_connection",
        type=int,
        help=f"HTTP/2 streams open per connection (default {base.max_streams_per_connection})",
    )
    p.add_argument(
        "--pipeline-offload",
        dest="pipeline_offload",
        choices=OFFLOAD_MODES,
        help=f"where pipelines compute: auto, always (thread), never (loop) "
        f"(default {base.pipeline_offload})",
    )
    p.add_argument(
        "--compute-threads",
        dest="compute_threads",
        type=int,
        help=f"compute threads per worker (default {base.compute_threads})",
    )
    p.add_argument(
        "--batching",
        dest="batching",
        action=argparse.BooleanOptionalAction,
        help="compute a worker's concurrent calls together (default on)",
    )
    p.add_argument(
        "--batch-wait-ms",
        dest="batch_wait_ms",
        type=float,
        help=f"longest wait for a batch to fill, ms (default {base.batch_wait_ms:g})",
    )
    p.add_argument(
        "--max-batch",
        dest="max_batch",
        type=int,
        help=f"calls per batch (default {base.max_batch})",
    )
    p.add_argument("--workers", type=int, help="processes on the port, 0 = one per core")
    p.add_argument("--poll-seconds", dest="poll_seconds", type=float)
    p.add_argument(
        "--watch-failures-unready",
        dest="watch_failures_unready",
        type=int,
        help="artifact polls failing in a row before readiness is NOT_SERVING (0 = never; "
        f"default {base.watch_failures_unready})",
    )
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
    p.add_argument("--keys-file", dest="keys_file", help="API keys file (JSON lines, hashed)")
    p.add_argument("--rate-limit", dest="rate_limit", type=float, help="calls/s per key")
    p.add_argument("--rate-burst", dest="rate_burst", type=float, help="bucket size per key")
    p.add_argument("--tls-cert", dest="tls_cert", help="server certificate chain (PEM)")
    p.add_argument("--tls-key", dest="tls_key", help="server private key (PEM)")
    p.add_argument("--tls-client-ca", dest="tls_client_ca", help="CA for client certs (mTLS)")
    p.add_argument(
        "--metrics-port", dest="metrics_port", type=int, help="Prometheus /metrics port, 0 = off"
    )
    p.add_argument(
        "--artifact-bucket",
        dest="artifact_bucket",
        help="also serve versions published to s3://BUCKET/PREFIX (downloaded to --artifacts)",
    )
    p.add_argument(
        "--s3-endpoint", dest="s3_endpoint", help="S3 API URL other than AWS (MinIO, moto)"
    )
    p.add_argument("--bucket-poll-seconds", dest="bucket_poll_seconds", type=float)
    p.add_argument(
        "--bucket-keep", dest="bucket_keep", type=int, help="local versions kept, 0 = all"
    )
    p.add_argument(
        "--web-port", dest="web_port", type=int, help="web page + gRPC-Web port, 0 = off"
    )
    args = vars(p.parse_args(argv))
    given = {k: v for k, v in args.items() if v is not None}
    cfg = replace(base, **given)
    flags = {a.dest: a.option_strings[0] for a in p._actions if a.option_strings}
    try:  # the environment's values were checked by from_env; these are the flags'
        settings.check(cfg, {k: flags[k] for k in given})
    except settings.SettingError as e:
        raise SystemExit(f"server: {e}") from None
    if cfg.artifact_bucket:
        from bookrec.objectstore import BucketURL

        try:
            BucketURL.parse(cfg.artifact_bucket)
        except ValueError as e:
            raise SystemExit(f"--artifact-bucket / BOOKREC_ARTIFACT_BUCKET: {e}") from e
    return cfg
