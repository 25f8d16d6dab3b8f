"""Recommendations without history: favourite subjects blended with the popularity prior.

score = (1 - w) * (cosine(pooled favourite subjects, book subject vector) + subject lift)
        + w * popularity prior (rescaled to [0, 1]),
computed by bookrec/cold_score.py, the function the trainer's evaluation scores
(``subject+prior``), with the trained subject pooling and w the request's
popularity weight (unset: the weight the trainer found best on held-out cold users).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bookrec import cold_score
from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask, allowed_mask, favourite_subject, search, top_k
from server.engine.types import Filters, RankedList, Reason, ReasonKind, Scored, Source

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
# Candidates taken from each ordered list at first by the threshold algorithm.
THRESHOLD_START = 200


@dataclass(frozen=True)
class ColdAsk:
    """One ColdStart call once its subjects, weight and filters are resolved."""

    subjects: npt.NDArray[np.int32]  # the favourites' indexes, ascending
    w: float  # the popularity weight
    mask: BoolMask | None
    k: int
    explain: bool
    user: F32 | None  # the pooled favourites (None without any)
    first_depth: int  # how deep the subject index is asked first; 0: not asked


def cold_start(
    bundle: Bundle,
    favourite_subjects: Sequence[str],
    popularity_weight: float | None,
    k: int,
    filters: Filters,
    explain: bool,
) -> RankedList:
    ask = cold_ask(bundle, favourite_subjects, popularity_weight, k, filters, explain)
    first = None
    if ask.user is not None and ask.first_depth:
        first = search(bundle.subject_index, ask.user, ask.first_depth)
    return cold_answer(bundle, ask, first)


def cold_ask(
    bundle: Bundle,
    favourite_subjects: Sequence[str],
    popularity_weight: float | None,
    k: int,
    filters: Filters,
    explain: bool,
) -> ColdAsk:
    """The call's first steps, before the subject index is asked (batch_cold_start.py
    asks it for a batch of calls at once)."""
    subjects = np.array(sorted({bundle.subject(s) for s in favourite_subjects}), dtype=np.int32)
    w = bundle.cold_start_weight if popularity_weight is None else popularity_weight
    mask = allowed_mask(bundle, filters)
    if len(subjects) == 0:
        return ColdAsk(subjects, w, mask, k, explain, None, 0)
    user = bundle.subjects.user_vector(subjects.tolist())
    n = _first_depth(k)
    return ColdAsk(subjects, w, mask, k, explain, user, n if n < bundle.n_books // 4 else 0)


def cold_answer(bundle: Bundle, ask: ColdAsk, first: I64 | None) -> RankedList:
    """The list, once the subject index has answered ``ask.user`` ``ask.first_depth`` deep
    (``first``; None when it was not asked)."""
    subjects, w, mask, k, explain = ask.subjects, ask.w, ask.mask, ask.k, ask.explain
    prior = bundle.prior01
    if ask.user is None:
        scores = prior.copy()
        source = Source.POPULARITY
        if mask is not None:
            scores[~mask] = -np.inf
        page = top_k(scores, k)
        page_scores = scores[page]
    else:
        page, page_scores = _best_blend(bundle, subjects.tolist(), w, k, mask, ask.user, first)
        source = Source.COLD_START
    wanted = set(subjects.tolist())
    items = []
    for n, (i, score) in enumerate(zip(page.tolist(), page_scores.tolist(), strict=True)):
        reasons: tuple[Reason, ...] = ()
        if explain:
            matched = [s for s in bundle.subjects_of(i).tolist() if s in wanted]
            reasons = tuple(favourite_subject(bundle, s) for s in matched[:2]) or (
                Reason(ReasonKind.POPULAR, "popular with readers"),
            )
        items.append(Scored(i, score, n + 1, reasons))
    return RankedList(items, source)


def _first_depth(k: int) -> int:
    return max(THRESHOLD_START, 4 * k)


def _best_blend(
    bundle: Bundle,
    favourites: list[int],
    w: float,
    k: int,
    mask: BoolMask | None,
    user: F32 | None = None,
    first: I64 | None = None,
) -> tuple[I64, F32]:
    """The k best blended books and their scores, without scoring the whole catalogue
    (Fagin's threshold algorithm over ordered lists): the top n books by cosine
    (subject index), by prior, by prior among the books of each favourite subject,
    and, among the books carrying two favourites or more (found with the subject
    bitsets, their lift computed exactly), by ``(1 - w) * lift + w * prior``. A book
    in none of the lists scores at most ``(1 - w) * cos_n`` plus
    - ``w * prior_n`` if it carries no favourite,
    - ``(1 - w) * lift_s + w * (the n-th prior among s's books)`` if it carries one, s,
    - the n-th value of the last list if it carries several.
    Once k candidates beat all of these, they are the answer; otherwise n grows, up
    to an exact scan. Exact when the subject index is flat, as good as its recall
    otherwise; costs n per list and a few passes over n_books / 8 bytes, not the
    size of the favourite subjects. ``user``: the pooled favourites (None: pooled here);
    ``first``: the subject index's rows for it at the first depth (``_first_depth``),
    None to search here."""
    if user is None:
        user = bundle.subjects.user_vector(favourites)
    prior = bundle.prior01
    by_subject = [bundle.books_with_subject(s) for s in favourites]  # by descending prior
    weights = cold_score.favourite_weights(bundle.subject_inverse_share, favourites)
    # One favourite's lift, rounded up past the last bit of ``at``.
    single = [
        float(cold_score.SubjectLift.of_sums(np.array([weights[s]], np.float32))[0]) * (1 + 1e-5)
        + 1e-7
        for s in favourites
    ]
    multi = _multi_carriers(bundle, favourites)
    multi_rest = (1.0 - w) * _multi_lift(bundle, favourites, weights, multi) + w * prior[multi]
    n = _first_depth(k)
    while n < bundle.n_books // 4:
        if first is not None and n == _first_depth(k):
            by_sim = first
        else:
            by_sim = search(bundle.subject_index, user, n)
        by_prior = bundle.prior_order[:n]
        # Exact similarity of the n-th row (a quantised index only picks the rows).
        sim_n = float(np.min(bundle.subjects.book_vectors[by_sim] @ user)) if len(by_sim) else 0
        by_multi, multi_n = multi, -np.inf
        if len(multi) > n:
            top = np.argpartition(-multi_rest, n - 1)[:n]
            by_multi, multi_n = multi[top], float(multi_rest[top].min()) + 1e-6
        lists: list[npt.NDArray[np.integer[Any]]] = [by_sim, by_prior, by_multi]
        lists += [b[:n] for b in by_subject]
        cand = np.unique(np.concatenate(lists))  # <= (3 + favourites) * n rows
        if mask is not None:
            cand = cand[mask[cand]]
        blended = _blend(bundle, user, favourites, weights, w, cand)
        best = top_k(blended, k)
        rest = max(w * float(prior[by_prior[-1]]), multi_n)  # beyond cos_n, off the lists
        for books, lift_s in zip(by_subject, single, strict=True):
            if len(books) > n:
                rest = max(rest, (1.0 - w) * lift_s + w * float(prior[books[n - 1]]))
        if len(best) == k and blended[best[-1]] >= (1.0 - w) * sim_n + rest:
            return cand[best], blended[best]
        n *= 4
    every = np.arange(bundle.n_books) if mask is None else np.flatnonzero(mask)
    blended = _blend(bundle, user, favourites, weights, w, every)
    best = top_k(blended, k)
    return every[best], blended[best]


def _multi_carriers(bundle: Bundle, favourites: list[int]) -> I64:
    """The books carrying two of the favourites or more, ascending: bitwise, a few
    passes over n_books / 8 bytes, then only the bytes that have any.

    ``flatnonzero`` is given bool arrays (``!= 0``): numpy's nonzero on uint8 bytes was
    5x slower than on bools, and building the (bytes x 8) row matrix to mask it cost
    more again; 0.45 -> 0.10 ms for two common subjects at 300k books, the same rows
    (tests/test_reply_identity.py checks them against ``_multi_carriers_reference``)."""
    if len(favourites) < 2:
        return np.zeros(0, dtype=np.int64)
    bits = bundle.subject_bits
    if len(favourites) == 2:
        twice = bits[favourites[0]] & bits[favourites[1]]
    else:
        once = np.zeros(bits.shape[1], dtype=np.uint8)
        twice = np.zeros_like(once)
        for s in favourites:
            twice |= once & bits[s]
            once |= bits[s]
    where = np.flatnonzero(twice != 0)
    at = np.flatnonzero(np.unpackbits(twice[where], bitorder="little") != 0)
    rows: I64 = where[at >> 3] * 8 + (at & 7)
    return rows


def _multi_carriers_reference(bundle: Bundle, favourites: list[int]) -> I64:
    """``_multi_carriers`` the straightforward way (the tests' reference)."""
    if len(favourites) < 2:
        return np.zeros(0, dtype=np.int64)
    once = np.zeros(bundle.subject_bits.shape[1], dtype=np.uint8)
    twice = np.zeros_like(once)
    for s in favourites:
        bits = bundle.subject_bits[s]
        twice |= once & bits
        once |= bits
    where = np.flatnonzero(twice)
    set_bits = np.unpackbits(twice[where], bitorder="little").reshape(-1, 8).astype(bool)
    rows: I64 = (where[:, None] * 8 + np.arange(8))[set_bits]
    return rows


def _multi_lift(
    bundle: Bundle, favourites: list[int], weights: dict[int, float], multi: I64
) -> F32:
    """``_lift_at`` of the multi-carriers. With two favourites every one of them carries
    both, so the sums ``_lift_at`` would gather bit by bit are all ``0 + w_a + w_b``
    (float32, in that order): the same array without the gathers (0.137 -> 0.095 ms
    at 300k books for two common subjects; the log1p over the sums is the rest)."""
    if len(favourites) != 2:
        return _lift_at(bundle, favourites, weights, multi)
    a, b = favourites  # ascending, as _lift_at adds them
    total = (np.float32(0) + np.float32(weights[a]) * np.float32(1)) + np.float32(
        weights[b]
    ) * np.float32(1)
    return cold_score.SubjectLift.of_sums(np.full(len(multi), total, dtype=np.float32))


def _lift_at(bundle: Bundle, favourites: list[int], weights: dict[int, float], rows: I64) -> F32:
    """``cold_score.SubjectLift.at`` bit for bit, from the subject bitsets: ``at`` adds
    each book's subject weights in ascending subject order, and only favourites
    weigh anything, so adding the carried favourites' weights in ascending order
    gives the same float32 sums, at m byte lookups a row instead of 8 gathers."""
    sums = np.zeros(len(rows), dtype=np.float32)
    byte, bit = rows >> 3, (rows & 7).astype(np.uint8)
    for s in favourites:  # ascending
        carried = (bundle.subject_bits[s][byte] >> bit) & 1
        sums = sums + np.float32(weights[s]) * carried.astype(np.float32)
    return cold_score.SubjectLift.of_sums(sums)


def _blend(
    bundle: Bundle,
    user: F32,
    favourites: list[int],
    weights: dict[int, float],
    w: float,
    rows: npt.NDArray[np.integer[Any]],
) -> F32:
    lift = _lift_at(bundle, favourites, weights, np.asarray(rows, dtype=np.int64))
    sim = cold_score.similarity(user, bundle.subjects.book_vectors[rows], lift[None, :])[0]
    return cold_score.blend(sim, bundle.prior01[rows], w)
