"""The benchmark's own baselines, written here and not taken from the trainer, so the
served pipeline is compared with something it did not choose:

- popularity: books by training readers;
- ALS with the trainer's old default grid (factors 128/256, alpha 10/20,
  regularisation 1, log confidence, 12 iterations);
- an independently tuned implicit ALS: a seeded draw from its own wide grid
  (factors 16-256, regularisation 0.01-100, alpha 0.1-50, log or binary
  confidence), each point chosen on an inner per-user validation holdout;
- EASE alone (Steck, 2019), dense, on every item read by at least two training
  users, its lambda chosen from EASE_L2 on the same inner holdout: the strongest
  simple baseline;
- the Bayesian prior (trainer/models/popularity.py, strength 10) as a ranking.

Each model is refit on all the benchmark's training rows with the point it chose,
as the trainer refits what it serves, and scored on the outer holdout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from bench.quality_data import Interactions
from bookrec.confidence import confidence
from trainer.evaluation.metrics import ndcg_at_10
from trainer.evaluation.protocol import top_lists
from trainer.models.popularity import bayesian_prior

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

OLD_GRID = [
    {"factors": f, "alpha": a, "regularization": 1.0, "scheme": "log", "iterations": 12}
    for f in (128, 256)
    for a in (10.0, 20.0)
]
EASE_L2 = (20.0, 100.0, 300.0, 1000.0, 3000.0)
WIDE = {
    "factors": (16, 32, 64, 128, 256),
    "regularization": (0.01, 0.1, 1.0, 10.0, 100.0),
    "alpha": (0.1, 1.0, 10.0, 50.0),
    "scheme": ("log", "binary"),
}


def wide_grid(points: int, seed: int) -> list[dict[str, Any]]:
    """A seeded draw of ``points`` from the full product of WIDE (200 points)."""
    every = [dict(zip(WIDE, combo, strict=True)) for combo in itertools.product(*WIDE.values())]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(every), size=min(points, len(every)), replace=False)
    return [{**every[i], "iterations": 15} for i in sorted(pick.tolist())]


@dataclass
class Matrix:
    """The training rows as users x items, in the benchmark's global item ids."""

    user_row: dict[str, int]
    ratings: npt.NDArray[np.int8]  # 0 implicit, 1..10 explicit
    weights: F32
    rows: I32
    cols: I32
    shape: tuple[int, int]

    def confidence(self, alpha: float, scheme: str, keep: npt.NDArray[np.bool_]) -> sp.csr_matrix:
        conf = confidence(self.ratings[keep], alpha, scheme, self.weights[keep])
        m = sp.csr_matrix((conf, (self.rows[keep], self.cols[keep])), shape=self.shape)
        m.sum_duplicates()
        return m

    def seen(self, keep: npt.NDArray[np.bool_] | None = None) -> sp.csr_matrix:
        sel = np.ones(len(self.rows), bool) if keep is None else keep
        m = sp.csr_matrix(
            (np.ones(int(sel.sum()), np.float32), (self.rows[sel], self.cols[sel])),
            shape=self.shape,
        )
        m.sum_duplicates()
        m.sort_indices()
        return m


def matrix(data: Interactions, train: set[int], item_id: dict[str, int]) -> Matrix:
    rows = sorted(train)
    users = sorted({data.users[r] for r in rows})
    user_row = {u: i for i, u in enumerate(users)}
    return Matrix(
        user_row,
        np.array([int(data.values[r]) if data.explicit[r] else 0 for r in rows], dtype=np.int8),
        np.array([1.0 if data.explicit[r] else data.values[r] for r in rows], np.float32),
        np.array([user_row[data.users[r]] for r in rows], np.int32),
        np.array([item_id[data.items[r]] for r in rows], np.int32),
        (len(users), len(item_id)),
    )


def _inner_holdout(m: Matrix, seed: int) -> npt.NDArray[np.bool_]:
    """10% of each user's rows (users with >= 5), a seeded draw: the inner validation."""
    out = np.zeros(len(m.rows), bool)
    order = np.lexsort((np.random.default_rng(seed).random(len(m.rows)), m.rows))
    starts = np.searchsorted(m.rows[order], np.arange(m.shape[0]))
    ends = np.searchsorted(m.rows[order], np.arange(m.shape[0]), side="right")
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s >= 5:
            out[order[s : s + max(1, round(0.1 * (e - s)))]] = True
    return out


def fit_als(conf: sp.csr_matrix, point: dict[str, Any], seed: int) -> tuple[F32, F32]:
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=point["factors"],
            regularization=point["regularization"],
            iterations=point["iterations"],
            random_state=seed,
            calculate_training_loss=False,
        )
        model.fit(conf, show_progress=False)
    return np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32)


def tuned_als(
    m: Matrix, grid: list[dict[str, Any]], seed: int, progress: Callable[[str], None]
) -> tuple[F32, F32, dict[str, Any]]:
    """The grid point best on the inner holdout, refit on every training row."""
    held = _inner_holdout(m, seed)
    fit_rows = ~held
    seen = m.seen(fit_rows)
    targets: dict[int, set[int]] = {}
    for r, c in zip(m.rows[held].tolist(), m.cols[held].tolist(), strict=True):
        targets.setdefault(r, set()).add(c)
    users = np.array(sorted(targets), dtype=np.int32)
    best: tuple[float, dict[str, Any]] | None = None
    start = time.perf_counter()
    for n, point in enumerate(grid, start=1):
        uf, itf = fit_als(m.confidence(point["alpha"], point["scheme"], fit_rows), point, seed)
        lists = top_lists(_scorer(uf, itf), users, seen)
        value = ndcg_at_10(lists, [targets[int(u)] for u in users])
        if best is None or value > best[0]:
            best = (value, point)
        progress(f"ALS grid {n}/{len(grid)}: {point} -> {value:.4f} (best {best[0]:.4f})")
    assert best is not None
    everything = np.ones(len(m.rows), bool)
    uf, itf = fit_als(m.confidence(best[1]["alpha"], best[1]["scheme"], everything), best[1], seed)
    chosen = {
        **best[1],
        "inner_ndcg@10": round(best[0], 4),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return uf, itf, chosen


def _scorer(uf: F32, itf: F32) -> Callable[[I32], F32]:
    def score(b: I32) -> F32:
        out: F32 = uf[b] @ itf.T
        return out

    return score


def als_lists(m: Matrix, uf: F32, itf: F32, users: list[str]) -> I64:
    rows = np.array([m.user_row[u] for u in users], dtype=np.int32)
    return top_lists(_scorer(uf, itf), rows, m.seen())


def popularity_lists(m: Matrix, users: list[str]) -> I64:
    counts = np.asarray(m.seen().sum(axis=0)).ravel().astype(np.float32)
    rows = np.array([m.user_row[u] for u in users], dtype=np.int32)
    return top_lists(lambda b: np.broadcast_to(counts, (len(b), len(counts))), rows, m.seen())


def prior_scores(m: Matrix) -> F32:
    """The Bayesian prior of every item from the training rows (strength 10)."""
    prior: F32 = bayesian_prior(m.cols, m.ratings, m.shape[1], 10.0).prior
    return prior


def ranked_by(m: Matrix, scores: F32, users: list[str]) -> I64:
    """One score per item for every user, each user's seen items left out."""
    rows = np.array([m.user_row[u] for u in users], dtype=np.int32)
    return top_lists(lambda b: np.broadcast_to(scores, (len(b), len(scores))), rows, m.seen())


def _ease(gram: npt.NDArray[np.float64], l2: float) -> F32:
    """W = -P / diag(P), zero diagonal, P = (G + l2 I)^-1 by Cholesky (dense, float32)."""
    g = np.array(gram, order="F", copy=True)
    g[np.diag_indices(len(g))] += l2
    with threadpool_limits(None, "blas"):
        c, info = lapack.dpotrf(g, lower=False, overwrite_a=True, clean=False)
        c, info2 = lapack.dpotri(c, lower=False, overwrite_c=True)
    assert info == 0 and info2 == 0, (info, info2)
    p: npt.NDArray[np.float64] = np.triu(c) + np.triu(c, 1).T
    del c, g
    p /= -np.diag(p).copy()[None, :]
    np.fill_diagonal(p, 0.0)
    w: F32 = p.astype(np.float32)
    return w


@dataclass
class Ease:
    w: F32  # head x head
    head: I64  # item ids of the head


def _ease_scorer(m: Matrix, seen: sp.csr_matrix, model: Ease) -> Callable[[I32], F32]:
    sub = sp.csr_matrix(seen[:, model.head], dtype=np.float32)

    def score(b: I32) -> F32:
        out = np.zeros((len(b), m.shape[1]), np.float32)
        out[:, model.head] = sub[b] @ model.w
        return out

    return score


def fit_ease(seen: sp.csr_matrix, l2: float) -> Ease:
    readers = np.asarray(seen.getnnz(axis=0)).ravel()
    head = np.flatnonzero(readers >= 2).astype(np.int64)
    sub = sp.csr_matrix(seen[:, head], dtype=np.float64)
    return Ease(_ease(np.asarray((sub.T @ sub).toarray()), l2), head)


def tuned_ease(
    m: Matrix, seed: int, progress: Callable[[str], None]
) -> tuple[Ease, dict[str, Any]]:
    """EASE's lambda best on the inner holdout (of EASE_L2), refit on every training row."""
    held = _inner_holdout(m, seed)
    seen = m.seen(~held)
    targets: dict[int, set[int]] = {}
    for r, c in zip(m.rows[held].tolist(), m.cols[held].tolist(), strict=True):
        targets.setdefault(r, set()).add(c)
    users = np.array(sorted(targets), dtype=np.int32)
    start = time.perf_counter()
    readers = np.asarray(seen.getnnz(axis=0)).ravel()
    head = np.flatnonzero(readers >= 2).astype(np.int64)
    sub = sp.csr_matrix(seen[:, head], dtype=np.float64)
    gram = np.asarray((sub.T @ sub).toarray())
    best: tuple[float, float] | None = None
    for l2 in EASE_L2:
        model = Ease(_ease(gram, l2), head)
        lists = top_lists(_ease_scorer(m, seen, model), users, seen)
        value = ndcg_at_10(lists, [targets[int(u)] for u in users])
        if best is None or value > best[0]:
            best = (value, l2)
        progress(f"EASE l2 {l2:g}: {value:.4f} (best {best[0]:.4f}, {len(head)} items)")
    assert best is not None
    del gram
    chosen = {
        "l2": best[1],
        "items": len(head),
        "inner_ndcg@10": round(best[0], 4),
    }
    model = fit_ease(m.seen(), best[1])
    chosen["seconds"] = round(time.perf_counter() - start, 1)
    return model, chosen


def ease_lists(m: Matrix, model: Ease, users: list[str]) -> I64:
    rows = np.array([m.user_row[u] for u in users], dtype=np.int32)
    seen = m.seen()
    return top_lists(_ease_scorer(m, seen, model), rows, seen)
