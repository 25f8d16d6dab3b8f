"""Recommend's list when the item-item model is served: ALS and item-item blended.

The procedure the trainer evaluates (trainer/evaluation/lists.py ``candidate_pool``
and ``blend_lists``), on one user:

1. ALS: the top ``n`` books by ``x_u . y_i`` (retrieval.candidates, with its
   exclusions and the filters' mask);
2. item-item: the top ``n`` books by the summed rows of everything the user
   rated (bookrec/blend.py ``item_item_scores``), minus what they rated and books
   outside the mask or without an ALS vector;
3. on the union (ascending), both scores exactly, ``blend.blend`` of them, best
   first with ties by book row (ranking.top_k).

Beyond the union (pages past ``2n`` books at most) the list continues in ALS
order, scored as the blend scores a book item-item does not reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bookrec import blend
from server.engine.bundle import Bundle
from server.engine.models import ItemItem
from server.engine.ranking import BoolMask, in_sorted, top_k
from server.engine.retrieval import candidates

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class BlendedList:
    items: I32  # the union of both sources' top n, best first
    scores: F32  # their blended scores
    als_scale: float  # largest |ALS score| on the union (what blend divides ALS by)
    als: F32  # their ALS scores, for the reranker's features
    item_item: F32  # their item-item scores (0 where it reaches none), likewise


def blended(
    bundle: Bundle, model: ItemItem, vector: F32, rated: I32, mask: BoolMask | None
) -> BlendedList:
    """The blended ranking of one user's candidate union; ``rated``: sorted, never listed,
    and the item-item seeds."""
    als_top, _ = candidates(bundle, vector, model.candidates, rated, mask)
    books, scores = blend.item_item_scores(model.indptr, model.indices, model.weights, rated)
    return blend_sources(bundle, model, vector, rated, mask, als_top, (books, scores))


def blend_sources(
    bundle: Bundle,
    model: ItemItem,
    vector: F32,
    rated: I32,
    mask: BoolMask | None,
    als_top: I32,
    reached: tuple[I32, F32],
) -> BlendedList:
    """``blended`` once both sources have answered: ALS's top ``n`` (``als_top``) and the
    books the rated rows reach with their summed weights (``reached``). The batched path
    (batch_blended.py) asks both for many users at once, then finishes each here."""
    n = model.candidates
    books, scores = reached
    keep = ~in_sorted(books, rated) & np.asarray(bundle.item_in_als)[books]
    if mask is not None:
        keep &= mask[books]
    books, scores = books[keep], scores[keep]
    ii_top = books[top_k(scores, n)]
    union = np.union1d(als_top, ii_top).astype(np.int32)
    als = np.asarray(bundle.item_factors[union] @ vector, dtype=np.float32)
    ii = blend.lookup(books, scores, union)
    mixed = blend.blend(als, ii, model.weight)
    order = top_k(mixed, len(union))
    scale = float(np.max(np.abs(als))) if len(als) else 0.0
    return BlendedList(union[order], mixed[order], scale, als[order], ii[order])


def to_depth(
    bundle: Bundle,
    model: ItemItem,
    ranked: BlendedList,
    vector: F32,
    rated: I32,
    mask: BoolMask | None,
    depth: int,
) -> tuple[I32, F32]:
    """The first ``depth`` books of the served list: the blended union, then (only when
    ``depth`` reaches past it) the best remaining books by ALS."""
    if depth <= len(ranked.items):
        return ranked.items[:depth], ranked.scores[:depth]
    seen = np.union1d(rated, ranked.items).astype(np.int32)
    rest, als = candidates(bundle, vector, depth - len(ranked.items), seen, mask)
    scale = ranked.als_scale if ranked.als_scale > 0 else 1.0
    tail = (model.weight * als / scale).astype(np.float32)
    return np.concatenate([ranked.items, rest]), np.concatenate([ranked.scores, tail])
