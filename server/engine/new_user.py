"""Recommend for a user the model does not know but who rated books, shrunk by evidence
(issue 22): ``w(n) * personal + (1 - w(n)) * popularity`` with ``w(n) = n / (n + k)``,
``n`` their ratings of books the model knows and ``k`` the artifact's
``new_user_shrink_k``, learned by the trainer on its journeys (trainer/models/cold.py).

The candidates are the union of three top ``n`` lists (``blend_candidates``), minus what
the user rated and books outside the filters or without an ALS vector: ALS by the
folded-in vector (none when no rating could be folded in), item-item from the rated
books when it is served, and the served popularity. On that union
``bookrec.blend.shrunk`` scores them, the function the trainer's journeys score
(``shrink_lists``), and they are ranked best first, ties by book row: the list's head.
A page past it continues with tiers (listing.py) of the same lists asked deeper. One
call at a time: the batched path hands such calls here (batch_recommend.py ``_place``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from bookrec import blend
from server.engine import listing
from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask, allowed_mask, in_sorted, top_k
from server.engine.retrieval import candidates
from server.engine.types import Filters, RankedList, Reason, Scored, Source

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
DEFAULT_CANDIDATES = 200  # blend_candidates of an artifact without item-item


def shrunk_recommend(
    bundle: Bundle,
    vector: F32 | None,
    fresh: Mapping[int, int],
    k: int,
    filters: Filters,
    offset: int,
    explain: Callable[[I32, I32], dict[int, tuple[Reason, ...]]] | None,
) -> RankedList:
    """The page ``offset .. offset + k`` of the shrunk list; ``vector``: the folded-in
    ratings (None: none could be folded in); ``explain(rated, page)``: its reasons."""
    assert bundle.shrink_k is not None
    rated = np.array(sorted(fresh), dtype=np.int32)
    mask = allowed_mask(bundle, filters)
    share = blend.shrink_weight(len(rated), bundle.shrink_k)
    n = bundle.item_item.candidates if bundle.item_item is not None else DEFAULT_CANDIDATES

    def deeper(depth: int) -> tuple[I32, F32]:
        items, scores = shrunk_list(bundle, vector, rated, mask, share, max(n, depth))
        return items[:depth], scores[:depth]

    # The head is the whole union at n (what the trainer scores), then tiers asked deeper.
    head = shrunk_list(bundle, vector, rated, mask, share, n)
    items, scores, more = listing.cut(head, True, deeper, offset, offset + k)
    reasons = explain(rated, items) if explain is not None else {}
    page = [
        Scored(int(i), float(s), offset + r + 1, reasons.get(int(i), ()))
        for r, (i, s) in enumerate(zip(items, scores, strict=True))
    ]
    return RankedList(page, Source.HYBRID, has_more=more)


def shrunk_list(
    bundle: Bundle,
    vector: F32 | None,
    rated: I32,
    mask: BoolMask | None,
    share: float,
    n: int,
) -> tuple[I32, F32]:
    """Every candidate of the three top ``n`` lists, best first, with its score."""
    in_als = np.asarray(bundle.item_in_als)
    parts = [_popular(bundle, n, rated, mask)]
    if vector is not None and bool(np.any(vector)):
        parts.append(candidates(bundle, vector, n, rated, mask)[0])
    books, scores = np.empty(0, np.int32), np.empty(0, np.float32)
    weight = 1.0
    model = bundle.item_item
    if model is not None:
        weight = model.weight
        books, scores = blend.item_item_scores(model.indptr, model.indices, model.weights, rated)
        keep = ~in_sorted(books, rated) & in_als[books]
        if mask is not None:
            keep &= mask[books]
        books, scores = books[keep], scores[keep]
        parts.append(books[top_k(scores, n)])
    union = np.unique(np.concatenate(parts)).astype(np.int32)
    als = np.zeros(len(union), np.float32)
    if vector is not None:
        als = np.asarray(bundle.item_factors[union] @ vector, dtype=np.float32)
    ii = blend.lookup(books, scores, union)
    mixed = blend.shrunk(als, ii, weight, bundle.prior01[union], share)
    order = top_k(mixed, len(union))
    return union[order], mixed[order]


def _popular(bundle: Bundle, n: int, rated: I32, mask: BoolMask | None) -> I32:
    """The ``n`` most popular books (served popularity, ties by row) with an ALS vector,
    not rated, inside the mask."""
    order = bundle.prior_order
    keep_of = np.asarray(bundle.item_in_als)
    out: list[npt.NDArray[np.int64]] = []
    found, start, step = 0, 0, max(2 * n + len(rated), 256)
    while found < n and start < len(order):
        chunk = order[start : start + step]
        keep = keep_of[chunk] & ~in_sorted(chunk.astype(np.int32), rated)
        if mask is not None:
            keep &= mask[chunk]
        out.append(chunk[keep][: n - found])
        found += len(out[-1])
        start += step
        step *= 2
    if not out:
        return np.empty(0, np.int32)
    return np.concatenate(out).astype(np.int32)
