"""Similar for a batch of calls on one bundle: each call resolved as ``similar``
resolves it (similar.similar_ask), the item index and the subject index each asked
once for the batch (batch_search.py), each list finished by ``similar_answer``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.engine.batch_search import search_many
from server.engine.bundle import Bundle
from server.engine.similar import SimilarAsk, similar_answer, similar_ask
from server.engine.types import Filters, RankedList, SimilarMode

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SimilarCall:
    """The arguments of one ``similar`` call."""

    book_id: str
    k: int
    mode: SimilarMode
    weight: float
    filters: Filters
    explain: bool


def similar_many(bundle: Bundle, calls: Sequence[SimilarCall]) -> list[RankedList | Exception]:
    """``similar(bundle, c.book_id, c.k, c.mode, c.weight, c.filters, c.explain)`` for each
    call, or the exception that call raises."""
    out: list[RankedList | Exception | None] = [None] * len(calls)
    asks: list[tuple[int, SimilarAsk]] = []
    for i, c in enumerate(calls):
        try:
            asks.append(
                (i, similar_ask(bundle, c.book_id, c.k, c.mode, c.weight, c.filters, c.explain))
            )
        except Exception as e:  # that call's answer (NOT_FOUND, INVALID_ARGUMENT, a bug)
            out[i] = e
    als = _searched(bundle.item_index, [(i, a.als_query, a.n) for i, a in asks if a.searches_als])
    subject = _searched(
        bundle.subject_index,
        [(i, a.subject_query, a.n) for i, a in asks if a.searches_subjects],
    )
    for i, a in asks:
        out[i] = similar_answer(bundle, a, als.get(i), subject.get(i))
    return [r for r in out if r is not None]


def _searched(
    index: Any, queries: list[tuple[int, npt.NDArray[np.float32], int]]
) -> dict[int, I64]:
    """``ranking.search(index, query, n)`` for each (call, query, n), in one search."""
    if not queries:
        return {}
    answers = search_many(index, np.stack([q for _, q, _ in queries]), [n for _, _, n in queries])
    return {i: ids[ids >= 0] for (i, _, _), (_, ids) in zip(queries, answers, strict=True)}
