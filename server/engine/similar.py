"""Books similar to one book: ALS co-reading, subject content, or a weighted blend."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from server.engine.bundle import Bundle
from server.engine.ranking import allowed_mask, search, subject_scores, top_k
from server.engine.types import (
    Filters,
    RankedList,
    Reason,
    ReasonKind,
    Scored,
    SimilarMode,
    Source,
)

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]

# Candidates fetched from each index before filters and blending.
CANDIDATES = 200


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
    # With filters, every row is a candidate: an index's top rows may all be filtered out.
    n = min(bundle.n_books, max(CANDIDATES, 4 * k) + 1 if mask is None else bundle.n_books)
    als_query = bundle.unit([item])[0]
    subject_query = bundle.subjects.book_vectors[item]
    if mode is SimilarMode.SUBJECT and not subject_query.any():
        # No learned subject vector (the book was not in the training split): its listed
        # subjects still say what it is about.
        scores = subject_scores(bundle, bundle.subjects_of(item))
        cand = np.flatnonzero(scores > 0)
        values = scores[cand]
        source = Source.SUBJECT
    else:
        cand = np.empty(0, dtype=np.int64)
        if mode is not SimilarMode.SUBJECT:
            cand = search(bundle.item_index, als_query, n)
        if mode is not SimilarMode.ALS:
            cand = np.union1d(cand, search(bundle.subject_index, subject_query, n))
        cand = np.unique(cand)  # ascending ids: ties go to the lower id, as everywhere
        if mode is not SimilarMode.SUBJECT:
            cand = cand[np.asarray(bundle.item_in_als)[cand]]
        # Exact scores on the union of both indexes' candidates; a zero weight's part
        # is not computed.
        w = {SimilarMode.ALS: 1.0, SimilarMode.SUBJECT: 0.0}.get(mode, weight)
        values = np.zeros(len(cand), dtype=np.float32)
        if w > 0:
            values = w * np.asarray(bundle.unit(cand) @ als_query, dtype=np.float32)
        if w < 1:
            subj = np.asarray(bundle.subjects.book_vectors[cand] @ subject_query, np.float32)
            values = values + (1.0 - w) * subj
        source = {
            SimilarMode.ALS: Source.ALS,
            SimilarMode.SUBJECT: Source.SUBJECT,
            SimilarMode.HYBRID: Source.HYBRID,
        }[mode]
    # Co-reading explains a list only when the ALS vectors ranked it.
    co_read = mode is SimilarMode.ALS or (mode is SimilarMode.HYBRID and weight > 0)
    keep = cand != item
    if mask is not None:
        keep &= mask[cand]
    cand, values = cand[keep], values[keep]
    best = top_k(values, k)
    page, scores = cand[best], values[best]
    items = [
        Scored(int(i), float(v), n + 1, _reasons(bundle, item, int(i), co_read) if explain else ())
        for n, (i, v) in enumerate(zip(page, scores, strict=True))
    ]
    return RankedList(items, source)


def _reasons(bundle: Bundle, query: int, item: int, co_read: bool) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    series = bundle.series[item]
    if series and series == bundle.series[query]:
        reasons.append(Reason(ReasonKind.SAME_SERIES, f"also in the series {series}", query))
    elif bundle.authors[item] == bundle.authors[query]:
        reasons.append(
            Reason(ReasonKind.SAME_AUTHOR, f"also by {bundle.authors[item]}", related_item=query)
        )
    if co_read and bundle.item_in_als[item] and bundle.item_in_als[query]:
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
