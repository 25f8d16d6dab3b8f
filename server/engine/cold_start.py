"""Recommendations without history: favourite subjects blended with the popularity prior.

score = (1 - w) * cosine(subject vector of the favourites, book subject vector)
        + w * popularity prior, with w the request's popularity weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.engine.bundle import Bundle
from server.engine.ranking import allowed_mask, subject_scores, top_k
from server.engine.types import Filters, RankedList, Reason, ReasonKind, Scored, Source


def cold_start(
    bundle: Bundle,
    favourite_subjects: Sequence[str],
    popularity_weight: float,
    k: int,
    filters: Filters,
    explain: bool,
) -> RankedList:
    subjects = np.array(sorted({bundle.subject(s) for s in favourite_subjects}), dtype=np.int32)
    prior = np.asarray(bundle.popularity, dtype=np.float32)
    if len(subjects) == 0:
        scores = prior.copy()
        source = Source.POPULARITY
    else:
        sim = subject_scores(bundle, subjects)
        scores = (1.0 - popularity_weight) * sim + popularity_weight * prior
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
