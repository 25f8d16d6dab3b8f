"""Books similar to one book: ALS co-reading, subject content, or a weighted blend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask, allowed_mask, search, subject_scores, top_k
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


@dataclass(frozen=True)
class SimilarAsk:
    """One Similar call once its book, mode and filters are resolved: what the indexes
    are asked (``als_query`` / ``subject_query``, ``n`` deep) and how it is answered."""

    item: int
    k: int
    mode: SimilarMode
    weight: float
    mask: BoolMask | None
    n: int
    als_query: F32
    subject_query: F32
    explain: bool
    co_read: bool  # Co-reading explains a list only when the ALS vectors ranked it.

    @property
    def by_content(self) -> bool:
        """No learned subject vector (the book was not in the training split): its listed
        subjects still say what it is about, and no index is asked."""
        return self.mode is SimilarMode.SUBJECT and not self.subject_query.any()

    @property
    def searches_als(self) -> bool:
        return not self.by_content and self.mode is not SimilarMode.SUBJECT

    @property
    def searches_subjects(self) -> bool:
        return not self.by_content and self.mode is not SimilarMode.ALS


def similar(
    bundle: Bundle,
    book_id: str,
    k: int,
    mode: SimilarMode,
    weight: float,
    filters: Filters,
    explain: bool,
) -> RankedList:
    ask = similar_ask(bundle, book_id, k, mode, weight, filters, explain)
    als = search(bundle.item_index, ask.als_query, ask.n) if ask.searches_als else None
    subject = (
        search(bundle.subject_index, ask.subject_query, ask.n) if ask.searches_subjects else None
    )
    return similar_answer(bundle, ask, als, subject)


def similar_ask(
    bundle: Bundle,
    book_id: str,
    k: int,
    mode: SimilarMode,
    weight: float,
    filters: Filters,
    explain: bool,
) -> SimilarAsk:
    """The call's first steps, before any index is asked (batch_similar.py asks them for
    a batch of calls at once)."""
    item = bundle.book(book_id)
    if mode is not SimilarMode.SUBJECT and not bundle.item_in_als[item]:
        # Too few ratings for an ALS vector: content is all we know.
        mode, weight = SimilarMode.SUBJECT, 0.0
    mask = allowed_mask(bundle, filters)
    # With filters, every row is a candidate: an index's top rows may all be filtered out.
    n = min(bundle.n_books, max(CANDIDATES, 4 * k) + 1 if mask is None else bundle.n_books)
    co_read = mode is SimilarMode.ALS or (mode is SimilarMode.HYBRID and weight > 0)
    return SimilarAsk(
        item,
        k,
        mode,
        weight,
        mask,
        n,
        bundle.unit([item])[0],
        bundle.subjects.book_vectors[item],
        explain,
        co_read,
    )


def similar_answer(
    bundle: Bundle, ask: SimilarAsk, als: I64 | None, subject: I64 | None
) -> RankedList:
    """The list, once the item index (``als``) and the subject index (``subject``) have
    answered the ask's queries (``ranking.search``; None: not asked)."""
    item, mode, weight, mask = ask.item, ask.mode, ask.weight, ask.mask
    if ask.by_content:
        scores = subject_scores(bundle, bundle.subjects_of(item))
        cand = np.flatnonzero(scores > 0)
        values = scores[cand]
        source = Source.SUBJECT
    else:
        cand = np.empty(0, dtype=np.int64)
        if als is not None:
            cand = als
        if subject is not None:
            cand = np.union1d(cand, subject)
        cand = np.unique(cand)  # ascending ids: ties go to the lower id, as everywhere
        if mode is not SimilarMode.SUBJECT:
            cand = cand[np.asarray(bundle.item_in_als)[cand]]
        # Exact scores on the union of both indexes' candidates; a zero weight's part
        # is not computed.
        w = {SimilarMode.ALS: 1.0, SimilarMode.SUBJECT: 0.0}.get(mode, weight)
        values = np.zeros(len(cand), dtype=np.float32)
        if w > 0:
            values = w * np.asarray(bundle.unit(cand) @ ask.als_query, dtype=np.float32)
        if w < 1:
            subj = np.asarray(bundle.subjects.book_vectors[cand] @ ask.subject_query, np.float32)
            values = values + (1.0 - w) * subj
        source = {
            SimilarMode.ALS: Source.ALS,
            SimilarMode.SUBJECT: Source.SUBJECT,
            SimilarMode.HYBRID: Source.HYBRID,
        }[mode]
    keep = cand != item
    if mask is not None:
        keep &= mask[cand]
    cand, values = cand[keep], values[keep]
    best = top_k(values, ask.k)
    page, scores = cand[best], values[best]
    items = [
        Scored(
            int(i),
            float(v),
            n + 1,
            _reasons(bundle, item, int(i), ask.co_read) if ask.explain else (),
        )
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
