"""Recommendations without history: favourite subjects blended with the popularity prior.

score = (1 - w) * cosine(pooled favourite subjects, book subject vector)
        + w * popularity prior (rescaled to [0, 1]),
with the trained subject pooling and w the request's popularity weight (unset:
the weight the trainer found best on held-out cold users). This is exactly the
``subject+prior`` strategy of the trainer's evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.engine.bundle import Bundle
from server.engine.ranking import allowed_mask, top_k
from server.engine.types import Filters, RankedList, Reason, ReasonKind, Scored, Source


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
    if len(subjects) == 0:
        scores = prior.copy()
        source = Source.POPULARITY
    else:
        user = bundle.subjects.user_vector(subjects.tolist())
        sim = np.asarray(bundle.subjects.book_vectors @ user, dtype=np.float32)
        scores = ((1.0 - w) * sim + w * prior).astype(np.float32)
        source = Source.COLD_START
    mask = allowed_mask(bundle, filters)
    if mask is not None:
        scores[~mask] = -np.inf
    page = top_k(scores, k)
    wanted = set(subjects.tolist())
    items = []
    for n, i in enumerate(page.tolist()):
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
        items.append(Scored(i, float(scores[i]), n + 1, reasons))
    return RankedList(items, source)
