"""Recommendations without history: favourite subjects blended with the popularity prior.

score = (1 - w) * (cosine(pooled favourite subjects, book subject vector) + subject lift)
        + w * popularity prior (rescaled to [0, 1]),
computed by bookrec/cold_score.py, the function the trainer's evaluation scores
(``subject+prior``), with the trained subject pooling and w the request's
popularity weight (unset: the weight the trainer found best on held-out cold users).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bookrec import cold_score
from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask, allowed_mask, top_k
from server.engine.types import Filters, RankedList, Reason, ReasonKind, Scored, Source

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
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
    (subject index), by prior, and, among the books carrying a favourite (the only
    ones with any lift), by ``(1 - w) * lift + w * prior``. A book in none of them
    scores at most ``(1 - w) * cos_n + w * prior_n`` if it carries no favourite and
    ``(1 - w) * cos_n + (the n-th of the third list)`` if it does; once k candidates
    beat both, they are the answer. Otherwise n grows, up to an exact scan. Exact
    when the subject index is flat, as good as its recall otherwise; costs the books
    of the favourite subjects, never the catalogue's size."""
    user = bundle.subjects.user_vector(favourites)
    lift = bundle.subject_lift
    prior = bundle.prior01
    lifted, lift_values = _lifted(bundle, favourites)
    # What a lifted book adds to its cosine term, rounded up past the last bit of ``at``.
    # One favourite's books come in that order already (by prior, all with one lift).
    ordered = len(favourites) == 1

    def rest_of(at: npt.NDArray[np.integer[Any]]) -> F32:
        out: F32 = (1.0 - w) * lift_values[at] * np.float32(1 + 1e-5) + w * prior[lifted[at]]
        return out + np.float32(1e-6)

    rest = None if ordered else rest_of(np.arange(len(lifted)))
    n = max(THRESHOLD_START, 4 * k)
    query = np.ascontiguousarray(user[None, :], dtype=np.float32)
    while n < bundle.n_books // 4:
        _, found = bundle.subject_index.search(query, n)
        by_sim = found[0][found[0] >= 0]
        by_prior = bundle.prior_order[:n]
        by_lift, rest_n = lifted, -np.inf
        if len(lifted) > n:
            top = np.arange(n) if rest is None else np.argpartition(-rest, n - 1)[:n]
            by_lift, rest_n = lifted[top], float(rest_of(top).min())
        # Exact similarity of the n-th row (a quantised index only picks the rows).
        sim_n = float(np.min(bundle.subjects.book_vectors[by_sim] @ user)) if len(by_sim) else 0
        cand = np.unique(np.concatenate([by_sim, by_prior, by_lift]))  # <= 3n rows: cheap
        if mask is not None:
            cand = cand[mask[cand]]
        blended = _blend(bundle, user, lift, favourites, w, cand)
        best = top_k(blended, k)
        bound = (1.0 - w) * sim_n + max(w * float(prior[by_prior[-1]]), rest_n)
        if len(best) == k and blended[best[-1]] >= bound:
            return cand[best], blended[best]
        n *= 4
    every = np.arange(bundle.n_books) if mask is None else np.flatnonzero(mask)
    blended = _blend(bundle, user, lift, favourites, w, every)
    best = top_k(blended, k)
    return every[best], blended[best]


_scratch = threading.local()


def _lifted(bundle: Bundle, favourites: list[int]) -> tuple[I32, F32]:
    """Every book carrying a favourite (twice if it carries two) and its lift, summed
    subject by subject in a per-thread buffer the size of the catalogue, then cleared:
    costs those books only. May differ from ``at`` in the last bit."""
    weights = bundle.subject_lift.weights_of(favourites)
    lists = [bundle.books_with_subject(s) for s in favourites]
    rows = np.concatenate(lists)
    if len(lists) == 1:
        sums = np.full(len(rows), weights[favourites[0]], dtype=np.float32)
    else:
        acc: F32 | None = getattr(_scratch, "sums", None)
        if acc is None or len(acc) < bundle.n_books:
            acc = _scratch.sums = np.zeros(bundle.n_books, dtype=np.float32)
        for s, books in zip(favourites, lists, strict=True):
            acc[books] += np.float32(weights[s])
        sums = acc[rows]
        acc[rows] = 0
    return rows, cold_score.SubjectLift.of_sums(sums)


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
