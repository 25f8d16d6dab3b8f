"""Recommend, Similar and ColdStart as the handlers run them: through the worker's
dynamic batchers (server/batcher.py), or call by call when batching is off
(ServerConfig.batching; --no-batching, BOOKREC_BATCHING=0).

Either way a call computes where ``pipeline`` puts it (handlers/common.py: inline on
the loop when the worker holds nothing else, else the compute thread; a thread while
a model loads), and answers the same list (tests/test_batch_engine.py,
tests/test_batching_server.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from server.batcher import Batcher, BatchSettings
from server.engine.batch_cold_start import ColdStartCall
from server.engine.batch_recommend import RecommendCall
from server.engine.batch_similar import SimilarCall
from server.engine.bundle import Bundle
from server.engine.manager import ModelManager
from server.engine.personal import Personal
from server.engine.types import RankedList
from server.handlers.common import pipeline

R = TypeVar("R")


class _Batching:
    settings = BatchSettings()


def configure_batching(enabled: bool, max_wait_ms: float, max_batch: int) -> None:
    """Set from ServerConfig (batching, batch_wait_ms, max_batch) before serving."""
    _Batching.settings = BatchSettings(enabled, max_wait_ms / 1000, max_batch)


def _never() -> None:
    """A call without a deadline to check."""


@dataclass(frozen=True)
class Alone:
    """How each pipeline computes a call by itself (alone in its worker, or with
    batching off): the handlers' path from before batching (``pipeline``)."""

    recommend: Callable[[Bundle, RecommendCall], Awaitable[RankedList]]
    similar: Callable[[Bundle, SimilarCall], Awaitable[RankedList]]
    cold_start: Callable[[Bundle, ColdStartCall], Awaitable[RankedList]]


class Pipelines:
    """One worker's three pipelines, each behind its own batcher."""

    def __init__(self, models: ModelManager, personal: Personal, alone: Alone) -> None:
        self.models = models
        self.alone = alone
        self.settings = _Batching.settings
        compute, settings = self._compute, self.settings
        self.recommend_batcher: Batcher[Bundle, RecommendCall, RankedList] = Batcher(
            "Recommend",
            personal.recommend_many,
            personal.recommend_one,
            alone.recommend,
            compute,
            settings,
        )
        self.similar_batcher: Batcher[Bundle, SimilarCall, RankedList] = Batcher(
            "Similar", personal.similar_many, personal.similar_one, alone.similar, compute, settings
        )
        self.cold_start_batcher: Batcher[Bundle, ColdStartCall, RankedList] = Batcher(
            "ColdStart",
            personal.cold_start_many,
            personal.cold_start_one,
            alone.cold_start,
            compute,
            settings,
        )

    async def _compute(self, fn: Callable[[], R]) -> R:
        return await pipeline(self.models, fn)

    async def recommend(
        self, bundle: Bundle, call: RecommendCall, check: Callable[[], None] = _never
    ) -> RankedList:
        if not self.settings.enabled:
            return await self.alone.recommend(bundle, call)
        return await self.recommend_batcher.submit(bundle, call, check)

    async def similar(
        self, bundle: Bundle, call: SimilarCall, check: Callable[[], None] = _never
    ) -> RankedList:
        if not self.settings.enabled:
            return await self.alone.similar(bundle, call)
        return await self.similar_batcher.submit(bundle, call, check)

    async def cold_start(
        self, bundle: Bundle, call: ColdStartCall, check: Callable[[], None] = _never
    ) -> RankedList:
        if not self.settings.enabled:
            return await self.alone.cold_start(bundle, call)
        return await self.cold_start_batcher.submit(bundle, call, check)
