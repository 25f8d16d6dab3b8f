"""A small LRU of finished result lists, keyed by model version among the rest.

Keys carry the model version, so a swap never serves a stale list: the old
version's entries are simply never asked for again and age out. Thread-safe;
requests run in worker threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from server import metrics

V = TypeVar("V")


class LruCache(Generic[V]):
    def __init__(self, capacity: int, name: str = "") -> None:
        """``name``: its ``cache`` label in bookrec_cache_lookups_total ("": not counted)."""
        self.capacity = capacity
        self._hit = metrics.CACHE_LOOKUPS.labels(cache=name, result="hit") if name else None
        self._miss = metrics.CACHE_LOOKUPS.labels(cache=name, result="miss") if name else None
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                if self._miss is not None:
                    self._miss.inc()
                return None
            self._items.move_to_end(key)
            self.hits += 1
            if self._hit is not None:
                self._hit.inc()
            return value

    def put(self, key: Hashable, value: V) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
