"""Warm-user recommendations: ALS candidates (blended with item-item when the
trainer serves it), minus what the user rated, reranked.

Ratings that arrived since training (``new_ratings``) are folded into the
user's ALS vector first, so the list reacts at once; they count as rated (never
listed, and item-item seeds). A user the model does not know is folded in from
those ratings alone and, with an artifact that carries the learned shrink
(``new_user_shrink_k``), blended with popularity by how many they rated
(server/engine/new_user.py); with an older artifact, ranked as a known user is when
the trainer found that better than cold start (``new_user_foldin``), without the
reranker (it needs per-user statistics the model lacks), else cold start from the
subjects of the books they rated when there are any. ``source`` says which
path answered.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from bookrec.confidence import confidence
from server import metrics
from server.engine import listing
from server.engine.blended import BlendedList, blended, to_depth
from server.engine.bundle import Bundle
from server.engine.cold_start import cold_start
from server.engine.foldin import fold_in
from server.engine.models import ItemItem
from server.engine.new_user import shrunk_recommend
from server.engine.ranking import BoolMask, allowed_mask, favourite_subject, in_sorted
from server.engine.retrieval import candidates
from server.engine.types import Filters, RankedList, Reason, ReasonKind, Scored, Source

I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
# A new user's favourite subjects: the most frequent among the books they rated.
NEW_USER_SUBJECTS = 5


def recommend(
    bundle: Bundle,
    user_id: str,
    k: int,
    filters: Filters,
    explain: bool,
    offset: int = 0,
    new_ratings: Mapping[str, int] | None = None,
) -> RankedList:
    fresh: dict[int, int] = {}  # item_idx -> rating, for books this model knows
    for book_id, rating in (new_ratings or {}).items():
        row = bundle.book_row.get(book_id)
        if row is not None:
            fresh[row] = rating
    user = bundle.user_row.get(user_id)
    if user is None and shrinks(bundle, fresh):
        why = (lambda rated, page: _explain(bundle, rated, page)) if explain else None
        vector = _new_user_vector(bundle, fresh)
        return shrunk_recommend(bundle, vector, fresh, k, filters, offset, why)
    if user is None:
        vector = _new_user_vector(bundle, fresh) if bundle.new_user_foldin else None
        if vector is None:
            return _new_user(bundle, fresh, k, filters, explain, offset)
        rated = np.array(sorted(fresh), dtype=np.int32)
    else:
        vector, rated = _user_vector(bundle, user, fresh)
    mask = allowed_mask(bundle, filters)
    page, page_scores, source, has_more = _page(bundle, user, vector, rated, mask, offset, k)
    reasons = _explain(bundle, rated, page) if explain else {}
    items = [
        Scored(int(i), float(s), offset + n + 1, reasons.get(int(i), ()))
        for n, (i, s) in enumerate(zip(page, page_scores, strict=True))
    ]
    return RankedList(items, source, has_more=has_more)


def _page(
    bundle: Bundle,
    user: int | None,
    vector: F32,
    rated: I32,
    mask: BoolMask | None,
    offset: int,
    k: int,
) -> tuple[I32, F32, Source, bool]:
    """Books ``offset .. offset + k`` of the user's list (listing.py: the reranked head,
    then ALS or blended order), their scores, the source, and whether the list goes on.
    ``user`` None: one the model does not know (no reranker)."""
    reranker = bundle.reranker if user is not None else None
    model = bundle.item_item
    if model is None:
        n = head_size(bundle, user)
        pool = candidates(bundle, vector, n, rated, mask)
        head = pool
        # A page past the head needs only its books, not their order.
        on_head = reranker is not None and offset < len(pool[0])
        if reranker is not None and on_head:
            cand, als_scores = pool
            # user is not None here: ``reranker`` is only set for a known user.
            head = reranker.rank(
                bundle.subjects,
                user if user is not None else -1,
                rated,
                cand,
                als_scores,
                als_scores,
                np.zeros_like(als_scores),
            )
        return als_page(bundle, vector, rated, mask, pool, n, head, on_head, offset, k)
    ranked = blended(bundle, model, vector, rated, mask)
    reranked: tuple[I32, F32] | None = None
    top = min(reranker.candidates, len(ranked.items)) if reranker is not None else 0
    if reranker is not None and offset < top:
        # The reranker sees the top of the blended union with the blended scores and both
        # sources' own, as the trainer fitted it (trainer/modeling.py ``retrieved``).
        reranked = reranker.rank(
            bundle.subjects,
            user if user is not None else -1,
            rated,
            ranked.items[:top],
            ranked.scores[:top],
            ranked.als[:top],
            ranked.item_item[:top],
        )
    return blended_page(bundle, model, vector, rated, mask, ranked, reranked, offset, k)


def shrinks(bundle: Bundle, fresh: Mapping[int, int]) -> bool:
    """A user the model does not know, with ratings, and an artifact with the learned
    shrink: server/engine/new_user.py answers (the batched path leaves it to ``recommend``)."""
    return bundle.shrink_k is not None and len(fresh) > 0


def head_size(bundle: Bundle, user: int | None) -> int:
    """How many ALS candidates head the list: the reranker's, for a user it can rank."""
    reranker = bundle.reranker
    return reranker.candidates if reranker is not None and user is not None else listing.HEAD


def als_page(
    bundle: Bundle,
    vector: F32,
    rated: I32,
    mask: BoolMask | None,
    pool: tuple[I32, F32],
    n: int,
    head: tuple[I32, F32],
    reranked: bool,
    offset: int,
    k: int,
) -> tuple[I32, F32, Source, bool]:
    """A page of the ALS list once the head is known: ``pool``, the candidates asked
    ``n`` deep, and ``head``, the same books in the order served (the reranker's, or
    ALS's). Shared with the batched path (batch_recommend.py)."""
    items, scores, more = listing.cut(
        head,
        len(pool[0]) == n,
        lambda depth: candidates(bundle, vector, depth, rated, mask),
        offset,
        offset + k,
    )
    on_head = reranked and offset < len(head[0])
    return items, scores, Source.ALS_RERANKED if on_head else Source.ALS, more


def blended_page(
    bundle: Bundle,
    model: ItemItem,
    vector: F32,
    rated: I32,
    mask: BoolMask | None,
    ranked: BlendedList,
    reranked: tuple[I32, F32] | None,
    offset: int,
    k: int,
) -> tuple[I32, F32, Source, bool]:
    """A page of the blended list once the union is ranked: ``reranked``, the
    reranker's order of the union's first books (None: the blend's order stands).
    Shared with the batched path (batch_recommend.py)."""
    head: tuple[I32, F32] = (ranked.items, ranked.scores)
    top = 0
    if reranked is not None:
        best, scores = reranked
        top = len(best)
        head = (
            np.concatenate([best, ranked.items[top:]]),
            np.concatenate([scores, ranked.scores[top:]]),
        )
    items, page_scores, more = listing.cut(
        head,
        True,
        lambda depth: to_depth(bundle, model, ranked, vector, rated, mask, depth),
        offset,
        offset + k,
    )
    source = Source.ALS_RERANKED if offset < top else Source.ALS
    return items, page_scores, source, more


def _user_vector(bundle: Bundle, user: int, fresh: Mapping[int, int]) -> tuple[F32, I32]:
    """The trained vector, or one re-solved with the new ratings ALS would have fitted
    (explicit ones below ``als.min_rating`` are left out); and all rated books."""
    rated = bundle.rated_items(user)
    if not fresh:
        return np.asarray(bundle.user_factors[user]), rated
    rows = np.array(list(fresh), dtype=np.int32)
    ratings = np.array(list(fresh.values()))
    new = ~in_sorted(rows, rated)
    every = np.union1d(rated, rows).astype(np.int32)
    folded = new & bundle.als.fitted(ratings)
    if not folded.any():
        return np.asarray(bundle.user_factors[user]), every
    conf = bundle.train_confidence(user)
    trained = conf > 0
    new_conf = confidence(ratings[folded], bundle.als.alpha, bundle.als.scheme)
    metrics.FOLD_INS.labels(kind="new_ratings").inc()
    vector = fold_in(
        bundle.item_factors,
        bundle.yty,
        bundle.als.regularization,
        np.concatenate([rated[trained], rows[folded]]),
        np.concatenate([conf[trained], new_conf]),
        bundle.als.regularization_scaling,
    )
    return vector, every


def _new_user_vector(bundle: Bundle, fresh: Mapping[int, int]) -> F32 | None:
    """A vector for a user the model does not know, folded in from the ratings ALS would
    have fitted (trainer/models/cold.py ``fold_vectors``); None when no such rating
    is of a book with an ALS vector (a zero vector ranks nothing)."""
    rows = np.array(list(fresh), dtype=np.int32)
    ratings = np.array(list(fresh.values()))
    if len(rows) == 0:
        return None
    keep = bundle.als.fitted(ratings)
    if not np.asarray(bundle.item_in_als)[rows[keep]].any():
        return None
    conf = confidence(ratings[keep], bundle.als.alpha, bundle.als.scheme)
    metrics.FOLD_INS.labels(kind="new_user").inc()
    return fold_in(
        bundle.item_factors,
        bundle.yty,
        bundle.als.regularization,
        rows[keep],
        conf,
        bundle.als.regularization_scaling,
    )


def _new_user(
    bundle: Bundle,
    fresh: Mapping[int, int],
    k: int,
    filters: Filters,
    explain: bool,
    offset: int,
) -> RankedList:
    counts: Counter[int] = Counter(int(s) for row in fresh for s in bundle.subjects_of(row))
    favourites = [bundle.subject_ids[s] for s, _ in counts.most_common(NEW_USER_SUBJECTS)]
    unrated = dataclasses.replace(
        filters, exclude_book_ids=filters.exclude_book_ids | {bundle.book_ids[r] for r in fresh}
    )
    answers: list[RankedList] = []
    reasons: dict[int, tuple[Reason, ...]] = {}

    def ranked(depth: int) -> tuple[I32, F32]:
        answer = cold_start(bundle, favourites, None, depth, unrated, explain)
        answers.append(answer)
        reasons.update((s.item, s.reasons) for s in answer.items)
        items = np.array([s.item for s in answer.items], dtype=np.int32)
        return items, np.array([s.score for s in answer.items], dtype=np.float32)

    head = ranked(listing.HEAD)
    items, scores, more = listing.cut(
        head, len(head[0]) == listing.HEAD, ranked, offset, offset + k
    )
    page = [
        Scored(int(i), float(s), offset + n + 1, reasons[int(i)])
        for n, (i, s) in enumerate(zip(items, scores, strict=True))
    ]
    return RankedList(page, answers[0].source, has_more=more)


def _explain(bundle: Bundle, rated: I32, page: I32) -> dict[int, tuple[Reason, ...]]:
    """For each book, the rated book closest to it and the user's favourite subject it carries."""
    if len(page) == 0 or len(rated) == 0:
        return {}
    sims = bundle.unit(page) @ bundle.unit(rated).T
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
                reasons.append(favourite_subject(bundle, s))
                break
        out[item] = tuple(reasons)
    return out
