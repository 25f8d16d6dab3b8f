"""The pipelines as served: new ratings from the feedback log, the result cache.

The handlers call ``Personal``; everything about where ratings come from and what
may be reused lives here, so a handler stays validate -> call -> reply and each
pipeline stays a pure function of a bundle and its inputs. Similar and ColdStart
depend on nothing but the model and the request, so their lists are cached too
(a book page or a subject picker asks the same questions over and over).

Each pipeline has a call-at-a-time form (``recommend``; ``recommend_one`` takes the
batcher's item) and a batch form (``recommend_many``, ...; server/batcher.py) with the
same keys and cache: a batch reads the rating log once, answers its cached calls from
the cache and computes the rest together (server/engine/batch_*.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from server.engine.batch_cold_start import ColdStartCall, cold_start_many
from server.engine.batch_recommend import RecommendCall, recommend_many
from server.engine.batch_similar import SimilarCall, similar_many
from server.engine.bundle import Bundle
from server.engine.cache import LruCache
from server.engine.cold_start import cold_start
from server.engine.foldin import RatingsOverlay
from server.engine.recommend import recommend
from server.engine.similar import similar
from server.engine.types import Filters, RankedList, SimilarMode

C = TypeVar("C")
Outcome = RankedList | Exception


class Personal:
    def __init__(self, overlay: RatingsOverlay, cache_size: int) -> None:
        self.overlay = overlay
        self.cache: LruCache[RankedList] = LruCache(cache_size, "results")

    def recommend(
        self,
        bundle: Bundle,
        user_id: str,
        k: int,
        filters: Filters,
        explain: bool,
        offset: int,
    ) -> RankedList:
        self.overlay.refresh()
        key, c = self._recommend_ask(bundle, RecommendCall(user_id, k, filters, explain, offset))
        return self._cached(
            key,
            lambda: recommend(
                bundle, c.user_id, c.k, c.filters, c.explain, c.offset, c.new_ratings
            ),
        )

    def recommend_one(self, bundle: Bundle, call: RecommendCall) -> RankedList:
        c = call
        return self.recommend(bundle, c.user_id, c.k, c.filters, c.explain, c.offset)

    def recommend_many(self, bundle: Bundle, calls: Sequence[RecommendCall]) -> list[Outcome]:
        self.overlay.refresh()
        asks = [self._recommend_ask(bundle, c) for c in calls]
        return self._many(asks, lambda todo: recommend_many(bundle, todo))

    def _recommend_ask(self, bundle: Bundle, call: RecommendCall) -> tuple[Hashable, RecommendCall]:
        """The call's cache key and the call with the user's new ratings."""
        fresh = self.overlay.ratings_of(call.user_id)
        # New ratings change the answer, so they are part of the key.
        key = (
            bundle.version,
            call.user_id,
            call.filters.key(),
            call.k,
            call.offset,
            call.explain,
            tuple(fresh.items()),
        )
        return key, dataclasses.replace(call, new_ratings=fresh)

    def similar(
        self,
        bundle: Bundle,
        book_id: str,
        k: int,
        mode: SimilarMode,
        weight: float,
        filters: Filters,
        explain: bool,
    ) -> RankedList:
        c = SimilarCall(book_id, k, mode, weight, filters, explain)
        return self._cached(
            _similar_key(bundle, c),
            lambda: similar(bundle, book_id, k, mode, weight, filters, explain),
        )

    def similar_one(self, bundle: Bundle, call: SimilarCall) -> RankedList:
        c = call
        return self.similar(bundle, c.book_id, c.k, c.mode, c.weight, c.filters, c.explain)

    def similar_many(self, bundle: Bundle, calls: Sequence[SimilarCall]) -> list[Outcome]:
        asks = [(_similar_key(bundle, c), c) for c in calls]
        return self._many(asks, lambda todo: similar_many(bundle, todo))

    def cold_start(
        self,
        bundle: Bundle,
        favourite_subjects: Sequence[str],
        popularity_weight: float | None,
        k: int,
        filters: Filters,
        explain: bool,
    ) -> RankedList:
        call = ColdStartCall(tuple(favourite_subjects), popularity_weight, k, filters, explain)
        key, c = _cold_ask(bundle, call)
        return self._cached(
            key,
            lambda: cold_start(
                bundle, c.favourite_subjects, c.popularity_weight, c.k, c.filters, c.explain
            ),
        )

    def cold_start_one(self, bundle: Bundle, call: ColdStartCall) -> RankedList:
        c = call
        return self.cold_start(
            bundle, c.favourite_subjects, c.popularity_weight, c.k, c.filters, c.explain
        )

    def cold_start_many(self, bundle: Bundle, calls: Sequence[ColdStartCall]) -> list[Outcome]:
        asks = [_cold_ask(bundle, c) for c in calls]
        return self._many(asks, lambda todo: cold_start_many(bundle, todo))

    def _cached(self, key: Hashable, compute: Callable[[], RankedList]) -> RankedList:
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        ranked = compute()
        self.cache.put(key, ranked)
        return ranked

    def _many(
        self,
        asks: list[tuple[Hashable, C]],
        compute: Callable[[list[C]], list[Outcome]],
    ) -> list[Outcome]:
        """The cached calls from the cache, the others computed together and cached."""
        out: list[Outcome | None] = [self.cache.get(key) for key, _ in asks]
        todo = [i for i, hit in enumerate(out) if hit is None]
        if todo:
            for i, outcome in zip(todo, compute([asks[i][1] for i in todo]), strict=True):
                if isinstance(outcome, RankedList):
                    self.cache.put(asks[i][0], outcome)
                out[i] = outcome
        return [o for o in out if o is not None]


def _similar_key(bundle: Bundle, c: SimilarCall) -> Hashable:
    return (bundle.version, "similar", c.book_id, c.k, c.mode, c.weight, c.filters.key(), c.explain)


def _cold_ask(bundle: Bundle, call: ColdStartCall) -> tuple[Hashable, ColdStartCall]:
    """The call's cache key, and the call with its subjects in order (the key's order)."""
    subjects = tuple(sorted(call.favourite_subjects))
    c = dataclasses.replace(call, favourite_subjects=subjects)
    key = (bundle.version, "cold", subjects, c.popularity_weight, c.k, c.filters.key(), c.explain)
    return key, c
