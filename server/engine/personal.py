"""The pipelines as served: new ratings from the feedback log, the result cache.

The handlers call ``Personal``; everything about where ratings come from and what
may be reused lives here, so a handler stays validate -> call -> reply and each
pipeline stays a pure function of a bundle and its inputs. Similar and ColdStart
depend on nothing but the model and the request, so their lists are cached too
(a book page or a subject picker asks the same questions over and over).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from server.engine.bundle import Bundle
from server.engine.cache import LruCache
from server.engine.cold_start import cold_start
from server.engine.foldin import RatingsOverlay
from server.engine.recommend import recommend
from server.engine.similar import similar
from server.engine.types import Filters, RankedList, SimilarMode


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
        fresh = self.overlay.ratings_of(user_id)
        # New ratings change the answer, so they are part of the key.
        key = (bundle.version, user_id, filters.key(), k, offset, explain, tuple(fresh.items()))
        return self._cached(
            key, lambda: recommend(bundle, user_id, k, filters, explain, offset, fresh)
        )

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
        key = (bundle.version, "similar", book_id, k, mode, weight, filters.key(), explain)
        return self._cached(
            key, lambda: similar(bundle, book_id, k, mode, weight, filters, explain)
        )

    def cold_start(
        self,
        bundle: Bundle,
        favourite_subjects: Sequence[str],
        popularity_weight: float | None,
        k: int,
        filters: Filters,
        explain: bool,
    ) -> RankedList:
        subjects = tuple(sorted(favourite_subjects))
        key = (bundle.version, "cold", subjects, popularity_weight, k, filters.key(), explain)
        return self._cached(
            key,
            lambda: cold_start(bundle, subjects, popularity_weight, k, filters, explain),
        )

    def _cached(self, key: Hashable, compute: Callable[[], RankedList]) -> RankedList:
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        ranked = compute()
        self.cache.put(key, ranked)
        return ranked
