"""One replica's part in a fleet: which log and control store it uses, its health
signals, and its heartbeat.

Health (grpc.health.v1, docs/fleet.md "Health for balancers"):

- ``bookrec.live`` is liveness: SERVING while the process runs (NOT_SERVING once
  it drains). Restart a replica only when this fails.
- ``""``, ``bookrec.ready`` and each service name are readiness: SERVING only
  while a model is loaded *and* the rating log has been read up to where it
  stood when the replica started *and* the artifact watcher has not failed
  ``--watch-failures-unready`` polls in a row (server/polls.py). ``""`` keeps
  its old meaning (ready) so existing clients and probes keep working.
- ``bookrec.ratinglog`` says whether the rating log's engine is reachable now
  (RateBook answers UNAVAILABLE while it is not; reads go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

from grpc_health.v1 import health, health_pb2

from bookrec.log import kv
from bookrec.ratinglog import RatingLog, open_log
from server.config import ServerConfig
from server.engine.control import ControlStore, FileControl, ReplicaStatus
from server.engine.manager import ModelManager
from server.polls import PollGuard

log = logging.getLogger("server.fleet")

LIVE = "bookrec.live"
READY = "bookrec.ready"
RATINGLOG = "bookrec.ratinglog"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEARTBEAT_SECONDS = 1.0
TICK = 0.1


def open_fleet(cfg: ServerConfig) -> tuple[RatingLog, ControlStore]:
    """The rating log and control store ``cfg`` names: both local, or both shared."""
    try:
        rating_log = open_log(cfg.rating_log, cfg.feedback_log)
    except ValueError as e:
        raise SystemExit(f"--rating-log / BOOKREC_RATING_LOG: {e}") from e
    if cfg.rating_log.startswith("nats://"):
        from server.fleet.natscontrol import NatsControl

        return rating_log, NatsControl(cfg.rating_log)
    return rating_log, FileControl(cfg.artifacts_dir)


class ReadinessServicer(health.aio.HealthServicer):
    """Readiness is computed, never just set: whatever the server sets for a
    readiness name, it reads SERVING only while ``ready()`` holds."""

    def __init__(self, ready: Callable[[], bool], log_up: Callable[[], bool]) -> None:
        super().__init__()
        self.ready = ready
        self.log_up = log_up
        self._names: dict[str, int] = {}  # what this servicer last published, by name

    def _effective(self, service: str) -> int:
        if service == LIVE:
            return SERVING
        if service == RATINGLOG:
            return SERVING if self.log_up() else NOT_SERVING
        return SERVING if self.ready() else NOT_SERVING

    async def set(self, service: str, status: int) -> None:
        want = self._effective(service)
        self._names[service] = want
        await super().set(service, want)

    async def refresh(self) -> None:
        """Publish what holds now (called every tick, and once before serving)."""
        for service in {LIVE, READY, RATINGLOG, "", *self._names}:
            want = self._effective(service)
            if self._names.get(service) != want:
                await self.set(service, want)


def replica_state(models: ModelManager, rating_log: RatingLog, watching: bool = True) -> str:
    if not models.ready:
        return "loading"
    if not rating_log.caught_up():
        return "catching-up"
    if not watching:  # the artifact watcher keeps failing (server/polls.py)
        return "watch-failing"
    return "ready"


class _Replica:
    """One worker's part: its health, its heartbeat and the pin it follows. ``watch`` is
    the artifact watcher's guard: its failures in a row turn readiness off."""

    def __init__(
        self,
        models: ModelManager,
        rating_log: RatingLog,
        control: ControlStore,
        servicer: ReadinessServicer,
        replica_id: str,
        watch: PollGuard,
    ) -> None:
        self.models, self.rating_log, self.control = models, rating_log, control
        self.servicer, self.replica_id, self.watch = servicer, replica_id, watch
        self.changed = asyncio.Event()
        self.last_beat = 0.0
        self.last_state = ""

    async def tick(self) -> None:
        await self.servicer.refresh()
        state = replica_state(self.models, self.rating_log, self.watch.healthy)
        if state != self.last_state:
            log.info("replica state", extra=kv(replica=self.replica_id, state=state))
            self.last_state = state
        if time.monotonic() - self.last_beat >= HEARTBEAT_SECONDS or self.changed.is_set():
            self.last_beat = time.monotonic()
            beat = ReplicaStatus(
                replica_id=self.replica_id,
                serving_version=self.models.serving_version or "",
                state=state,
                ready=state == "ready",
                pinned_version=self.models.pinned or "",
                at=time.time(),
                worker_pid=os.getpid(),
            )
            await asyncio.to_thread(self.control.heartbeat, beat)  # the file store writes
        if self.changed.is_set():
            self.changed.clear()
            # A failed load is recorded by the manager; anything else the guard logs.
            await self.watch.run(self.models.poll, what="serving the loaded model")


async def run_replica(
    models: ModelManager,
    rating_log: RatingLog,
    control: ControlStore,
    servicer: ReadinessServicer,
    replica_id: str,
    watch: PollGuard,
) -> None:
    """Keep health current, beat into the control store, and follow a shared pin
    as soon as the store reports it changed (the artifact watcher's poll is the
    fallback). A tick that fails is logged and counted, and the next one runs."""
    loop = asyncio.get_running_loop()
    replica = _Replica(models, rating_log, control, servicer, replica_id, watch)
    control.on_change(lambda: _soon(loop, replica.changed.set))
    guard = PollGuard("replica_tick", logger=log)
    while True:
        try:
            await replica.tick()
        except Exception as e:
            guard.failed(e, "health and heartbeat as last published")
        else:
            guard.succeeded()
        await asyncio.sleep(TICK)


def default_replica_id(cfg: ServerConfig, port: int) -> str:
    return cfg.replica_id or f"{socket.gethostname()}:{port}/{os.getpid()}"


def _soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop already closed
        loop.call_soon_threadsafe(fn)
