"""Several grpc.aio channels to one server, and one call per request kind.

The kernel balances whole TCP connections (not requests) between the server's
SO_REUSEPORT worker processes, and one gRPC channel is one connection, so the
harness spreads its requests over several channels. Each channel gets its own
subchannel pool: by default gRPC shares one connection between channels with
the same target and arguments, which would defeat the point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.workload import FLOOR
from bookrec.v1 import catalog_pb2_grpc, feedback_pb2_grpc, recommender_pb2_grpc

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
    health: Any  # the published health stubs lack method types


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
        self.stubs: list[Stubs] = []
        for _ in range(n):
            ch = grpc.aio.insecure_channel(target, options=list(CHANNEL_OPTIONS))
            self.stubs.append(
                Stubs(
                    channel=ch,
                    recommender=recommender_pb2_grpc.RecommenderServiceStub(ch),
                    catalog=catalog_pb2_grpc.CatalogServiceStub(ch),
                    feedback=feedback_pb2_grpc.FeedbackServiceStub(ch),
                    health=health_pb2_grpc.HealthStub(ch),
                )
            )

    def __len__(self) -> int:
        return len(self.stubs)

    async def __aenter__(self) -> ChannelPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, rpc_timeout: float = 10.0) -> None:
        """Open every connection before measuring, so the first requests do not pay for it."""
        for s in self.stubs:
            await s.channel.channel_ready()
            await s.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=rpc_timeout)

    async def close(self) -> None:
        for s in self.stubs:
            await s.channel.close()

    def method(self, channel: int, kind: str) -> Any:
        return METHODS[kind](self.stubs[channel])
