"""Books similar to one book: ALS co-reading, subject content, or a weighted blend."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from server.engine.bundle import Bundle
from server.engine.ranking import allowed_mask, subject_scores, top_k
from server.engine.types import (
    Filters,
    RankedList,
    Reason,
    ReasonKind,
    Scored,
    SimilarMode,
    Source,
)

# ALS candidates fetched from the index before filters and blending.
ALS_CANDIDATES = 200


def _als_candidates(bundle: Bundle, item: int, n: int) -> npt.NDArray[np.int64]:
    query = np.ascontiguousarray(bundle.item_unit[item : item + 1])
    _, ids = bundle.item_index.search(query, min(n, bundle.n_books))
    found: npt.NDArray[np.int64] = ids[0][ids[0] >= 0]
    return found


def similar(
    bundle: Bundle,
    book_id: str,
    k: int,
    mode: SimilarMode,
    weight: float,
    filters: Filters,
    explain: bool,
) -> RankedList:
    item = bundle.book(book_id)
    if mode is not SimilarMode.SUBJECT and not bundle.item_in_als[item]:
        # Too few ratings for an ALS vector: content is all we know.
        mode, weight = SimilarMode.SUBJECT, 0.0
    mask = allowed_mask(bundle, filters)
    scores = np.full(bundle.n_books, -np.inf, dtype=np.float32)
    if mode is SimilarMode.ALS:
        n = max(ALS_CANDIDATES, 4 * k) if mask is None else bundle.n_books
        cand = _als_candidates(bundle, item, n + 1)
        scores[cand] = bundle.item_unit[cand] @ bundle.item_unit[item]
        scores[~np.asarray(bundle.item_in_als)] = -np.inf
        source = Source.ALS
    else:
        subj = subject_scores(bundle, bundle.subjects_of(item))
        if mode is SimilarMode.SUBJECT:
            scores = np.where(subj > 0, subj, -np.inf).astype(np.float32)
            source = Source.SUBJECT
        else:
            # Exact blend on the union of both candidate sets.
            cand = np.union1d(
                _als_candidates(bundle, item, max(ALS_CANDIDATES, 4 * k)), np.flatnonzero(subj)
            )
            als = bundle.item_unit[cand] @ bundle.item_unit[item]
            scores[cand] = weight * als + (1.0 - weight) * subj[cand]
            source = Source.HYBRID
    scores[item] = -np.inf
    if mask is not None:
        scores[~mask] = -np.inf
    page = top_k(scores, k)
    items = [
        Scored(int(i), float(scores[i]), n + 1, _reasons(bundle, item, int(i)) if explain else ())
        for n, i in enumerate(page)
    ]
    return RankedList(items, source)


def _reasons(bundle: Bundle, query: int, item: int) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    series = bundle.series[item]
    if series and series == bundle.series[query]:
        reasons.append(Reason(ReasonKind.SAME_SERIES, f"also in the series {series}", query))
    elif bundle.authors[item] == bundle.authors[query]:
        reasons.append(
            Reason(ReasonKind.SAME_AUTHOR, f"also by {bundle.authors[item]}", related_item=query)
        )
    if bundle.item_in_als[item] and bundle.item_in_als[query]:
        reasons.append(
            Reason(
                ReasonKind.CO_READ,
                f"readers of {bundle.titles[query]} also read this",
                related_item=query,
            )
        )
    shared = np.intersect1d(bundle.subjects_of(query), bundle.subjects_of(item))
    if len(shared):
        s = int(shared[0])
        reasons.append(
            Reason(ReasonKind.SHARED_SUBJECT, f"also about {bundle.subject_names[s]}", subject=s)
        )
    return tuple(reasons)
