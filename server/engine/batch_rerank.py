"""The reranker for a batch of users: one feature block (bookrec/rerank_block.py), one
predict of the compiled trees over every row, each user's candidates reordered as
``Reranker.rank`` orders them (the trees score each row on its own, so a row's
score does not depend on the rows beside it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bookrec.rerank_block import compute_block
from server.engine.models import Reranker, SubjectSpace

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class RankAsk:
    """One call's ``reranker.rank(space, user, history, cand, scores, als, item_item)``."""

    user: int
    history: I32
    cand: I32
    scores: F32
    als_scores: F32
    item_item_scores: F32


def rank_many(
    reranker: Reranker, space: SubjectSpace, asks: Sequence[RankAsk]
) -> list[tuple[I32, F32]]:
    """``[reranker.rank(space, a.user, ...) for a in asks]``."""
    if not asks:
        return []
    users = [reranker.context(space, a.user, a.history) for a in asks]
    x = compute_block(
        reranker.table,
        users,
        [a.cand for a in asks],
        [a.scores for a in asks],
        [a.als_scores for a in asks],
        [a.item_item_scores for a in asks],
    )
    pred = reranker.predict(x).astype(np.float32) if len(x) else np.zeros(0, np.float32)
    sizes = np.array([len(a.cand) for a in asks], dtype=np.int64)
    seg = np.repeat(np.arange(len(asks)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    place = np.arange(len(pred)) - starts[seg]
    # Within each user: by descending score, ties by candidate position (Reranker.rank).
    order = np.lexsort((place, -pred, seg))
    out = []
    for a, start, size in zip(asks, starts.tolist(), sizes.tolist(), strict=True):
        mine = order[start : start + size] - start
        out.append((a.cand[mine], pred[order[start : start + size]]))
    return out
