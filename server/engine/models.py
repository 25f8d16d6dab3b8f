"""The learned parts of a bundle beyond ALS: subject space, item-item model, reranker.

Both are built once when a bundle opens (worker thread) and are read-only
afterwards, so requests share them without locks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bookrec.pooling import pooled_user_vector
from bookrec.rerank_features import ItemTable, UserContext, compute
from server.engine.compiled_trees import Predict

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SubjectSpace:
    pooling: str
    subject_vectors: F32
    weights: dict[str, F32]
    book_vectors: F32  # (n_books, d) L2-normalised, memory-mapped

    def user_vector(self, subjects: list[int]) -> F32:
        return pooled_user_vector(self.pooling, self.subject_vectors, self.weights, subjects)


@dataclass(frozen=True)
class ItemItem:
    """The item-item model (trainer/models/item_item.py) and how Recommend blends it with
    ALS (bookrec/blend.py): row r of the CSR lists the books reading r points to."""

    indptr: I64  # (n_books + 1,)
    indices: I32  # books, ascending within a row
    weights: F32  # > 0
    weight: float  # ALS's share of the blend (params.item_item_blend)
    candidates: int  # the top n taken from each source (params.blend_candidates)


@dataclass(frozen=True)
class Reranker:
    predict: Predict  # the LightGBM model's trees compiled (compiled_trees.py), or its predict
    compiled: bool
    table: ItemTable
    user_stats: F32  # (n_users, 3) count, mean, std
    user_favourites: I32  # (n_users, 5)
    candidates: int

    def features(
        self,
        space: SubjectSpace,
        user: int,
        history: I32,
        cand: I32,
        scores: F32,
        als_scores: F32,
        item_item_scores: F32,
    ) -> F32:
        """The model's input for one user's candidates (bookrec/rerank_features.py, the
        trainer's own function): ``cand`` best first by the served retrieval's ``scores``,
        with their ALS and item-item scores (zeros when ALS alone is served)."""
        ctx = self.context(space, user, history)
        return compute(self.table, ctx, cand, scores, als_scores, item_item_scores)

    def context(self, space: SubjectSpace, user: int, history: I32) -> UserContext:
        """The per-user inputs of the features (the batched path builds them alike)."""
        fav = self.user_favourites[user]
        return UserContext(
            history=history,
            favourite_subjects=fav,
            subject_vector=space.user_vector(fav[fav >= 0].tolist()),
            count=float(self.user_stats[user, 0]),
            mean=float(self.user_stats[user, 1]),
            std=float(self.user_stats[user, 2]),
        )

    def rank(
        self,
        space: SubjectSpace,
        user: int,
        history: I32,
        cand: I32,
        scores: F32,
        als_scores: F32,
        item_item_scores: F32,
    ) -> tuple[I32, F32]:
        """Candidates reordered by the model, with its scores, best first."""
        x = self.features(space, user, history, cand, scores, als_scores, item_item_scores)
        pred = self.predict(x).astype(np.float32)
        order = np.lexsort((np.arange(len(cand)), -pred))
        return cand[order], pred[order]
