"""Users the model never saw: cold start from subjects, and users with a few ratings.

Cold users (held out whole by the split) give their first ratings as a seed and
the rest as targets (trainer/evaluation/protocol.py ``cold_set``). Two questions:

- **No history, favourite subjects** (ColdStart): the subject + prior blend of
  bookrec/cold_score.py. Its popularity weight is chosen on one half of the cold
  users and judged on the other with a paired bootstrap against the pure prior;
  a weight shown worse than the prior is never the default.
- **A few ratings, unknown to the model** (RateBook, then Recommend): the seed
  ratings folded into an ALS vector (bookrec/fold_in.py) and, when it is served,
  blended with item-item as for warm users. It is served to such users only when
  it is not worse than popularity on the same users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from bookrec import cold_score
from bookrec.confidence import confidence
from bookrec.fold_in import fold_in
from bookrec.log import kv
from trainer.evaluation.bootstrap import paired
from trainer.evaluation.lists import blend_lists, candidate_pool
from trainer.evaluation.metrics import RankingReport, evaluate_lists, report_into
from trainer.evaluation.protocol import (
    F32,
    I32,
    I64,
    ColdSet,
    K,
    _half,
    exclusion_for,
    popularity_lists,
    top_lists,
)
from trainer.features import Features
from trainer.models.als import ALSModel, ALSParams, is_positive
from trainer.models.subject_model import SubjectModel, user_vector
from trainer.snapshot import Snapshot

log = logging.getLogger("trainer.models.cold")
COLD_CHUNK = 128  # cold users scored at once: (128, n_books) float32 temporaries


@dataclass(frozen=True)
class ColdResult:
    reports: dict[str, RankingReport]
    popularity_weight: float
    weight_choice: dict[str, Any]


def evaluate_cold(
    snap: Snapshot,
    feats: Features,
    sm: SubjectModel,
    vectors: F32,
    cs: ColdSet,
    weights: tuple[float, ...],
    seed: int,
) -> ColdResult:
    """The popularity weight chosen on one half of the cold users, judged on the other."""
    out: dict[str, RankingReport] = {}
    if len(cs.users) < 4:
        return ColdResult(out, 1.0, {"reason": f"{len(cs.users)} cold users: the pure prior"})
    halves = np.array([_half(seed, snap.user_ids[u]) for u in cs.users.tolist()])
    # The server's score (bookrec/cold_score.py), on the arrays the artifact exports.
    prior01 = cold_score.rescale_prior(feats.popularity.prior)
    lift = cold_score.SubjectLift(feats.book_subjects, feats.book.count, len(feats.vocab.slugs))
    uvecs = np.stack([user_vector(sm, f) for f in cs.favourite_subjects]).astype(np.float32)

    def lists(sel: np.ndarray, ws: tuple[float, ...]) -> dict[float, I64]:
        """Top lists for every weight; each chunk's similarity is computed once."""
        idx = np.flatnonzero(sel)
        excl = exclusion_for(cs.users[idx], [cs.seed_items[i] for i in idx], snap.n_items)
        got = {w: np.empty((len(idx), K), dtype=np.int64) for w in ws}
        for start in range(0, len(idx), COLD_CHUNK):  # bounds the temporaries
            r = idx[start : start + COLD_CHUNK]
            favs = [cs.favourite_subjects[i] for i in r.tolist()]
            sim = cold_score.similarity(uvecs[r], vectors, lift(favs))
            pos = np.arange(start, start + len(r), dtype=np.int32)
            for w in ws:

                def score(p: I32, sim: F32 = sim, w: float = w, at: int = start) -> F32:
                    return cold_score.blend(sim[p - at], prior01, w)

                got[w][start : start + len(r)] = top_lists(score, pos, excl)
        return got

    def targets(sel: np.ndarray) -> list[set[int]]:
        return [cs.targets[i] for i in np.flatnonzero(sel)]

    tune_sel, eval_sel = halves == 0, halves == 1
    if not tune_sel.any() or not eval_sel.any():
        return ColdResult(out, 1.0, {"reason": "cold users fell in one half: the pure prior"})
    tuned = lists(tune_sel, weights)
    on_tune = {w: evaluate_lists(tuned[w], targets(tune_sel), snap.n_items) for w in weights}
    best_w = max(weights, key=lambda w: on_tune[w].ndcg_at_10)
    final = lists(eval_sel, tuple(dict.fromkeys((1.0, 0.0, best_w))))
    report_into(out, "popularity", final[1.0], targets(eval_sel), snap.n_items)
    report_into(out, "subject", final[0.0], targets(eval_sel), snap.n_items)
    report_into(out, "subject+prior", final[best_w], targets(eval_sel), snap.n_items)
    gain = paired(out["subject+prior"].per_user_ndcg, out["popularity"].per_user_ndcg, seed)
    # Kept unless the other half shows it below the pure prior on average.
    chosen = best_w if gain.mean >= 0.0 else 1.0
    choice = {
        "best_on_tune_half": best_w,
        "tune_users": int(tune_sel.sum()),
        "tune_ndcg@10": {str(w): round(r.ndcg_at_10, 4) for w, r in on_tune.items()},
        "gain_over_prior_on_eval_half": gain.row(),
        "chosen": chosen,
        "reason": (
            f"weight {best_w}: NDCG@10 gain over the pure prior {gain.text()}"
            + ("" if chosen == best_w else "; below it on average, so the pure prior (1.0)")
        ),
    }
    log.info(
        "cold-start weight", extra=kv(**{k: v for k, v in choice.items() if k != "tune_ndcg@10"})
    )
    return ColdResult(out, chosen, choice)


def history_vectors(snap: Snapshot, als: ALSModel, params: ALSParams, cs: ColdSet) -> F32:
    """Each cold user's seed ratings folded into a vector, as the server does."""
    rows = []
    yty = als.item_factors.astype(np.float64).T @ als.item_factors.astype(np.float64)
    seed_rows = _seed_rows(snap, cs)
    for items, r, w in seed_rows:
        keep = is_positive(r, params.min_rating)
        conf = confidence(r[keep], params.alpha, params.scheme, w[keep])
        rows.append(
            fold_in(als.item_factors, yty, params.regularization, items[keep], conf)
            if keep.any()
            else np.zeros(als.item_factors.shape[1], np.float32)
        )
    return np.stack(rows).astype(np.float32)


def _seed_rows(snap: Snapshot, cs: ColdSet) -> list[tuple[I32, Any, Any]]:
    """(items, ratings, weights) of each cold user's seed, from the snapshot."""
    start = np.searchsorted(snap.users, cs.users)
    end = np.searchsorted(snap.users, cs.users, side="right")
    out = []
    for s, e, seed in zip(start.tolist(), end.tolist(), cs.seed_items, strict=True):
        items = snap.items[s:e]
        pick = np.isin(items, seed)
        out.append((items[pick], snap.ratings[s:e][pick], snap.weights[s:e][pick]))
    return out


def evaluate_history(
    snap: Snapshot,
    als: ALSModel,
    params: ALSParams,
    cs: ColdSet,
    prior: F32,
    item_item: sp.csr_matrix | None,
    blend_weight: float,
    candidates: int,
    seed: int,
) -> tuple[dict[str, RankingReport], dict[str, Any]]:
    """Unknown users with a few ratings: the folded-in pipeline against popularity."""
    out: dict[str, RankingReport] = {}
    if len(cs.users) < 4:
        return out, {"served": False, "reason": f"{len(cs.users)} cold users to judge on"}
    vectors = history_vectors(snap, als, params, cs)
    pos = np.arange(len(cs.users), dtype=np.int32)
    seen = exclusion_for(cs.users, cs.seed_items, snap.n_items)
    report_into(
        out, "history/popularity", popularity_lists(prior, pos, seen), cs.targets, snap.n_items
    )
    if item_item is None:
        lists = top_lists(lambda b: vectors[b] @ als.item_factors.T, pos, seen)
    else:
        pool = candidate_pool(vectors, als.item_factors, item_item, pos, seen, candidates)
        lists = blend_lists(pool, blend_weight)
    report_into(out, "history/fold-in", lists, cs.targets, snap.n_items)
    gain = paired(
        out["history/fold-in"].per_user_ndcg, out["history/popularity"].per_user_ndcg, seed
    )
    served = gain.mean >= 0.0
    return out, {
        "served": served,
        "ndcg@10_gain_over_popularity": gain.row(),
        "reason": f"fold-in of the seed ratings vs popularity: {gain.text()}"
        + ("" if served else "; below it, so such users get cold start from their subjects"),
    }
