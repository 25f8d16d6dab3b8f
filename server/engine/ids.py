"""External id -> row lookups without a Python object per id.

A bundle of 300k books and 100k users used to build two dicts of 400k entries
while it loaded; that Python work held the GIL in long stretches while the
worker was serving (requests in swap windows waited for it). ``IdIndex`` keeps
the ids as one sorted fixed-width bytes array (a few numpy calls to build) and
finds a row by binary search: microseconds a lookup, and lookups are a handful
per request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt

from bookrec.artifact import StringColumn


class IdIndex(Mapping[str, int]):
    def __init__(self, column: StringColumn) -> None:
        keys = column.fixed_width()
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        self._width = keys.dtype.itemsize

    def get(self, key: str, default: int | None = None) -> int | None:  # type: ignore[override]
        raw = key.encode("utf-8")
        if len(raw) > self._width or len(self._sorted) == 0:
            return default
        pos = int(np.searchsorted(self._sorted, raw))
        if pos < len(self._sorted) and self._sorted[pos] == raw:
            return int(self._order[pos])
        return default

    def __getitem__(self, key: str) -> int:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return (raw.decode("utf-8") for raw in self._sorted.tolist())

    def __len__(self) -> int:
        return len(self._sorted)


def group_ids(column: StringColumn, none: str = "") -> npt.NDArray[np.int32]:
    """1-based ids per distinct value, 0 for empty and ``none``: the same equality as
    bookrec.rerank_features.dense_ids (all the features use), from numpy alone."""
    keys = column.fixed_width()
    _, inverse = np.unique(keys, return_inverse=True)
    out = (inverse.reshape(-1) + 1).astype(np.int32)
    out[(keys == b"") | (keys == none.encode("utf-8"))] = 0
    return out
