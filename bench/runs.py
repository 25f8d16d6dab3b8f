"""One measured run against a live server: channels, workload, open or closed loop.

Every run mixes ``floor_share`` health checks into the same arrival stream and
channels, so each figure has its floor measured under the same load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bench.client import ChannelPool
from bench.loadgen import DEFAULT_TIMEOUT, RunResult, closed_loop, open_loop
from bench.serverproc import ServerProcess
from bench.workload import ArtifactIds, RequestFactory, with_floor


@dataclass(frozen=True)
class LoadSettings:
    channels: int = 8
    floor_share: float = 0.1
    zipf_s: float = 1.0
    seed: int = 0
    rpc_timeout: float = DEFAULT_TIMEOUT
    warmup_seconds: float = 1.0


def _factory(
    ids: ArtifactIds, mix: Mapping[str, float], settings: LoadSettings, salt: int
) -> tuple[RequestFactory, np.random.Generator]:
    rng = np.random.default_rng([settings.seed, salt])
    mixed = with_floor(mix, settings.floor_share)
    return RequestFactory(ids, mixed, rng, zipf_s=settings.zipf_s), rng


async def run_open(
    server: ServerProcess,
    ids: ArtifactIds,
    mix: Mapping[str, float],
    rate: float,
    duration: float,
    settings: LoadSettings,
    salt: int = 0,
) -> RunResult:
    """Open loop at ``rate``/s (floor included) after an unrecorded warm-up."""
    factory, rng = _factory(ids, mix, settings, salt)
    async with ChannelPool(server.target, settings.channels) as pool:
        await pool.connect(workers=server.workers or 1)
        if settings.warmup_seconds > 0:
            await open_loop(pool, factory, min(rate, 50.0), settings.warmup_seconds, rng)
        return await open_loop(pool, factory, rate, duration, rng, settings.rpc_timeout)


async def run_closed(
    server: ServerProcess,
    ids: ArtifactIds,
    mix: Mapping[str, float],
    concurrency: int,
    duration: float,
    settings: LoadSettings,
    salt: int = 0,
) -> RunResult:
    """Closed loop with ``concurrency`` requests in flight, after an unrecorded warm-up."""
    factory, _ = _factory(ids, mix, settings, salt)
    async with ChannelPool(server.target, settings.channels) as pool:
        await pool.connect(workers=server.workers or 1)
        if settings.warmup_seconds > 0:
            await closed_loop(pool, factory, concurrency, settings.warmup_seconds)
        return await closed_loop(pool, factory, concurrency, duration, settings.rpc_timeout)
