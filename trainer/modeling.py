"""Train every model inside the frozen split and evaluate the served pipelines.

Order: ALS grid on the tune half -> subject embeddings -> reranker fitted on
the tune half's validation labels -> every strategy scored on the eval half
(popularity, tuned ALS, ALS + reranker; for cold users popularity, subject
similarity and the subject + prior blend). The reranker is served only when
it beats tuned ALS on the eval half by ``reranker_min_gain``; the decision and
its numbers are recorded in the manifest.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp

from bookrec import cold_score
from bookrec.log import kv
from bookrec.rerank_features import ItemTable
from trainer import reranker as rr
from trainer.als import ALSModel, ALSParams
from trainer.evaluate import (
    F32,
    I32,
    I64,
    K,
    _half,
    cold_set,
    exclusion_for,
    part_matrix,
    top_lists,
    warm_sets,
)
from trainer.features import Features
from trainer.metrics import RankingReport, evaluate_lists
from trainer.snapshot import Snapshot
from trainer.split import TEST, VAL
from trainer.subject_model import (
    SubjectModel,
    SubjectModelParams,
    book_vectors,
    train_subject_model,
    user_vector,
)
from trainer.tuning import als_scorer, tune_als

log = logging.getLogger("trainer.models")
COLD_CHUNK = 128  # cold users scored at once: (128, n_books) float32 temporaries


@dataclass(frozen=True)
class ModelConfig:
    seed: int = 0
    als_grid: list[ALSParams] = field(default_factory=lambda: [ALSParams()])
    subject: SubjectModelParams = field(default_factory=SubjectModelParams)
    reranker: rr.RerankerParams = field(default_factory=rr.RerankerParams)
    reranker_min_gain: float = 0.02
    max_eval_users: int = 4000
    popularity_weights: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)


@dataclass
class Models:
    als_params: ALSParams
    als: ALSModel
    subject: SubjectModel
    book_subject_vectors: F32
    booster: lgb.Booster | None
    use_reranker: bool
    popularity_weight: float
    metrics: dict[str, Any]
    curves: dict[str, tuple[float, ...]]
    stage_seconds: dict[str, float]


def _pop_scorer(prior: F32) -> Callable[[I32], F32]:
    def score(users: I32) -> F32:
        out: F32 = np.broadcast_to(prior, (len(users), len(prior)))
        return out

    return score


def _report(
    name: str, lists: I64, targets: list[set[int]], n_items: int, out: dict[str, RankingReport]
) -> None:
    out[name] = evaluate_lists(lists, targets, n_items)
    log.info("evaluated", extra=kv(strategy=name, **out[name].row()))


def _contexts(users: I32, history: sp.csr_matrix, feats: Features, sm: SubjectModel) -> list[Any]:
    def uvec(s: I32) -> F32:
        return user_vector(sm, s.tolist())

    return [rr.user_context(int(u), history, feats, uvec) for u in users.tolist()]


def train_models(snap: Snapshot, feats: Features, cfg: ModelConfig) -> Models:
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        times[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()
        log.info("stage done", extra=kv(stage=name, seconds=times[name]))

    exclude = part_matrix(snap)
    tune, evals = warm_sets(snap, VAL, cfg.seed, cfg.max_eval_users)
    if len(tune.users) == 0 or len(evals.users) == 0:
        raise ValueError("the validation split has no users to tune or evaluate on")
    als_params, als, grid = tune_als(snap, cfg.als_grid, tune, exclude)
    lap("als_grid")

    train = snap.parts == 0
    explicit = train & (snap.ratings > 0)
    val_rows = (snap.parts == VAL) & (snap.ratings > 0)
    sm = train_subject_model(
        feats.book_subjects,
        feats.favourite_subjects,
        len(feats.vocab.slugs),
        snap.users[explicit],
        snap.items[explicit],
        snap.ratings[explicit],
        cfg.subject,
        val=(snap.users[val_rows], snap.items[val_rows], snap.ratings[val_rows]),
    )
    vectors = book_vectors(sm, feats.book_subjects)
    lap("subject_model")

    table: ItemTable = rr.item_table(snap, feats, vectors)
    n = cfg.reranker.candidates
    t_items, t_scores = rr.candidates(als.user_factors, als.item_factors, tune.users, exclude, n)
    booster = rr.fit(
        table, _contexts(tune.users, exclude, feats, sm), t_items, t_scores, tune, cfg.reranker
    )
    lap("reranker")

    warm: dict[str, RankingReport] = {}
    _report(
        "popularity",
        top_lists(_pop_scorer(feats.popularity.prior), evals.users, exclude),
        evals.targets,
        snap.n_items,
        warm,
    )
    _report(
        "als", top_lists(als_scorer(als), evals.users, exclude), evals.targets, snap.n_items, warm
    )
    if booster is not None:
        e_items, e_scores = rr.candidates(
            als.user_factors, als.item_factors, evals.users, exclude, n
        )
        lists = rr.rerank(
            booster, table, _contexts(evals.users, exclude, feats, sm), e_items, e_scores
        )
        _report("als+reranker", lists, evals.targets, snap.n_items, warm)
    gain = (
        warm["als+reranker"].ndcg_at_10 / max(warm["als"].ndcg_at_10, 1e-9) - 1.0
        if "als+reranker" in warm
        else float("nan")
    )
    use_reranker = booster is not None and gain >= cfg.reranker_min_gain
    lap("evaluate_warm")

    cold, weight = _evaluate_cold(snap, feats, sm, vectors, cfg)
    lap("evaluate_cold")

    metrics: dict[str, Any] = {
        "split_id": snap.split_id,
        "eval_users": len(evals.users),
        "tune_users": len(tune.users),
        "warm": {k: v.row() for k, v in warm.items()},
        "cold": {k: v.row() for k, v in cold.items()},
        "als": {"chosen": asdict(als_params), "grid": grid},
        "reranker": {
            "used": use_reranker,
            "ndcg_gain_over_als": None if math.isnan(gain) else round(gain, 4),
            "min_gain": cfg.reranker_min_gain,
            "reason": (
                "no tune user had a validation item among the candidates"
                if booster is None
                else f"NDCG@10 {gain:+.1%} vs tuned ALS on the eval half "
                f"({'>=' if use_reranker else '<'} {cfg.reranker_min_gain:.0%} required)"
            ),
        },
        "subject_model": {"pooling": sm.pooling, "history": sm.history},
        "cold_start": {"popularity_weight": weight},
        "served": "als+reranker" if use_reranker else "als",
    }
    curves = {f"warm/{k}": v.ndcg_curve for k, v in warm.items()}
    curves.update({f"cold/{k}": v.ndcg_curve for k, v in cold.items()})
    return Models(
        als_params, als, sm, vectors, booster, use_reranker, weight, metrics, curves, times
    )


def _evaluate_cold(
    snap: Snapshot, feats: Features, sm: SubjectModel, vectors: F32, cfg: ModelConfig
) -> tuple[dict[str, RankingReport], float]:
    """Blend weight chosen on one half of the cold users, every number from the other."""
    cs = cold_set(snap, feats.book_subjects, cfg.seed, 2 * cfg.max_eval_users)
    out: dict[str, RankingReport] = {}
    if len(cs.users) < 4:
        return out, cfg.popularity_weights[len(cfg.popularity_weights) // 2]
    halves = np.array([_half(cfg.seed, snap.user_ids[u]) for u in cs.users.tolist()])
    # The server's score (bookrec/cold_score.py), on the arrays the artifact exports.
    prior01 = cold_score.rescale_prior(feats.popularity.prior)
    lift = cold_score.SubjectLift(feats.book_subjects, feats.book.count, len(feats.vocab.slugs))
    uvecs = np.stack([user_vector(sm, f) for f in cs.favourite_subjects]).astype(np.float32)

    def lists(sel: np.ndarray, weights: tuple[float, ...]) -> dict[float, I64]:
        """Top lists for every weight; each chunk's similarity is computed once."""
        idx = np.flatnonzero(sel)
        excl = exclusion_for(cs.users[idx], [cs.seed_items[i] for i in idx], snap.n_items)
        got = {w: np.empty((len(idx), K), dtype=np.int64) for w in weights}
        for start in range(0, len(idx), COLD_CHUNK):  # bounds the temporaries
            r = idx[start : start + COLD_CHUNK]
            favs = [cs.favourite_subjects[i] for i in r.tolist()]
            sim = cold_score.similarity(uvecs[r], vectors, lift(favs))
            pos = np.arange(start, start + len(r), dtype=np.int32)
            for w in weights:

                def score(p: I32, sim: F32 = sim, w: float = w, at: int = start) -> F32:
                    return cold_score.blend(sim[p - at], prior01, w)

                got[w][start : start + len(r)] = top_lists(score, pos, excl)
        return got

    def targets(sel: np.ndarray) -> list[set[int]]:
        return [cs.targets[i] for i in np.flatnonzero(sel)]

    tune_sel, eval_sel = halves == 0, halves == 1
    tuned = lists(tune_sel, cfg.popularity_weights)
    best_w = max(
        cfg.popularity_weights,
        key=lambda w: evaluate_lists(tuned[w], targets(tune_sel), snap.n_items).ndcg_at_10,
    )
    final = lists(eval_sel, tuple(dict.fromkeys((1.0, 0.0, best_w))))
    _report("popularity", final[1.0], targets(eval_sel), snap.n_items, out)
    _report("subject", final[0.0], targets(eval_sel), snap.n_items, out)
    _report("subject+prior", final[best_w], targets(eval_sel), snap.n_items, out)
    return out, best_w


def evaluate_test_baselines(
    snap: Snapshot, feats: Features, als: ALSModel, seed: int, max_users: int
) -> dict[str, Any]:
    """Popularity and ALS on the test part: run once per split, to show the pipeline is honest."""
    # Both halves: nothing was tuned on the test part. Capped like the validation users.
    tune, evals = warm_sets(snap, TEST, seed, max_users)
    users = np.concatenate([tune.users, evals.users])
    targets = tune.targets + evals.targets
    exclude = part_matrix(snap) + part_matrix(snap, VAL)
    out: dict[str, RankingReport] = {}
    _report(
        "test/popularity",
        top_lists(_pop_scorer(feats.popularity.prior), users, exclude),
        targets,
        snap.n_items,
        out,
    )
    _report("test/als", top_lists(als_scorer(als), users, exclude), targets, snap.n_items, out)
    return {k: v.row() for k, v in out.items()}
