"""LightGBM lambdarank over ALS candidates, with features ALS cannot see.

Candidates: the top ``candidates`` ALS items per user, training items excluded.
Labels: 1 for a candidate among the user's *validation* interactions (tune
half only), so the ranker never sees its own training interactions as targets.
Features: bookrec/rerank_features.py, shared with the server; the model is
saved as LightGBM's text format together with the feature names in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from bookrec import rerank_features as rf
from trainer.evaluate import K, WarmSet
from trainer.features import Features
from trainer.snapshot import Snapshot

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RerankerParams:
    candidates: int = 300
    n_estimators: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    seed: int = 0
    threads: int = 1  # OpenMP with 2 threads on 2 busy cores is 25x slower (measured)


def item_table(snap: Snapshot, feats: Features, subject_vectors: F32) -> rf.ItemTable:
    return rf.ItemTable(
        author_id=rf.dense_ids(snap.authors, none=rf.UNKNOWN_AUTHOR),
        series_id=rf.dense_ids(snap.series),
        series_volume=snap.series_volume,
        book_subjects=feats.book_subjects,
        subject_vectors=subject_vectors,
        year_bucket=feats.year_bucket,
        prior=feats.popularity.prior,
        count=feats.book.count,
        mean=feats.book.mean,
        std=feats.book.std,
    )


def user_context(
    user: int, history: sp.csr_matrix, feats: Features, user_vector: Callable[[I32], F32]
) -> rf.UserContext:
    fav = feats.favourite_subjects[user]
    return rf.UserContext(
        history=history.indices[history.indptr[user] : history.indptr[user + 1]].astype(np.int32),
        favourite_subjects=fav,
        subject_vector=user_vector(fav[fav >= 0]),
        count=float(feats.user.count[user]),
        mean=float(feats.user.mean[user]),
        std=float(feats.user.std[user]),
    )


def candidates(
    user_factors: F32, item_factors: F32, users: I32, exclude: sp.csr_matrix, n: int
) -> tuple[I64, F32]:
    """ALS top-n per user (items, scores), best first; -1 pads when fewer exist."""
    from trainer.evaluate import top_lists

    items = top_lists(lambda b: user_factors[b] @ item_factors.T, users, exclude, k=n)
    scores = np.zeros(items.shape, dtype=np.float32)
    for row, u in enumerate(users.tolist()):
        valid = items[row] >= 0
        scores[row, valid] = item_factors[items[row, valid]] @ user_factors[u]
    return items, scores


def _matrix(
    table: rf.ItemTable,
    contexts: list[rf.UserContext],
    items: I64,
    scores: F32,
) -> tuple[F32, list[int]]:
    blocks, groups = [], []
    for ctx, cand, sc in zip(contexts, items, scores, strict=True):
        valid = cand >= 0
        blocks.append(rf.compute(table, ctx, cand[valid].astype(np.int32), sc[valid]))
        groups.append(int(valid.sum()))
    return np.vstack(blocks), groups


def fit(
    table: rf.ItemTable,
    contexts: list[rf.UserContext],
    items: I64,
    scores: F32,
    tune: WarmSet,
    params: RerankerParams,
) -> lgb.Booster | None:
    """None when no tune user has a validation item among their candidates."""
    keep = [i for i, t in enumerate(tune.targets) if t & set(items[i].tolist())]
    if len(keep) < 10:
        return None
    x, groups = _matrix(table, [contexts[i] for i in keep], items[keep], scores[keep])
    labels = np.concatenate(
        [np.isin(items[i][items[i] >= 0], list(tune.targets[i])) for i in keep]
    ).astype(np.int32)
    data = lgb.Dataset(x, labels, group=groups, feature_name=list(rf.FEATURES), free_raw_data=True)
    return train_booster(data, params)


def train_booster(data: lgb.Dataset, params: RerankerParams) -> lgb.Booster:
    """LightGBM lambdarank with our parameters; deterministic for a seed."""
    return lgb.train(
        {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": params.learning_rate,
            "num_leaves": params.num_leaves,
            "min_data_in_leaf": params.min_data_in_leaf,
            "num_threads": params.threads,
            "seed": params.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        },
        data,
        num_boost_round=params.n_estimators,
    )


def rerank(
    booster: lgb.Booster,
    table: rf.ItemTable,
    contexts: list[rf.UserContext],
    items: I64,
    scores: F32,
    k: int = K,
) -> I64:
    """Top-k per user after reranking the candidates."""
    out = np.full((len(contexts), k), -1, dtype=np.int64)
    x, groups = _matrix(table, contexts, items, scores)
    pred = np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)
    start = 0
    for row, g in enumerate(groups):
        p = pred[start : start + g]
        cand = items[row][items[row] >= 0]
        order = np.lexsort((np.arange(g), -p))[:k]
        out[row, : len(order)] = cand[order]
        start += g
    return out
