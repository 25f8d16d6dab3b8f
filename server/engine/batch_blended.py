"""Recommend's ALS + item-item blend for a batch of users: ALS's candidates searched
together (batch_retrieval.py), every user's item-item row sums in one pass, then each
user's union scored and blended by the code that blends a call alone
(blended.blend_sources)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from server.engine.batch_retrieval import CandidateAsk, candidates_many
from server.engine.blended import BlendedList, blend_sources
from server.engine.bundle import Bundle
from server.engine.models import ItemItem

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


def blended_many(
    bundle: Bundle, model: ItemItem, asks: Sequence[CandidateAsk]
) -> list[BlendedList]:
    """``[blended(bundle, model, a.vector, a.exclude, a.mask) for a in asks]`` (``exclude``:
    the user's rated books, which also seed item-item; ``a.n`` is not read)."""
    als = candidates_many(
        bundle, [CandidateAsk(a.vector, model.candidates, a.exclude, a.mask) for a in asks]
    )
    reached = item_item_scores_many(model, [a.exclude for a in asks])
    return [
        blend_sources(bundle, model, a.vector, a.exclude, a.mask, top, sums)
        for a, (top, _), sums in zip(asks, als, reached, strict=True)
    ]


def item_item_scores_many(model: ItemItem, rated: Sequence[I32]) -> list[tuple[I32, F32]]:
    """``[blend.item_item_scores(indptr, indices, weights, r) for r in rated]`` in one pass:
    the neighbour entries of every user's rated rows, keyed by (user, book), summed by
    one ``bincount``. Each key's entries are added in the order one user's call adds
    them (float64, then float32), so every sum is the same to the bit."""
    indptr, indices, weights = model.indptr, model.indices, model.weights
    n_books = len(indptr) - 1
    rows = [np.asarray(r, dtype=np.int64) for r in rated]
    seg = np.repeat(np.arange(len(rows), dtype=np.int64), [len(r) for r in rows])
    every = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    starts = indptr[every]
    lengths = indptr[every + 1] - starts
    total = int(lengths.sum())
    empty = (np.empty(0, np.int32), np.empty(0, np.float32))
    if total == 0:
        return [empty for _ in rows]
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
    owner = np.repeat(seg, lengths)
    keys, inverse = np.unique(owner * n_books + indices[offsets], return_inverse=True)
    sums = np.bincount(inverse, weights=weights[offsets], minlength=len(keys))
    bounds = np.searchsorted(keys, np.arange(len(rows) + 1, dtype=np.int64) * n_books)
    out = []
    for u in range(len(rows)):
        a, b = int(bounds[u]), int(bounds[u + 1])
        if a == b:
            out.append(empty)
            continue
        books = (keys[a:b] - u * n_books).astype(np.int32)
        out.append((books, sums[a:b].astype(np.float32)))
    return out
