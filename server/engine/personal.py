"""Recommend as served: new ratings from the feedback log, the result cache, the pipeline.

The handler calls ``Personal.recommend``; everything about where ratings come
from and what may be reused lives here, so the handler stays validate -> call ->
reply and the pipeline (server/engine/recommend.py) stays a pure function of a
bundle and its inputs.
"""

from __future__ import annotations

from server.engine.bundle import Bundle
from server.engine.cache import LruCache
from server.engine.foldin import RatingsOverlay
from server.engine.recommend import recommend
from server.engine.types import Filters, RankedList


class Personal:
    def __init__(self, overlay: RatingsOverlay, cache_size: int) -> None:
        self.overlay = overlay
        self.cache: LruCache[RankedList] = LruCache(cache_size)

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
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        ranked = recommend(bundle, user_id, k, filters, explain, offset, fresh)
        self.cache.put(key, ranked)
        return ranked
