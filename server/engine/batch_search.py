"""FAISS searches for a batch of queries at once, each answered as if searched alone.

A batch asks the index once (``nq`` = the batch) instead of once per call: one
Python-to-native crossing, and the inverted lists or flat rows a batch shares are
read once while they are in cache. Each call must still get exactly what
``index.search(query, k)`` would have given it, so:

- the queries go in chunks small enough that FAISS keeps its per-query kernels
  (``nq * d`` below ``distance_compute_blas_threshold``; above it a flat scan or
  IVF's coarse quantizer switches to BLAS, whose sums may differ in the last bit);
- calls that want different depths share one search only where depth does not
  change what a query scans (flat, and IVF over a flat quantizer): the batch asks
  for the deepest and each call keeps its first ``k``. HNSW's beam widens with
  ``k``, so there calls are grouped by ``k``;
- a call whose first ``k`` rows hold equal distances (duplicate vectors: a deeper
  search may order or cut ties differently) is searched again alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def search_many(index: Any, queries: F32, ks: Sequence[int]) -> list[tuple[F32, I64]]:
    """For each row i of ``queries``: (distances, ids) equal to
    ``index.search(queries[i : i + 1], ks[i])`` (first row of each)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    out: list[tuple[F32, I64] | None] = [None] * len(ks)
    groups: dict[int, list[int]] = defaultdict(list)
    depth_free = _depth_free(index)
    for i, k in enumerate(ks):
        groups[0 if depth_free else k].append(i)
    chunk = _chunk_rows(queries.shape[1])
    for rows in groups.values():
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            deepest = max(ks[i] for i in part)
            distances, ids = index.search(queries[part], deepest)
            for j, i in enumerate(part):
                d, found = distances[j, : ks[i]], ids[j, : ks[i]]
                if ks[i] < deepest and _ties(d, found, distances[j, ks[i]]):
                    d1, found1 = index.search(queries[i : i + 1], ks[i])
                    d, found = d1[0], found1[0]
                out[i] = (d, found)
    return [r for r in out if r is not None]


def _depth_free(index: Any) -> bool:
    """Whether asking deeper leaves a query's first rows as they were (no beam to widen)."""
    if isinstance(index, faiss.IndexFlat):
        return True
    if isinstance(index, faiss.IndexIVF):
        return isinstance(faiss.downcast_index(index.quantizer), faiss.IndexFlat)
    return False


def _chunk_rows(dim: int) -> int:
    """Queries per search that keep FAISS on its per-query kernels."""
    threshold = int(faiss.cvar.distance_compute_blas_threshold)
    return max(1, (threshold - 1) // max(dim, 1))


def _ties(distances: F32, ids: I64, next_distance: float) -> bool:
    """Equal distances among a call's rows, or at the row past its last: there a deeper
    search may have ordered or cut them otherwise than a search of its own depth."""
    valid = distances[ids >= 0]
    if len(valid) == 0:
        return False
    if len(valid) == len(distances) and valid[-1] == next_distance:
        return True
    return bool(np.any(valid[1:] == valid[:-1]))
