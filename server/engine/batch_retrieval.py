"""Recommend's candidates for a batch of user vectors: one retrieval search for the
batch (batch_search.py), then each call finished by the very code that finishes a
call alone (retrieval.candidates_from), so each gets what ``candidates`` gives it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.engine.batch_search import search_many
from server.engine.bundle import Bundle
from server.engine.ranking import BoolMask
from server.engine.retrieval import candidates_from, search_depth

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CandidateAsk:
    """One call's ``candidates(bundle, vector, n, exclude, mask)``."""

    vector: F32
    n: int
    exclude: I32
    mask: BoolMask | None


def candidates_many(bundle: Bundle, asks: Sequence[CandidateAsk]) -> list[tuple[I32, F32]]:
    """``[candidates(bundle, a.vector, a.n, a.exclude, a.mask) for a in asks]``, with the
    unfiltered ones searched together (filtered ones are scored exactly, unsearched)."""
    searched = [i for i, a in enumerate(asks) if a.mask is None]
    found: dict[int, I64] = {}
    if searched:
        queries = np.stack([np.asarray(asks[i].vector, dtype=np.float32) for i in searched])
        depths = [search_depth(bundle, asks[i].n, asks[i].exclude) for i in searched]
        answers = search_many(bundle.retrieval_index, queries, depths)
        found = {i: ids for i, (_, ids) in zip(searched, answers, strict=True)}
    return [
        candidates_from(bundle, a.vector, a.n, a.exclude, a.mask, found.get(i))
        for i, a in enumerate(asks)
    ]
