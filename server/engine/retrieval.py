"""Recommend's candidates: the best-scoring books for one user vector.

Without filters the retrieval index answers (FAISS: exact flat up to 50k books,
IVF or HNSW above; see trainer/publish/indexes.py), asked for enough extra rows to
survive dropping what the user already rated, and its rows are rescored exactly.
With filters, or when the index comes back short, the allowed rows are scored
exactly: filters usually shrink the catalogue, so the exact path is then the
cheap one too.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask, in_sorted, top_k

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


def candidates(
    bundle: Bundle, vector: F32, n: int, exclude: I32, mask: BoolMask | None
) -> tuple[I32, F32]:
    """Up to ``n`` books by descending ALS score, never one in ``exclude`` (sorted) or
    outside ``mask`` or without an ALS vector; with their scores."""
    found = None
    if mask is None:
        _, ids = bundle.retrieval_index.search(
            np.ascontiguousarray(vector[None, :], dtype=np.float32),
            search_depth(bundle, n, exclude),
        )
        found = ids[0]
    return candidates_from(bundle, vector, n, exclude, mask, found)


def search_depth(bundle: Bundle, n: int, exclude: I32) -> int:
    """How deep ``candidates`` asks the retrieval index (enough to survive ``exclude``)."""
    return min(n + len(exclude), bundle.n_books)


def candidates_from(
    bundle: Bundle,
    vector: F32,
    n: int,
    exclude: I32,
    mask: BoolMask | None,
    found: npt.NDArray[np.int64] | None,
) -> tuple[I32, F32]:
    """``candidates`` once the retrieval index has answered: ``found``, its rows for
    ``vector`` asked ``search_depth`` deep (None with a mask: not searched). The batched
    path (batch_retrieval.py) searches for many calls at once, then finishes each here."""
    if found is not None:
        keep = (found >= 0) & ~in_sorted(found, exclude)
        keep[keep] &= np.asarray(bundle.item_in_als)[found[keep]]
        if keep.sum() >= n or n + len(exclude) >= bundle.n_books:
            # Exact scores: a quantised index only decides which rows come back.
            return _best_exact(bundle, vector, found[keep], n)
    allowed = np.asarray(bundle.item_in_als).copy()
    if mask is not None:
        allowed &= mask
    allowed[exclude] = False
    return _best_exact(bundle, vector, np.flatnonzero(allowed), n)


def _best_exact(
    bundle: Bundle, vector: F32, rows: npt.NDArray[np.int64], n: int
) -> tuple[I32, F32]:
    exact = np.asarray(bundle.item_factors[rows] @ vector, dtype=np.float32)
    best = top_k(exact, n)
    return rows[best].astype(np.int32), exact[best]
