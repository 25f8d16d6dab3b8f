"""Recommend's list cut into pages: every page a slice of one list (issue 20).

The list is a head (the reranker's order of its candidates, the blended union, or
the first ``HEAD`` books by ALS or cold start), then, tier by tier, the books of the
base order (ALS; the blend, then ALS as ``blended.to_depth`` scores it; or cold
start) asked ``TIERS`` deep that the list does not hold yet. A page climbs only as
many tiers as it reaches, and each tier is asked at its fixed depth whatever the page:
so every page holds what one large page holds at those places, no book twice and none
skipped, and a first page costs what it did (the base order asked about as deep).

Before, each page asked the base order as deep as it reached (an approximate index
answers a deeper search with other books), and a page past the reranked head was
the plain ALS order from its first book: a page across the head's end repeated
books shown before and skipped others, and the page ending at it said the list had
ended (300 books).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from server.limits import MAX_K, MAX_RECOMMEND_DEPTH

I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
Ranked = tuple[npt.NDArray[np.integer], npt.NDArray[np.floating]]

# The head of a list no reranker orders: most first pages' worth, and no deeper than
# those pages asked before (cold start asks its index 200 deep for up to 50 books).
HEAD = 32
# The depths of the tiers after the head: the last one past the deepest page (the
# handler ends lists at MAX_RECOMMEND_DEPTH), so every page ends within the list.
DEPTH = MAX_RECOMMEND_DEPTH + 1
TIERS = (4 * MAX_K, DEPTH)


def cut(
    head: Ranked, full: bool, base: Callable[[int], Ranked], offset: int, end: int
) -> tuple[I32, F32, bool]:
    """Books ``offset .. end`` of the list (``head``, then each tier: ``base(depth)``
    less the books already listed), their scores, and whether the list goes on.
    ``full``: the head was cut at its size, so books may follow it (False: it holds
    every book there is); ``base(depth)``: the first ``depth`` books of the base order
    and their scores."""
    items, scores = np.asarray(head[0], dtype=np.int32), np.asarray(head[1], dtype=np.float32)
    for tier in TIERS:
        if end < len(items) or not full:
            break
        if tier <= len(items):
            continue
        # Past the handler's deepest page only when the engine is asked directly.
        depth = max(tier, end + 1) if tier == DEPTH else tier
        more, more_scores = base(depth)
        keep = ~np.isin(more, items)
        items = np.concatenate([items, np.asarray(more, dtype=np.int32)[keep]])
        scores = np.concatenate([scores, np.asarray(more_scores, dtype=np.float32)[keep]])
        full = len(more) >= depth
    return items[offset:end], scores[offset:end], len(items) > end
