"""ColdStart for a batch of calls on one bundle: each call resolved as ``cold_start``
resolves it (its subjects, weight, filters and pooled favourites), the subject index
asked once for the whole batch's first round (batch_search.py), each list finished
by ``cold_answer`` (a call whose threshold search needs a deeper round asks the index
again itself, as it would alone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.engine.batch_search import search_many
from server.engine.bundle import Bundle
from server.engine.cold_start import ColdAsk, cold_answer, cold_ask
from server.engine.types import Filters, RankedList


@dataclass(frozen=True)
class ColdStartCall:
    """The arguments of one ``cold_start`` call."""

    favourite_subjects: tuple[str, ...]
    popularity_weight: float | None
    k: int
    filters: Filters
    explain: bool


def cold_start_many(bundle: Bundle, calls: Sequence[ColdStartCall]) -> list[RankedList | Exception]:
    """``cold_start(bundle, c.favourite_subjects, c.popularity_weight, c.k, c.filters,
    c.explain)`` for each call, or the exception that call raises."""
    out: list[RankedList | Exception | None] = [None] * len(calls)
    asks: list[tuple[int, ColdAsk]] = []
    for i, c in enumerate(calls):
        try:
            ask = cold_ask(
                bundle, c.favourite_subjects, c.popularity_weight, c.k, c.filters, c.explain
            )
            asks.append((i, ask))
        except Exception as e:  # that call's answer (INVALID_ARGUMENT, a bug)
            out[i] = e
    searched = [(i, a) for i, a in asks if a.user is not None and a.first_depth]
    first = {}
    if searched:
        queries = np.stack([a.user for _, a in searched if a.user is not None])
        answers = search_many(bundle.subject_index, queries, [a.first_depth for _, a in searched])
        first = {i: ids[ids >= 0] for (i, _), (_, ids) in zip(searched, answers, strict=True)}
    for i, a in asks:
        out[i] = cold_answer(bundle, a, first.get(i))
    return [r for r in out if r is not None]
