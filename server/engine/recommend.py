"""Warm-user recommendations: ALS scores over every book, minus what the user rated."""

from __future__ import annotations

from collections import Counter

import numpy as np

from server.engine.bundle import Bundle
from server.engine.ranking import allowed_mask, top_k
from server.engine.types import Filters, RankedList, Reason, ReasonKind, Scored, Source


def recommend(
    bundle: Bundle, user_id: str, k: int, filters: Filters, explain: bool, offset: int = 0
) -> RankedList:
    user = bundle.user(user_id)
    scores = bundle.item_factors @ bundle.user_factors[user]
    scores[~np.asarray(bundle.item_in_als)] = -np.inf
    rated = bundle.rated_items(user)
    scores[rated] = -np.inf
    mask = allowed_mask(bundle, filters)
    if mask is not None:
        scores[~mask] = -np.inf
    source = Source.ALS
    if bundle.reranker is not None and offset + k <= bundle.reranker.candidates:
        # Pages deeper than the candidate list fall back to plain ALS order.
        cand = top_k(scores, bundle.reranker.candidates).astype(np.int32)
        best, final = bundle.reranker.rank(
            bundle.subjects, user, rated, cand, scores[cand].astype(np.float32)
        )
        score_of = dict(zip(best.tolist(), final.tolist(), strict=True))
        source = Source.ALS_RERANKED
    else:
        best = top_k(scores, offset + k + 1).astype(np.int32)
        score_of = {int(i): float(scores[i]) for i in best}
    page = best[offset : offset + k]
    reasons = _explain(bundle, rated, page) if explain else {}
    items = [
        Scored(int(i), score_of[int(i)], offset + n + 1, reasons.get(int(i), ()))
        for n, i in enumerate(page)
    ]
    return RankedList(items, source, has_more=len(best) > offset + k)


def _explain(bundle: Bundle, rated: np.ndarray, page: np.ndarray) -> dict[int, tuple[Reason, ...]]:
    """For each book, the rated book closest to it and the user's favourite subject it carries."""
    if len(page) == 0 or len(rated) == 0:
        return {}
    sims = bundle.item_unit[page] @ bundle.item_unit[rated].T
    closest = rated[np.argmax(sims, axis=1)]
    fav: Counter[int] = Counter(int(s) for r in rated for s in bundle.subjects_of(int(r)))
    top_subjects = {s for s, _ in fav.most_common(3)}
    out: dict[int, tuple[Reason, ...]] = {}
    for item, near in zip(page.tolist(), closest.tolist(), strict=True):
        reasons = [
            Reason(
                ReasonKind.SIMILAR_TO_RATED,
                f"because you rated {bundle.titles[near]}",
                related_item=near,
            )
        ]
        for s in bundle.subjects_of(item).tolist():
            if s in top_subjects:
                reasons.append(
                    Reason(
                        ReasonKind.FAVOURITE_SUBJECT,
                        f"matches your favourite subject {bundle.subject_names[s]}",
                        subject=s,
                    )
                )
                break
        out[item] = tuple(reasons)
    return out
