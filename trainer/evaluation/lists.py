"""Top lists of the warm pipelines exactly as the server builds them.

ALS alone ranks by ``x_u . y_i``; with the item-item model the server takes the
top ``n`` of each source and blends them on their union (bookrec/blend.py).
``CandidatePool`` holds, per user, that union and both scores, so trying ten
blend weights costs one pass of retrieval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from bookrec import blend
from trainer.evaluation.protocol import BATCH, F32, I32, I64, K, top_lists


@dataclass(frozen=True)
class CandidatePool:
    items: list[I32]  # per user: the union of both sources' top n, ascending
    als: list[F32]  # ALS score of each
    item_item: list[F32]  # item-item score of each (0 when it reaches none)


def candidate_pool(
    user_factors: F32,
    item_factors: F32,
    item_item: sp.csr_matrix,
    users: I32,
    rated: sp.csr_matrix,
    n: int,
) -> CandidatePool:
    """``rated``: users x items, the books each user rated (never candidates)."""
    als_top = top_lists(lambda b: user_factors[b] @ item_factors.T, users, rated, k=n)
    # Summing W's rows over what each user rated is one sparse product per batch; in
    # float64, as bookrec/blend.item_item_scores sums them, so both round alike.
    weights = item_item.astype(np.float64)
    items, als, ii = [], [], []
    for start in range(0, len(users), BATCH):
        batch = users[start : start + BATCH]
        reached = sp.csr_matrix(rated[batch], dtype=np.float64) @ weights
        reached.sort_indices()
        for row, u in enumerate(batch.tolist()):
            seen = rated.indices[rated.indptr[u] : rated.indptr[u + 1]]
            lo, hi = reached.indptr[row], reached.indptr[row + 1]
            books = reached.indices[lo:hi].astype(np.int32)
            scores = reached.data[lo:hi].astype(np.float32)
            fresh = ~np.isin(books, seen)
            books, scores = books[fresh], scores[fresh]
            best = books[_top(scores, n)]
            top = als_top[start + row]
            cand = np.union1d(top[top >= 0], best).astype(np.int32)
            items.append(cand)
            als.append((item_factors[cand] @ user_factors[u]).astype(np.float32))
            ii.append(blend.lookup(books, scores, cand))
    return CandidatePool(items, als, ii)


def _top(scores: F32, n: int) -> npt.NDArray[np.int64]:
    if len(scores) <= n:
        return np.arange(len(scores))
    return np.argpartition(-scores, n - 1)[:n]


def ranked(items: I32, scores: F32, k: int) -> I32:
    """Best first; ties by book row, as the server's top_k orders them."""
    order = np.lexsort((items, -scores))[:k]
    out: I32 = items[order]
    return out


def blend_lists(pool: CandidatePool, weight: float, k: int = K) -> I64:
    """Each user's top ``k`` by the served blend at ``weight``; -1 padded."""
    out = np.full((len(pool.items), k), -1, dtype=np.int64)
    for row, (cand, a, ii) in enumerate(zip(pool.items, pool.als, pool.item_item, strict=True)):
        best = ranked(cand, blend.blend(a, ii, weight), k)
        out[row, : len(best)] = best
    return out


def blend_scores(pool: CandidatePool, weight: float, n: int) -> tuple[I64, F32]:
    """Each user's top ``n`` candidates and blended scores (the reranker's input)."""
    items = np.full((len(pool.items), n), -1, dtype=np.int64)
    scores = np.zeros((len(pool.items), n), dtype=np.float32)
    for row, (cand, a, ii) in enumerate(zip(pool.items, pool.als, pool.item_item, strict=True)):
        s = blend.blend(a, ii, weight)
        order = np.lexsort((cand, -s))[:n]
        items[row, : len(order)] = cand[order]
        scores[row, : len(order)] = s[order]
    return items, scores
