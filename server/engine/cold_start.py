"""Recommendations without history: favourite subjects blended with the popularity prior.

score = (1 - w) * (cosine(pooled favourite subjects, book subject vector) + subject lift)
        + w * popularity prior (rescaled to [0, 1]),
computed by bookrec/cold_score.py, the function the trainer's evaluation scores
(``subject+prior``), with the trained subject pooling and w the request's
popularity weight (unset: the weight the trainer found best on held-out cold users).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bookrec import cold_score
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
        page, page_scores = _best_blend(bundle, subjects.tolist(), w, k, mask)
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
    bundle: Bundle, favourites: list[int], w: float, k: int, mask: BoolMask | None
) -> tuple[I64, F32]:
    """The k best blended books and their scores, without scoring the whole catalogue
    (Fagin's threshold algorithm over three ordered lists): the top n by cosine
    (subject index), by subject lift (only books carrying a favourite have any) and
    by prior; no book outside the three can beat
    ``(1 - w) * (cos_n + lift_n) + w * prior_n``, so once k candidates score at least
    that, they are the answer. Otherwise n grows, up to an exact scan. Exact when the
    subject index is flat, as good as its recall otherwise."""
    user = bundle.subjects.user_vector(favourites)
    lift = bundle.subject_lift
    approx_lift = lift.dense(favourites)
    lifted = np.flatnonzero(approx_lift > 0)  # a bool scan: 10x faster than on floats
    n = max(THRESHOLD_START, 4 * k)
    query = np.ascontiguousarray(user[None, :], dtype=np.float32)
    while n < bundle.n_books // 4:
        _, found = bundle.subject_index.search(query, n)
        by_sim = found[0][found[0] >= 0]
        by_prior = bundle.prior_order[:n]
        lift_n = 0.0
        by_lift = lifted
        if len(lifted) > n:
            top = np.argpartition(-approx_lift[lifted], n - 1)[:n]
            by_lift = lifted[top]
            # Rows outside the list: at most the n-th value (plus the last bit of ``dense``).
            lift_n = float(approx_lift[by_lift].min()) * (1 + 1e-5)
        # Exact similarity of the n-th row (a quantised index only picks the rows).
        sim_n = float(np.min(bundle.subjects.book_vectors[by_sim] @ user)) if len(by_sim) else 0
        cand = np.unique(np.concatenate([by_sim, by_prior, by_lift]))  # <= 3n rows: cheap
        if mask is not None:
            cand = cand[mask[cand]]
        blended = _blend(bundle, user, lift, favourites, w, cand)
        best = top_k(blended, k)
        bound = (1.0 - w) * (sim_n + lift_n) + w * float(bundle.prior01[by_prior[-1]])
        if len(best) == k and blended[best[-1]] >= bound:
            return cand[best], blended[best]
        n *= 4
    every = np.arange(bundle.n_books) if mask is None else np.flatnonzero(mask)
    blended = _blend(bundle, user, lift, favourites, w, every)
    best = top_k(blended, k)
    return every[best], blended[best]


def _blend(
    bundle: Bundle,
    user: F32,
    lift: cold_score.SubjectLift,
    favourites: list[int],
    w: float,
    rows: npt.NDArray[np.integer[Any]],
) -> F32:
    sim = cold_score.similarity(
        user, bundle.subjects.book_vectors[rows], lift.at(favourites, rows)[None, :]
    )[0]
    return cold_score.blend(sim, bundle.prior01[rows], w)
