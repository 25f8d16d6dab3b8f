"""LightGBM lambdarank over the served retrieval's candidates, tuned in a study.

Candidates: the top ``candidates`` of the pipeline the server serves below the
reranker (ALS alone, or the ALS + item-item blend, trainer/evaluation/lists.py),
training items excluded, with the retrieval score and both sources' scores.
Labels: 1 for a candidate among the user's *validation* interactions. Queries:
tune-half users with at least one such label among their candidates, so the
ranker never sees its own training interactions as targets and the eval half
stays for the paired decision (trainer/evaluation/decisions.py).

The settings (candidates, num_leaves, learning_rate, min_data_in_leaf,
n_estimators) are searched by an Optuna study (trainer/models/study.py): each
trial fits on two thirds of the tune users (a seeded hash split) and scores
NDCG@10 on the other third; the chosen settings are then fitted on every tune
user. Features: bookrec/rerank_features.py, shared with the server; the model
is saved as LightGBM's text format together with the feature names in order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import optuna
import scipy.sparse as sp

from bookrec import rerank_features as rf
from bookrec.log import kv
from trainer.errors import ModelFitError
from trainer.evaluation.lists import CandidatePool, blend_scores
from trainer.evaluation.metrics import ndcg_at_10
from trainer.evaluation.protocol import K
from trainer.features import Features
from trainer.models.study import StudyBudget, StudyResult, run_study
from trainer.snapshot import Snapshot

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
log = logging.getLogger("trainer.models.reranker")

MIN_QUERIES = 10  # fewer users with a label among their candidates: no model
CANDIDATE_RANGE = (50, 500)  # the study's candidates; features are computed once at the top
# Lambdarank's cost grows with trees x candidates: 300 trees of 300 candidates for 1,500
# queries take ~20 s on one core (the small demo), the most a trial or the final fit costs.
TREES_RANGE = (20, 300)
HOLDOUT_SHARE = 3  # one tune user in three scores the trials


@dataclass(frozen=True)
class RerankerParams:
    candidates: int = 300
    n_estimators: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    seed: int = 0
    threads: int = 1  # OpenMP with 2 threads on 2 busy cores is 25x slower (measured)


@dataclass(frozen=True)
class Retrieved:
    """Each user's candidates, best first by the served retrieval, -1 padded."""

    items: I64  # (users, n)
    scores: F32  # the score they are ranked by (the served blend, or ALS)
    als: F32  # ALS score of each
    item_item: F32  # item-item score of each (0 for ALS alone)


def item_table(
    snap: Snapshot, feats: Features, subject_vectors: F32, rows: npt.NDArray[np.bool_]
) -> rf.ItemTable:
    """The per-book columns; ``rows``: the interactions ``feats`` were built from (the
    training part in the split; every row for the published model), for recency."""
    return rf.ItemTable(
        author_id=rf.dense_ids(snap.authors, none=rf.UNKNOWN_AUTHOR),
        series_id=rf.dense_ids(snap.series),
        series_volume=snap.series_volume,
        book_subjects=feats.book_subjects,
        subject_vectors=subject_vectors,
        year_bucket=feats.year_bucket,
        prior=feats.popularity.prior,
        count=feats.book.count,
        count_pct=rf.count_percentile(feats.book.count),
        recency=rf.book_recency(snap.items[rows], snap.timestamps[rows], snap.n_items),
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
) -> Retrieved:
    """ALS top-n per user, best first; -1 pads when fewer exist."""
    from trainer.evaluation.protocol import top_lists

    items = top_lists(lambda b: user_factors[b] @ item_factors.T, users, exclude, k=n)
    scores = np.zeros(items.shape, dtype=np.float32)
    for row, u in enumerate(users.tolist()):
        valid = items[row] >= 0
        scores[row, valid] = item_factors[items[row, valid]] @ user_factors[u]
    return Retrieved(items, scores, scores.copy(), np.zeros_like(scores))


def blended(pool: CandidatePool, weight: float, n: int) -> Retrieved:
    """The served blend's top n per user (lists.blend_scores) with both sources' scores."""
    items, scores = blend_scores(pool, weight, n)
    als = np.zeros(items.shape, dtype=np.float32)
    ii = np.zeros(items.shape, dtype=np.float32)
    for row, cand in enumerate(pool.items):
        valid = items[row] >= 0
        pos = np.searchsorted(cand, items[row, valid])  # the union is ascending
        als[row, valid] = pool.als[row][pos]
        ii[row, valid] = pool.item_item[row][pos]
    return Retrieved(items, scores, als, ii)


@dataclass(frozen=True)
class Queries:
    """Every user's candidate features, computed once at the deepest candidate count;
    a shallower count takes each user's first rows (no feature depends on the depth)."""

    x: F32  # (rows, len(FEATURES)), users' blocks one after another
    starts: I64  # (users + 1,) where each user's block starts
    items: I64  # (users, n) the candidates, -1 padded

    def __len__(self) -> int:
        return len(self.items)

    def depth(self, user: int, n: int) -> int:
        return int(min(n, self.starts[user + 1] - self.starts[user]))

    def take(self, users: Sequence[int], n: int) -> tuple[F32, list[int]]:
        """The features of ``users``' first ``n`` candidates and the group sizes."""
        sizes = [self.depth(u, n) for u in users]
        if not sizes:
            return np.empty((0, self.x.shape[1]), np.float32), []
        idx = np.concatenate(
            [
                np.arange(self.starts[u], self.starts[u] + g)
                for u, g in zip(users, sizes, strict=True)
            ]
        )
        return self.x[idx], sizes


def queries(table: rf.ItemTable, contexts: list[rf.UserContext], got: Retrieved) -> Queries:
    blocks, starts = [], [0]
    for row, ctx in enumerate(contexts):
        valid = got.items[row] >= 0
        blocks.append(
            rf.compute(
                table,
                ctx,
                got.items[row, valid].astype(np.int32),
                got.scores[row, valid],
                got.als[row, valid],
                got.item_item[row, valid],
            )
        )
        starts.append(starts[-1] + int(valid.sum()))
    x = np.vstack(blocks) if blocks else np.empty((0, len(rf.FEATURES)), np.float32)
    return Queries(x, np.array(starts, dtype=np.int64), got.items)


def labelled(q: Queries, users: Sequence[int], targets: Sequence[set[int]], n: int) -> list[int]:
    """Those of ``users`` with a validation item among their first ``n`` candidates."""
    return [u for u in users if targets[u] & set(q.items[u, : q.depth(u, n)].tolist())]


def fit(
    q: Queries, users: Sequence[int], targets: Sequence[set[int]], params: RerankerParams
) -> tuple[lgb.Booster | None, int]:
    """The booster fitted on those of ``users`` with a label in their first
    ``params.candidates`` candidates, and how many they were; None below MIN_QUERIES."""
    keep = labelled(q, users, targets, params.candidates)
    if len(keep) < MIN_QUERIES:
        return None, len(keep)
    x, groups = q.take(keep, params.candidates)
    labels = np.concatenate(
        [np.isin(q.items[u, :g], list(targets[u])) for u, g in zip(keep, groups, strict=True)]
    ).astype(np.int32)
    data = lgb.Dataset(x, labels, group=groups, feature_name=list(rf.FEATURES), free_raw_data=True)
    return train_booster(data, params), len(keep)


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
    booster: lgb.Booster, q: Queries, n: int, users: Sequence[int] | None = None, k: int = K
) -> I64:
    """Top-k per user (all, or ``users``) after reranking their first ``n`` candidates."""
    rows = list(range(len(q))) if users is None else list(users)
    out = np.full((len(rows), k), -1, dtype=np.int64)
    x, groups = q.take(rows, n)
    if not len(x):
        return out
    pred = np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)
    start = 0
    for row, (u, g) in enumerate(zip(rows, groups, strict=True)):
        order = np.lexsort((np.arange(g), -pred[start : start + g]))[:k]
        out[row, : len(order)] = q.items[u, order]
        start += g
    return out


def retrieval_order(q: Queries, n: int, users: Sequence[int] | None = None, k: int = K) -> I64:
    """Top-k per user (all, or ``users``) in retrieval order, cut at ``n`` candidates."""
    rows = range(len(q)) if users is None else users
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for row, u in enumerate(rows):
        g = min(q.depth(u, n), k)
        out[row, :g] = q.items[u, :g]
    return out


def holdout(user_ids: Sequence[str], seed: int) -> npt.NDArray[np.bool_]:
    """A seeded hash of the external ids: True for the third of the users that score
    the study's trials, False for the two thirds each trial is fitted on."""
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(f"{seed}|rerank|{u}".encode(), digest_size=8).digest(), "big"
            )
            % HOLDOUT_SHARE
            == 0
            for u in user_ids
        ],
        dtype=bool,
    )


def suggest(trial: optuna.Trial, base: RerankerParams) -> RerankerParams:
    """One point of the reranker's space."""
    return replace(
        base,
        candidates=trial.suggest_int("candidates", *CANDIDATE_RANGE, log=True),
        num_leaves=trial.suggest_int("num_leaves", 4, 128, log=True),
        learning_rate=trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        min_data_in_leaf=trial.suggest_int("min_data_in_leaf", 5, 400, log=True),
        n_estimators=trial.suggest_int("n_estimators", *TREES_RANGE, log=True),
    )


def _point(p: RerankerParams) -> dict[str, Any]:
    """``p`` as a study point, clipped into the space (the configured settings go first)."""

    def clip(v: float, low: float, high: float) -> float:
        return min(max(v, low), high)

    return {
        "candidates": int(clip(p.candidates, *CANDIDATE_RANGE)),
        "num_leaves": int(clip(p.num_leaves, 4, 128)),
        "learning_rate": clip(p.learning_rate, 0.01, 0.3),
        "min_data_in_leaf": int(clip(p.min_data_in_leaf, 5, 400)),
        "n_estimators": int(clip(p.n_estimators, *TREES_RANGE)),
    }


@dataclass
class Tuned:
    booster: lgb.Booster | None  # fitted on every tune user with a label; None: too few
    params: RerankerParams  # the chosen settings (the configured ones when none was fitted)
    study: StudyResult | None
    info: dict[str, Any]  # for metrics.reranker


def tune(
    q: Queries,
    targets: Sequence[set[int]],
    held_out: npt.NDArray[np.bool_],
    base: RerankerParams,
    budget: StudyBudget,
    seed: int,
) -> Tuned:
    """The study on ``q`` (the tune users' candidates at the deepest count), then the
    chosen settings fitted on every tune user. ``held_out``: the users that score trials."""
    fit_users = np.flatnonzero(~held_out).tolist()
    val_users = np.flatnonzero(held_out).tolist()
    val_targets = [targets[u] for u in val_users]
    info: dict[str, Any] = {
        "tune_users": len(q),
        "study_fit_users": len(fit_users),
        "study_validation_users": len(val_users),
    }
    reachable = len(labelled(q, fit_users, targets, CANDIDATE_RANGE[1]))
    if reachable < MIN_QUERIES or not val_users:
        info["reason"] = (
            f"{reachable} tune users (of {len(fit_users)} to fit on) had a validation item "
            f"among the candidates, fewer than {MIN_QUERIES}"
        )
        return Tuned(None, base, None, info)

    def objective(trial: optuna.Trial) -> float:
        p = suggest(trial, base)
        booster, n_queries = fit(q, fit_users, targets, p)
        if booster is None:
            raise ModelFitError(f"{n_queries} queries with a label at {p.candidates} candidates")
        return ndcg_at_10(rerank(booster, q, p.candidates, val_users, 10), val_targets)

    try:
        study = run_study("reranker", objective, budget, seed, [_point(base)], prune=False)
    except ModelFitError as e:  # no trial had enough queries
        return Tuned(None, base, None, info | {"reason": str(e)})
    chosen = replace(base, **study.best_params)
    booster, n_queries = fit(q, range(len(q)), targets, chosen)
    baseline = ndcg_at_10(retrieval_order(q, chosen.candidates, val_users, 10), val_targets)
    info |= {
        "params": {k: v for k, v in asdict(chosen).items() if k not in ("seed", "threads")},
        "training_queries": n_queries,
        "study_validation_ndcg@10": {
            "retrieval": round(baseline, 4),
            "reranked": round(study.best_value, 4),
        },
        "study": study.summary(),
    }
    log.info(
        "reranker tuned",
        extra=kv(
            training_queries=n_queries,
            validation_retrieval=round(baseline, 4),
            validation_reranked=round(study.best_value, 4),
            **_point(chosen),
        ),
    )
    if booster is None:  # the fit users had enough; all of them together cannot have fewer
        info["reason"] = f"{n_queries} training queries, fewer than {MIN_QUERIES}"
    return Tuned(booster, chosen, study, info)
