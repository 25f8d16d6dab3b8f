"""Recommendations without history: favourite subjects blended with the popularity prior.

score = (1 - w) * cosine(pooled favourite subjects, book subject vector)
        + w * popularity prior (rescaled to [0, 1]),
with the trained subject pooling and w the request's popularity weight (unset:
the weight the trainer found best on held-out cold users). This is exactly the
``subject+prior`` strategy of the trainer's evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask, allowed_mask, top_k
from server.engine.types import Filters, RankedList, Reason, ReasonKind, Scored, Source

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
# Candidates taken from each ordered list at first by the threshold algorithm.
THRESHOLD_START = 200


def cold_start(
    bundle: Bundle,
    favourite_subjects: Sequence[str],
    popularity_weight: float | None,
    k: int,
    filters: Filters,
    explain: bool,
) -> RankedList:
    subjects = np.array(sorted({bundle.subject(s) for s in favourite_subjects}), dtype=np.int32)
    prior = bundle.prior01
    w = bundle.cold_start_weight if popularity_weight is None else popularity_weight
    mask = allowed_mask(bundle, filters)
    if len(subjects) == 0:
        scores = prior.copy()
        source = Source.POPULARITY
        if mask is not None:
            scores[~mask] = -np.inf
        page = top_k(scores, k)
        page_scores = scores[page]
    else:
        user = bundle.subjects.user_vector(subjects.tolist())
        page, page_scores = _best_blend(bundle, user, w, k, mask)
        source = Source.COLD_START
    wanted = set(subjects.tolist())
    items = []
    for n, (i, score) in enumerate(zip(page.tolist(), page_scores.tolist(), strict=True)):
        reasons: tuple[Reason, ...] = ()
        if explain:
            matched = [s for s in bundle.subjects_of(i).tolist() if s in wanted]
            reasons = tuple(
                Reason(
                    ReasonKind.FAVOURITE_SUBJECT,
                    f"matches your favourite subject {bundle.subject_names[s]}",
                    subject=s,
                )
                for s in matched[:2]
            ) or (Reason(ReasonKind.POPULAR, "popular with readers"),)
        items.append(Scored(i, score, n + 1, reasons))
    return RankedList(items, source)


def _best_blend(
    bundle: Bundle, user: F32, w: float, k: int, mask: BoolMask | None
) -> tuple[I64, F32]:
    """The k best blended books and their scores, without scoring the whole catalogue
    (Fagin's threshold algorithm): take the top n by subject similarity (subject index)
    and the top n by prior; no book outside both lists can beat
    ``(1 - w) * sim_n + w * prior_n``, so once k candidates score at least that, they
    are the answer. Otherwise n grows, up to an exact scan. Exact when the subject
    index is flat, as good as its recall when IVF."""
    n = max(THRESHOLD_START, 4 * k)
    query = np.ascontiguousarray(user[None, :], dtype=np.float32)
    while n < bundle.n_books // 4:
        sims, by_sim = bundle.subject_index.search(query, n)
        by_prior = bundle.prior_order[:n]
        cand = np.union1d(by_sim[0][by_sim[0] >= 0], by_prior)
        if mask is not None:
            cand = cand[mask[cand]]
        blended = _blend(bundle, user, w, cand)
        best = top_k(blended, k)
        bound = (1.0 - w) * float(sims[0][-1]) + w * float(bundle.prior01[by_prior[-1]])
        if len(best) == k and blended[best[-1]] >= bound:
            return cand[best], blended[best]
        n *= 4
    every = np.arange(bundle.n_books) if mask is None else np.flatnonzero(mask)
    blended = _blend(bundle, user, w, every)
    best = top_k(blended, k)
    return every[best], blended[best]


def _blend(bundle: Bundle, user: F32, w: float, rows: npt.NDArray[np.integer[Any]]) -> F32:
    sim = np.asarray(bundle.subjects.book_vectors[rows] @ user, dtype=np.float32)
    out: F32 = ((1.0 - w) * sim + w * bundle.prior01[rows]).astype(np.float32)
    return out
