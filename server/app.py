"""The grpc.aio server: services, health, reflection, artifact polling, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bookrec.log import kv
from bookrec.objectstore import BucketURL
from bookrec.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    feedback_pb2,
    feedback_pb2_grpc,
    recommender_pb2,
    recommender_pb2_grpc,
)
from server.auth import auth_interceptors
from server.config import ServerConfig, port_taken
from server.decode import DecodeInterceptor
from server.engine.bucket import BucketPoller
from server.engine.bundle import warmup_queries
from server.engine.errors import EngineError
from server.engine.feedback import FeedbackLog
from server.engine.foldin import RatingsOverlay
from server.engine.manager import ModelManager
from server.engine.personal import Personal
from server.engine.source import ArtifactSource
from server.fleet.replica import ReadinessServicer, default_replica_id, open_fleet, run_replica
from server.handlers.admin import Admin
from server.handlers.batched import configure_batching
from server.handlers.catalog import Catalog
from server.handlers.common import configure_compute, configure_deadlines
from server.handlers.feedback import Feedback
from server.handlers.recommender import Recommender
from server.metrics import serve_worker
from server.observe import ObserveInterceptor, lean_log_records
from server.polls import PollGuard
from server.ports import Claim, claim_all
from server.shedding import admission_interceptors, core_options, drain, take_in
from server.tls import server_credentials
from server.web.gateway import Gateway, start_gateway, web_port_taken
from server.workers import supervised_worker

log = logging.getLogger("server")

SERVICES = (
    recommender_pb2.DESCRIPTOR.services_by_name["RecommenderService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    feedback_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)


async def _set_health(servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", *SERVICES):
        await servicer.set(name, status)


def _background_priority() -> None:
    """Loading a new version competes with serving for two cores: the loader thread
    runs at nice 10, so request threads and the event loop win the CPU."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


async def _watch_artifacts(
    models: ModelManager,
    servicer: health.aio.HealthServicer,
    poll_seconds: float,
    watch: PollGuard,
    bucket: BucketPoller | None = None,
) -> None:
    """Look again whenever the source reports a change, and every ``poll_seconds``
    anyway; loading runs in a worker thread, off the event loop. ``bucket`` (its own
    thread) downloads new versions into the root, where the source sees them. A poll
    that raises is logged and counted by ``watch`` and the next one runs."""
    loop = asyncio.get_running_loop()
    loader = ThreadPoolExecutor(1, "loader", initializer=_background_priority)
    changed = asyncio.Event()
    source = ArtifactSource(models.artifacts_dir, lambda: loop.call_soon_threadsafe(changed.set))
    await asyncio.to_thread(source.start)
    if bucket is not None:
        bucket.on_new = lambda: loop.call_soon_threadsafe(changed.set)
        bucket.start()
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), poll_seconds)
            changed.clear()
            if await watch.run(models.poll, loader, "serving the loaded model"):
                await _set_health(servicer, True)
    finally:
        if bucket is not None:
            await asyncio.to_thread(bucket.stop)
        await asyncio.to_thread(source.stop)
        loader.shutdown(wait=False, cancel_futures=True)


def _bucket_poller(cfg: ServerConfig, models: ModelManager) -> BucketPoller | None:
    """The poller of ``artifact_bucket`` (docs/fleet.md), or None: the local folder alone."""
    if not cfg.artifact_bucket:
        return None
    try:
        url = BucketURL.parse(cfg.artifact_bucket)
    except ValueError as e:
        raise SystemExit(f"--artifact-bucket: {e}") from e
    return BucketPoller(
        cfg.artifacts_dir,
        url,
        cfg.s3_endpoint,
        cfg.bucket_poll_seconds,
        cfg.bucket_keep,
        pinned=lambda: models.pinned,
    )


def _claim_ports(cfg: ServerConfig) -> tuple[list[Claim], bool]:
    """A server of its own claims its ports (server/ports.py) and then listens on them
    without SO_REUSEPORT, so no other process can join; a supervisor's worker shares
    the ports its supervisor claimed. Returns the claims (their locks are held until
    the server stops) and whether to share."""
    if supervised_worker():
        return [], True
    ports = [(cfg.port, port_taken)] if cfg.port else []
    if cfg.web_port:
        ports.append((cfg.web_port, web_port_taken))
    claims = claim_all(cfg.host, ports)
    for c in claims:
        c.release_probe()  # this server's own sockets refuse others from here on
    return claims, False


def _announce(cfg: ServerConfig, port: int, models: ModelManager) -> None:
    """Tell a person where we are and how to try it (stdout, one line each)."""
    print(f"bookrec listening on {cfg.host}:{port}", flush=True)
    if models.ready:
        bundle = models.current()
        users = warmup_queries(bundle)["user_ids"]
        user = users[0] if users else "USER_ID"
        print(f"serving model {bundle.version} ({bundle.n_books} books)", flush=True)
        key = "BOOKREC_API_KEY=<your key> " if cfg.keys_file or cfg.api_keys else ""
        tls = " --tls-ca <CA of the server cert>" if cfg.tls_cert else ""
        print(
            f"try: {key}.venv/bin/python -m clients --target "
            f"{cfg.host}:{port}{tls} recommend --user {user} --explain",
            flush=True,
        )


async def serve(
    cfg: ServerConfig,
    stop: asyncio.Event,
    feedback: FeedbackLog | None = None,
    started: asyncio.Future[int] | None = None,
) -> None:
    """Serve until ``stop`` is set, then drain in-flight calls for up to the grace period.

    ``started`` receives the bound port once the server accepts calls.
    """
    claims, share = _claim_ports(cfg)
    try:
        await _serve(cfg, stop, share, feedback, started)
    finally:
        for c in claims:
            c.close()


async def _serve(
    cfg: ServerConfig,
    stop: asyncio.Event,
    share: bool,
    feedback: FeedbackLog | None,
    started: asyncio.Future[int] | None,
) -> None:
    configure_compute(cfg.pipeline_offload, cfg.compute_threads)
    configure_batching(cfg.batching, cfg.batch_wait_ms, cfg.max_batch)
    configure_deadlines(cfg.test_step_delay_ms / 1000)
    # The rating log and the pins: local files, or a fleet's shared engine (docs/fleet.md).
    rating_log, control_store = open_fleet(cfg)
    models = ModelManager(cfg.artifacts_dir, cfg.compile_reranker, control_store)
    options = core_options(cfg)
    if cfg.max_connection_age_seconds > 0:
        age_ms = int(cfg.max_connection_age_seconds * 1000)
        options += [
            ("grpc.max_connection_age_ms", age_ms),
            ("grpc.max_connection_age_grace_ms", int(cfg.grace_seconds * 1000)),
        ]
    # Observation outermost, to count and log every status the others answer; then
    # undecodable requests (INVALID_ARGUMENT before any layer reads a field); then
    # authentication: a refused key never takes a place in admission's queue.
    admission = admission_interceptors(cfg)
    lean_log_records()
    interceptors = [
        ObserveInterceptor(lambda: models.serving_version),
        DecodeInterceptor(),
        *auth_interceptors(cfg),
        *admission,
    ]
    # Only a supervisor's workers share the port (SO_REUSEPORT): _claim_ports.
    options.append(("grpc.so_reuseport", int(share)))
    server = grpc.aio.server(options=options, interceptors=interceptors)
    overlay = RatingsOverlay(rating_log)
    # Ready: a model loaded and the rating log read up to where it stood at start.
    # And not after --watch-failures-unready artifact polls failed in a row.
    watch = PollGuard("artifact_watch", cfg.watch_failures_unready)
    health_servicer = ReadinessServicer(
        lambda: models.ready and overlay.caught_up() and watch.healthy, rating_log.connected
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    personal = Personal(overlay, cfg.cache_size)
    recommender_pb2_grpc.add_RecommenderServiceServicer_to_server(
        Recommender(models, personal), server
    )
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(Catalog(models), server)
    feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(
        Feedback(models, feedback or FeedbackLog(rating_log)), server
    )
    reflection.enable_server_reflection(
        (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(Admin(models), server)
    await _set_health(health_servicer, False)
    credentials = server_credentials(cfg)
    address = f"{cfg.host}:{cfg.port}"
    try:
        port = (
            server.add_secure_port(address, credentials)
            if credentials
            else server.add_insecure_port(address)
        )
    except RuntimeError as e:  # grpc's "Failed to bind": the port is taken
        raise SystemExit(port_taken(cfg.host, cfg.port, "address in use")) from e
    # Before the first load, so a bad port fails at once and a loading worker is seen.
    serve_worker(cfg.host, cfg.metrics_port)
    if cfg.pin:
        try:
            await asyncio.to_thread(models.pin, cfg.pin, "--pin flag")
        except EngineError as e:  # malformed, absent or failing to load
            raise SystemExit(f"--pin: {e}") from e
    if await asyncio.to_thread(models.poll):
        await _set_health(health_servicer, True)
    await server.start()
    gateway: Gateway | None = await start_gateway(cfg, port, share) if cfg.web_port else None
    _announce(cfg, port, models)
    if gateway is not None:
        print(f"web page on {gateway.url}", flush=True)
    log.info("started", extra=kv(host=cfg.host, port=port, model_ready=models.ready))
    if started is not None:
        started.set_result(port)
    replica_id = default_replica_id(cfg, port)
    replica = asyncio.create_task(
        run_replica(models, rating_log, control_store, health_servicer, replica_id, watch)
    )
    bucket = _bucket_poller(cfg, models)
    watcher = asyncio.create_task(
        _watch_artifacts(models, health_servicer, cfg.poll_seconds, watch, bucket)
    )
    try:
        await stop.wait()
    finally:
        log.info("stopping: draining in-flight calls", extra=kv(grace=cfg.grace_seconds))
        stop_began = time.monotonic()
        await health_servicer.enter_graceful_shutdown()
        if gateway is not None:  # web calls in flight finish, then the gRPC ones
            await gateway.close()
        # Core cancels the calls it holds but has not handed over when it stops
        # (CANCELLED): admission takes them in first, then core stops (GOAWAY: new
        # calls are UNAVAILABLE) while every call taken in finishes, within the grace.
        taken = await take_in(admission)
        took_in_s = round(time.monotonic() - stop_began, 3)
        grace = max(cfg.grace_seconds - (time.monotonic() - stop_began), 0.0)
        stopping = asyncio.create_task(server.stop(grace))
        await drain(admission, grace)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await stopping
        seconds = round(time.monotonic() - stop_began, 3)
        log.info("drained", extra=kv(taken_in=taken, took_in_s=took_in_s, seconds=seconds))
        replica.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replica
        models.close()
        control_store.close()
        rating_log.close()
        log.info("stopped")
