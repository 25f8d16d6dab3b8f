"""Recommend for a batch of calls on one bundle: what ``recommend`` answers each call,
with the heavy steps done once for the batch.

Per call, as ``recommend`` does it: the user's vector (trained, or folded in with new
ratings), rated books and filter mask. For the batch: the retrieval search
(batch_retrieval.py) or the ALS + item-item blend (batch_blended.py), then one
reranker pass over every reranked call's candidates (batch_rerank.py). Per call
again: its page, reasons and ``has_more``. A user the model cannot place (no
vector: the cold-start answer) is answered by ``recommend`` itself.

The page logic mirrors ``recommend._page`` step for step, and cuts each page from
the list by the same functions (``als_page``, ``blended_page``: listing.py);
tests/test_batch_engine.py holds the two to the same lists and scores over many
users, k, offsets, filters, new ratings and batch sizes. A change there must be made
here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.engine.batch_blended import blended_many
from server.engine.batch_rerank import RankAsk, rank_many
from server.engine.batch_retrieval import CandidateAsk, candidates_many
from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask, allowed_mask
from server.engine.recommend import (
    _explain,
    _new_user_vector,
    _user_vector,
    als_page,
    blended_page,
    head_size,
    recommend,
    shrinks,
)
from server.engine.types import Filters, RankedList, Scored, Source

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class RecommendCall:
    """The arguments of one ``recommend`` call."""

    user_id: str
    k: int
    filters: Filters
    explain: bool
    offset: int = 0
    new_ratings: Mapping[str, int] | None = None


@dataclass(frozen=True)
class _Placed:
    """A call whose user has a vector: what its page is computed from."""

    call: RecommendCall
    user: int | None  # None: a user the model does not know, folded in
    vector: F32
    rated: I32
    mask: BoolMask | None

    @property
    def end(self) -> int:
        return self.call.offset + self.call.k


@dataclass(frozen=True)
class _Page:
    items: I32
    scores: F32
    source: Source
    has_more: bool


def recommend_many(bundle: Bundle, calls: Sequence[RecommendCall]) -> list[RankedList | Exception]:
    """``recommend(bundle, c.user_id, c.k, c.filters, c.explain, c.offset, c.new_ratings)``
    for each call, or the exception that call raises (one call's bad input fails only
    that call)."""
    out: list[RankedList | Exception | None] = [None] * len(calls)
    placed: list[tuple[int, _Placed]] = []
    for i, call in enumerate(calls):
        try:
            where = _place(bundle, call)
            if where is None:
                out[i] = _alone(bundle, call)
            else:
                placed.append((i, where))
        except Exception as e:  # that call's answer (INVALID_ARGUMENT, NOT_FOUND, a bug)
            out[i] = e
    pages = _pages(bundle, [p for _, p in placed])
    for (i, p), page in zip(placed, pages, strict=True):
        out[i] = _listed(bundle, p, page)
    return [r for r in out if r is not None]


def _alone(bundle: Bundle, c: RecommendCall) -> RankedList:
    return recommend(bundle, c.user_id, c.k, c.filters, c.explain, c.offset, c.new_ratings)


def _place(bundle: Bundle, call: RecommendCall) -> _Placed | None:
    """``recommend``'s first steps; None when its user gets the cold-start answer."""
    fresh: dict[int, int] = {}
    for book_id, rating in (call.new_ratings or {}).items():
        row = bundle.book_row.get(book_id)
        if row is not None:
            fresh[row] = rating
    user = bundle.user_row.get(call.user_id)
    if user is None and shrinks(bundle, fresh):
        return None  # server/engine/new_user.py, through ``recommend``
    if user is None:
        vector = _new_user_vector(bundle, fresh) if bundle.new_user_foldin else None
        if vector is None:
            return None
        rated = np.array(sorted(fresh), dtype=np.int32)
    else:
        vector, rated = _user_vector(bundle, user, fresh)
    return _Placed(call, user, vector, rated, allowed_mask(bundle, call.filters))


def _pages(bundle: Bundle, placed: Sequence[_Placed]) -> list[_Page]:
    """``recommend._page`` for each placed call."""
    if not placed:
        return []
    if bundle.item_item is None:
        return _als_pages(bundle, placed)
    return _blended_pages(bundle, placed)


def _reranked(bundle: Bundle, p: _Placed) -> bool:
    return bundle.reranker is not None and p.user is not None


def _als_pages(bundle: Bundle, placed: Sequence[_Placed]) -> list[_Page]:
    reranker = bundle.reranker
    reranked = [_reranked(bundle, p) for p in placed]
    depths = [head_size(bundle, p.user) for p in placed]
    asks = [CandidateAsk(p.vector, n, p.rated, p.mask) for p, n in zip(placed, depths, strict=True)]
    found = candidates_many(bundle, asks)
    # A page past the head needs only its books, not their order (``recommend._page``).
    reranked = [
        r and p.call.offset < len(pool[0])
        for p, pool, r in zip(placed, found, reranked, strict=True)
    ]
    rank_asks = [
        RankAsk(p.user if p.user is not None else -1, p.rated, c, s, s, np.zeros_like(s))
        for p, (c, s), r in zip(placed, found, reranked, strict=True)
        if r
    ]
    ranks = iter(rank_many(reranker, bundle.subjects, rank_asks) if reranker else [])
    out = []
    for p, pool, n, r in zip(placed, found, depths, reranked, strict=True):
        head = next(ranks) if r else pool
        c = p.call
        page = als_page(bundle, p.vector, p.rated, p.mask, pool, n, head, r, c.offset, c.k)
        out.append(_Page(*page))
    return out


def _blended_pages(bundle: Bundle, placed: Sequence[_Placed]) -> list[_Page]:
    model, reranker = bundle.item_item, bundle.reranker
    assert model is not None
    ranked = blended_many(
        bundle, model, [CandidateAsk(p.vector, 0, p.rated, p.mask) for p in placed]
    )
    tops = [min(reranker.candidates, len(r.items)) if reranker else 0 for r in ranked]
    reranked = [
        _reranked(bundle, p) and p.call.offset < t for p, t in zip(placed, tops, strict=True)
    ]
    rank_asks = [
        RankAsk(
            p.user if p.user is not None else -1,
            p.rated,
            r.items[:t],
            r.scores[:t],
            r.als[:t],
            r.item_item[:t],
        )
        for p, r, t, on in zip(placed, ranked, tops, reranked, strict=True)
        if on
    ]
    ranks = iter(rank_many(reranker, bundle.subjects, rank_asks) if reranker else [])
    out = []
    for p, r, on in zip(placed, ranked, reranked, strict=True):
        c = p.call
        head = next(ranks) if on else None
        page = blended_page(bundle, model, p.vector, p.rated, p.mask, r, head, c.offset, c.k)
        out.append(_Page(*page))
    return out


def _listed(bundle: Bundle, p: _Placed, page: _Page) -> RankedList:
    """``recommend``'s last step: the page as scored items with their reasons."""
    reasons = _explain(bundle, p.rated, page.items) if p.call.explain else {}
    offset = p.call.offset
    items = [
        Scored(int(i), float(s), offset + n + 1, reasons.get(int(i), ()))
        for n, (i, s) in enumerate(zip(page.items, page.scores, strict=True))
    ]
    return RankedList(items, page.source, has_more=page.has_more)
