"""Several grpc.aio channels to one server, and one call per request kind.

The kernel balances whole TCP connections (not requests) between the server's
SO_REUSEPORT worker processes, and one gRPC channel is one connection, so the
harness spreads its requests over several channels. Each channel gets its own
subchannel pool: by default gRPC shares one connection between channels with
the same target and arguments, which would defeat the point. The kernel places
a connection by a hash of its addresses, so 8 connections often land 6 and 2 on
two workers; ``connect`` re-dials those that land on a worker already holding
its share (AdminService.GetStatus says which worker answered).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.workload import FLOOR
from bookrec.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    catalog_pb2_grpc,
    feedback_pb2_grpc,
    recommender_pb2_grpc,
)

# Tries to place one channel on a worker below its share before taking any.
MAX_REDIALS = 20
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", 64 << 20),
)


@dataclass(frozen=True)
class Stubs:
    channel: grpc.aio.Channel
    recommender: recommender_pb2_grpc.RecommenderServiceAsyncStub
    catalog: catalog_pb2_grpc.CatalogServiceAsyncStub
    feedback: feedback_pb2_grpc.FeedbackServiceAsyncStub
    admin: admin_pb2_grpc.AdminServiceAsyncStub
    health: Any  # the published health stubs lack method types

    @staticmethod
    def dial(target: str) -> Stubs:
        ch = grpc.aio.insecure_channel(target, options=list(CHANNEL_OPTIONS))
        return Stubs(
            channel=ch,
            recommender=recommender_pb2_grpc.RecommenderServiceStub(ch),
            catalog=catalog_pb2_grpc.CatalogServiceStub(ch),
            feedback=feedback_pb2_grpc.FeedbackServiceStub(ch),
            admin=admin_pb2_grpc.AdminServiceStub(ch),
            health=health_pb2_grpc.HealthStub(ch),
        )


Method = Callable[[Stubs], Any]
METHODS: dict[str, Method] = {
    "recommend": lambda s: s.recommender.Recommend,
    "similar": lambda s: s.recommender.Similar,
    "similar_subject": lambda s: s.recommender.Similar,
    "similar_hybrid": lambda s: s.recommender.Similar,
    "cold_start": lambda s: s.recommender.ColdStart,
    "get_book": lambda s: s.catalog.GetBook,
    "search": lambda s: s.catalog.SearchBooks,
    "list_subjects": lambda s: s.catalog.ListSubjects,
    "rate_book": lambda s: s.feedback.RateBook,
    FLOOR: lambda s: s.health.Check,
}


class ChannelPool:
    """``n`` independent connections; call ``close`` (or use ``async with``)."""

    def __init__(self, target: str, n: int) -> None:
        if n < 1:
            raise ValueError("need at least one channel")
        self.target = target
        self.stubs = [Stubs.dial(target) for _ in range(n)]
        self.worker_pids: list[int] = []  # the server process behind each channel

    def __len__(self) -> int:
        return len(self.stubs)

    async def __aenter__(self) -> ChannelPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, rpc_timeout: float = 10.0, workers: int = 1) -> None:
        """Open every connection before measuring, so the first requests do not pay for
        it, spread evenly over ``workers`` server processes (within MAX_REDIALS tries)."""
        share = -(-len(self.stubs) // max(workers, 1))
        held: Counter[int] = Counter()
        self.worker_pids = []
        for i in range(len(self.stubs)):
            for attempt in range(MAX_REDIALS):
                await self.stubs[i].channel.channel_ready()
                pid = await self._worker_pid(self.stubs[i], rpc_timeout)
                if held[pid] < share or attempt == MAX_REDIALS - 1:
                    break
                await self.stubs[i].channel.close()
                self.stubs[i] = Stubs.dial(self.target)
            held[pid] += 1
            self.worker_pids.append(pid)

    @staticmethod
    async def _worker_pid(stubs: Stubs, rpc_timeout: float) -> int:
        """The pid of the worker behind a channel; 0 from a server without AdminService."""
        try:
            reply = await stubs.admin.GetStatus(admin_pb2.GetStatusRequest(), timeout=rpc_timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            await stubs.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=rpc_timeout)
            return 0
        return int(reply.worker_pid)

    async def close(self) -> None:
        for s in self.stubs:
            await s.channel.close()

    def method(self, channel: int, kind: str) -> Any:
        return METHODS[kind](self.stubs[channel])
